//! Planning support plans: pure, from the configuration as a draft, the
//! tenant's tier as observed and whether a tracker is configured.

use serde_json::Value;

use crate::model::attribute::{AttributePath, ValidationError};
use crate::model::markers;
use crate::model::support_plan::{
    SupportLevel, SupportPlanDocument, SupportPlanDraft, SupportPlanRecord, SupportPlanSpec,
};
use crate::model::tenant::Tier;
use crate::plan::draft::{Draft, DraftPlan, Planned, marked_attributes, replaced};
use crate::plan::text::{self, Field, ObjectChange, quoted};

/// The attributes whose change replaces a support plan: the document's markers, read once.
static REPLACING: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| marked_attributes::<SupportPlanDocument>(markers::FORCES_REPLACEMENT));

/// What a support plan's plan reads besides its configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct SupportFacts {
    /// The tenant's tier as the registry has it now (`None`: no such tenant yet).
    pub tenant_tier: Option<Tier>,
    /// Whether the provider has a support tracker.
    pub tracker_configured: bool,
}

/// The plan of one support plan (apply takes the planned values; nothing more to decide).
pub type SupportPlanPlan = DraftPlan<()>;

/// Plans a support plan: defaults from the level, replacement on another
/// tenant, and the tier's allowed levels (a warning: the same apply may
/// raise the tier first; apply refuses a level the tier still does not allow).
/// One plan per tenant is held by the claim every create takes.
pub fn plan_support_plan(prior: Option<&Draft>, config: Option<&Draft>, facts: &SupportFacts) -> SupportPlanPlan {
    let Some(config) = config else { return SupportPlanPlan::default() };
    let draft: SupportPlanDraft = match config.typed("support plan") {
        Ok(draft) => draft,
        Err(refused) => return refused,
    };
    let mut errors = draft.validate(None);
    if config.get("tracker_access") == Some(&Value::Bool(true)) && !facts.tracker_configured {
        errors.push(ValidationError::new(
            AttributePath::root("tracker_access"),
            "No support tracker configured",
            "tracker_access needs the provider's tracker block (the support tracker's URL and API key); add it, or set tracker_access = false",
        ));
    }
    if !errors.is_empty() {
        return SupportPlanPlan::refused(errors);
    }
    let warnings = match facts.tenant_tier {
        Some(tier) => draft
            .validate(Some(tier))
            .into_iter()
            .map(|mut warning| {
                warning.detail = format!(
                    "{} Unless this apply raises the tenant's tier, applying the support plan will fail.",
                    warning.detail
                );
                warning
            })
            .collect(),
        None => Vec::new(),
    };
    let requires_replace = replaced(prior, config, &REPLACING);
    let creating = prior.is_none() || !requires_replace.is_empty();
    let level = draft.level.as_deref().and_then(SupportLevel::parse).filter(|_| !config.is_unknown("level"));
    let from_level =
        |value: fn(SupportLevel) -> Value| level.map_or(Planned::Unknown, |level| Planned::Known(value(level)));
    let mut attributes: Vec<(&'static str, Planned)> = Vec::new();
    let unset = |attribute: &str| config.planned(attribute) == Planned::Known(Value::Null);
    if unset("channels") {
        attributes.push((
            "channels",
            from_level(|level| Value::from(level.default_channels().into_iter().collect::<Vec<_>>())),
        ));
    }
    if unset("first_response_minutes") {
        attributes.push(("first_response_minutes", from_level(|level| Value::from(level.first_response_minutes()))));
    }
    if unset("tracker_access") {
        attributes.push(("tracker_access", Planned::Known(Value::Bool(false))));
    }
    attributes.push(("id", config.planned("tenant_id")));
    attributes.push(("hours", from_level(|level| Value::from(level.hours()))));
    for attribute in ["starts_on", "status"] {
        let planned = match prior {
            Some(prior) if !creating => Planned::Known(prior.get(attribute).cloned().unwrap_or(Value::Null)),
            _ => Planned::Unknown,
        };
        attributes.push((attribute, planned));
    }
    SupportPlanPlan { attributes, requires_replace, errors: Vec::new(), warnings, decision: None }
}

/// A support plan's attributes as a plan shows them.
fn support_plan_fields(spec: &SupportPlanSpec) -> Vec<Field> {
    let channels: Vec<String> = spec.channels.iter().map(|c| quoted(c)).collect();
    vec![
        Field::replacing("tenant_id", quoted(spec.tenant_id.as_str())),
        Field::new("level", quoted(spec.level.as_str())),
        Field::new("channels", format!("[{}]", channels.join(", "))),
        Field::new("first_response_minutes", spec.first_response_minutes.to_string()),
        Field::new("tracker_access", spec.tracker_access.to_string()),
    ]
}

/// A support plan's change for people, from what is wanted and what the
/// registry records for the tenant (the bulk front door's plan text).
pub fn support_plan_change(
    desired: Option<&SupportPlanSpec>,
    observed: Option<&SupportPlanRecord>,
) -> Option<ObjectChange> {
    let tenant = desired.map(|spec| &spec.tenant_id).or(observed.map(|record| &record.spec.tenant_id))?;
    let before = observed.map(|record| support_plan_fields(&record.spec));
    let after = desired.map(support_plan_fields);
    text::compare("support plan", tenant.as_str(), before.as_deref(), after.as_deref())
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use serde_json::json;

    use super::*;

    #[test]
    fn every_kind_of_support_plan_change_is_planned_from_a_draft() {
        let draft = |changes: serde_json::Value, unknown: &[&str]| {
            let mut config = json!({"tenant_id": "acme", "level": "premium_24x7"});
            for (key, value) in changes.as_object().unwrap() {
                config[key] = value.clone();
            }
            for attribute in unknown {
                config.as_object_mut().unwrap().remove(*attribute);
            }
            Draft::new(Some(config), unknown.iter().map(|u| u.to_string()))
        };
        let state = Draft::new(
            Some(json!({"tenant_id": "acme", "level": "premium_24x7", "channels": ["email", "phone"],
                "first_response_minutes": 60, "tracker_access": false, "id": "acme", "hours": "24x7",
                "starts_on": "2026-11-23", "status": "active"})),
            [],
        );
        let business = SupportFacts { tenant_tier: Some(Tier::Business), tracker_configured: false };
        let basic = SupportFacts { tenant_tier: Some(Tier::Basic), tracker_configured: true };
        let none = json!({});
        let cases: Vec<(&str, Option<&Draft>, Draft, SupportFacts)> = vec![
            ("create", None, draft(none.clone(), &[]), business),
            ("no-op", Some(&state), draft(none.clone(), &[]), business),
            ("standard", Some(&state), draft(json!({"level": "standard_8x5"}), &[]), business),
            ("unknown level", Some(&state), draft(none.clone(), &["level"]), business),
            ("other tenant", Some(&state), draft(json!({"tenant_id": "beta"}), &[]), business),
            ("tier too low", None, draft(none.clone(), &[]), basic),
            ("tracker without one", None, draft(json!({"tracker_access": true}), &[]), business),
            ("bad level", None, draft(json!({"level": "gold"}), &[]), business),
        ];
        let mut table = String::new();
        for (case, prior, config, facts) in &cases {
            let plan = plan_support_plan(*prior, Some(config), facts);
            let attributes = ["channels", "first_response_minutes", "hours", "starts_on", "status"];
            let _ = writeln!(table, "{case}: {}", crate::plan::draft::row(&plan, &attributes));
        }
        insta::assert_snapshot!(table, @r#"
        create: replace=[] channels=["chat","email","forum","phone"] first_response_minutes=60 hours="every day, around the clock" starts_on=? status=?
        no-op: replace=[] channels=["chat","email","forum","phone"] first_response_minutes=60 hours="every day, around the clock" starts_on="2026-11-23" status="active"
        standard: replace=[] channels=["email","forum"] first_response_minutes=480 hours="Monday to Friday, 08:00 to 17:00 (customer's time zone)" starts_on="2026-11-23" status="active"
        unknown level: replace=[] channels=? first_response_minutes=? hours=? starts_on="2026-11-23" status="active"
        other tenant: replace=["tenant_id"] channels=["chat","email","forum","phone"] first_response_minutes=60 hours="every day, around the clock" starts_on=? status=?
        tier too low: replace=[] channels=["chat","email","forum","phone"] first_response_minutes=60 hours="every day, around the clock" starts_on=? status=? [warn level: Support level not allowed for the tier]
        tracker without one: replace=[] channels=- first_response_minutes=- hours=- starts_on=- status=- [error tracker_access: No support tracker configured]
        bad level: replace=[] channels=- first_response_minutes=- hours=- starts_on=- status=- [error level: Unknown support level]
        "#);
    }

    #[test]
    fn support_plan_changes_read_like_every_plan() {
        let spec = |tenant: &str, level: SupportLevel| SupportPlanSpec {
            tenant_id: crate::model::TenantId::parse(tenant).unwrap(),
            level,
            channels: level.default_channels(),
            first_response_minutes: level.first_response_minutes(),
            tracker_access: false,
        };
        let record = |spec: SupportPlanSpec| SupportPlanRecord {
            spec,
            starts_on: "2026-11-23".into(),
            owner: "cli".into(),
            created_at: "2026-11-23T10:00:00Z".into(),
        };
        let acme = record(spec("acme", SupportLevel::Standard8x5));
        let mut with_tracker = spec("acme", SupportLevel::Standard8x5);
        with_tracker.tracker_access = true;
        let changes: Vec<ObjectChange> = [
            support_plan_change(Some(&spec("beta", SupportLevel::Premium24x7)), None),
            support_plan_change(Some(&spec("acme", SupportLevel::Standard8x5)), Some(&acme)),
            support_plan_change(Some(&spec("acme", SupportLevel::Premium24x7)), Some(&acme)),
            support_plan_change(Some(&with_tracker), Some(&acme)),
            support_plan_change(None, Some(&record(spec("gone", SupportLevel::Standard8x5)))),
        ]
        .into_iter()
        .flatten()
        .collect();
        insta::assert_snapshot!(text::render(&changes), @r#"
        + support plan beta (the support plan does not exist)
        ~ support plan acme (level, channels, first_response_minutes changed)
            level: "standard_8x5" -> "premium_24x7"
            channels: ["email", "forum"] -> ["chat", "email", "forum", "phone"]
            first_response_minutes: 480 -> 60
        ~ support plan acme (tracker_access changed)
            tracker_access: false -> true
        - support plan gone (the support plan is no longer wanted)
        Plan: 1 to add, 2 to change, 0 to replace, 1 to destroy.
        "#);
    }
}
