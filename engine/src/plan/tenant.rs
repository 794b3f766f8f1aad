//! The planner: `plan(desired, observed) -> Plan`, pure and deterministic.
//!
//! A plan is data decided before anything is touched. Each [`Change`] holds an
//! action from a closed set, the state before and after, and the reason, so
//! that apply has no choices left and the rendered text says exactly what
//! will happen.

use crate::model::TenantId;
use crate::model::attribute::{AttributePath, ValidationError};
use crate::model::markers;
use crate::model::support_plan::SupportLevel;
use crate::model::tenant::{
    TenantDependents, TenantDocument, TenantDraft, TenantRecord, TenantSpec, TenantStatus, Tier, status_reason,
};
use crate::model::validate;
use crate::plan::draft::{Draft, DraftPlan, Planned, marked_attributes, replaced};
use crate::plan::text::{self, Field, quoted};
pub use crate::plan::text::{Action, AttributeChange};

/// The attributes whose change replaces the object: the document's markers, read once.
static REPLACING: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| marked_attributes::<TenantDocument>(markers::FORCES_REPLACEMENT));

/// A planned change to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    pub tenant_id: TenantId,
    pub before: Option<TenantRecord>,
    pub after: Option<TenantSpec>,
    pub attribute_changes: Vec<AttributeChange>,
    /// Why this action, in a sentence.
    pub reason: String,
}

impl Change {
    /// The attributes whose change forces replacement.
    pub fn replace_paths(&self) -> Vec<AttributePath> {
        self.attribute_changes
            .iter()
            .filter(|c| c.forces_replacement)
            .map(|c| AttributePath::root(&c.attribute))
            .collect()
    }
}

/// A tenant's attributes as a plan shows them.
fn tenant_fields(spec: &TenantSpec) -> Vec<Field> {
    let date =
        |d: Option<time::Date>| d.map(validate::format_date).map(|d| quoted(&d)).unwrap_or_else(|| "null".into());
    vec![
        Field::replacing("name", quoted(spec.name.as_str())),
        Field::new("display_name", quoted(&spec.display_name)),
        Field::new("tier", quoted(spec.tier.as_str())),
        Field::new("user_quota", spec.user_quota.to_string()),
        Field::new("expires_on", date(spec.expires_on)),
        Field::new("manager.email", quoted(&spec.manager.email)),
        Field::new("manager.name", quoted(&spec.manager.name)),
        Field::new("welcome_email", spec.welcome_email.to_string()),
    ]
}

/// Plans one tenant: `observed` is what exists under this object's identity
/// (for Terraform, the prior state's tenant; for the CLI, the tenant of the same name).
pub fn plan_tenant(desired: Option<&TenantSpec>, observed: Option<&TenantRecord>) -> Option<Change> {
    let name = desired.map(|spec| &spec.name).or(observed.map(|record| &record.spec.name))?;
    let before = observed.map(|record| tenant_fields(&record.spec));
    let after = desired.map(tenant_fields);
    let change = text::compare("tenant", name.as_str(), before.as_deref(), after.as_deref())?;
    Some(Change {
        action: change.action,
        tenant_id: name.clone(),
        before: observed.cloned(),
        after: desired.cloned(),
        attribute_changes: change.attribute_changes,
        reason: change.reason,
    })
}

/// What a tenant's plan reads besides its configuration.
pub struct TenantFacts<'a> {
    /// Today's date (UTC): a tenant past `expires_on` is suspended.
    pub today: time::Date,
    /// What depends on the tenant, as observed; `None` when not checked.
    pub dependents: Option<&'a TenantDependents>,
}

/// What apply carries out, decided by the plan: the status the tenant's apps
/// are brought to (so that an apply past midnight keeps to the plan's day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantDecision {
    pub status: TenantStatus,
}

/// The plan of one tenant for a front door that plans with unknown values
/// (no decision while the status is unknown).
pub type TenantPlan = DraftPlan<TenantDecision>;

/// Plans a tenant from its prior state (`None` when creating) and its
/// configuration (`None` when destroying): defaults (the tier's user quota,
/// the welcome email), replacement when `name` changes (the document's
/// markers), the status today's date gives, and warnings about dependents
/// the planned quota or tier would strand (warnings: the same apply may
/// change them first, and apply refuses what is still true then).
pub fn plan_tenant_draft(prior: Option<&Draft>, config: Option<&Draft>, facts: &TenantFacts<'_>) -> TenantPlan {
    let Some(config) = config else { return TenantPlan::default() };
    let draft: TenantDraft = match config.typed("tenant") {
        Ok(draft) => draft,
        Err(refused) => return refused,
    };
    let errors = draft.validate();
    if !errors.is_empty() {
        return TenantPlan::refused(errors);
    }
    let tier = draft.tier.as_deref().and_then(Tier::parse);
    let mut attributes: Vec<(&'static str, Planned)> = Vec::new();
    let user_quota = match (config.planned("user_quota"), tier) {
        (Planned::Known(serde_json::Value::Null), Some(tier)) => {
            Planned::Known(serde_json::Value::from(tier.default_user_quota()))
        }
        (Planned::Known(serde_json::Value::Null), None) => Planned::Unknown,
        (quota, _) => quota,
    };
    attributes.push(("user_quota", user_quota.clone()));
    if config.planned("welcome_email") == Planned::Known(serde_json::Value::Null) {
        attributes.push(("welcome_email", Planned::Known(serde_json::Value::Bool(true))));
    }
    let name = config.planned("name");
    attributes.push(("id", name.clone()));
    let requires_replace = replaced(prior, config, &REPLACING);
    let created_at = match prior {
        Some(prior) if requires_replace.is_empty() => {
            Planned::Known(prior.get("created_at").cloned().unwrap_or(serde_json::Value::Null))
        }
        _ => Planned::Unknown,
    };
    attributes.push(("created_at", created_at));

    // The status follows expires_on and today's date: planned, so that the
    // apply that stops (or resumes) the tenant's apps shows in the plan.
    let expires_on = match config.planned("expires_on") {
        Planned::Known(serde_json::Value::Null) => Some(None),
        Planned::Known(serde_json::Value::String(text)) => validate::date(&text).ok().map(Some),
        _ => None,
    };
    let mut warnings = Vec::new();
    let decision = match expires_on {
        Some(expires_on) => {
            let status = match expires_on {
                Some(date) if date < facts.today => TenantStatus::Suspended,
                _ => TenantStatus::Active,
            };
            let reason = status_reason(status, expires_on);
            attributes.push(("status", Planned::string(status.as_str())));
            attributes.push((
                "status_reason",
                Planned::Known(reason.clone().map(serde_json::Value::String).unwrap_or(serde_json::Value::Null)),
            ));
            let before = prior.and_then(|prior| prior.str("status"));
            if before.is_some_and(|before| before != status.as_str()) {
                let tenant = draft.name.as_deref().unwrap_or("the tenant");
                warnings.push(if status == TenantStatus::Active {
                    ValidationError::new(
                        AttributePath::root("expires_on"),
                        "Tenant resumes",
                        format!("{tenant} no longer is past its expiry: this apply starts its apps again and points its domains back at them."),
                    )
                } else {
                    ValidationError::new(
                        AttributePath::root("expires_on"),
                        "Tenant expires",
                        format!(
                            "{tenant} {}. This apply stops its apps (containers and data are kept) and its domains answer 503.",
                            reason.unwrap_or_default()
                        ),
                    )
                });
            }
            Some(TenantDecision { status })
        }
        None => {
            attributes.push(("status", Planned::Unknown));
            attributes.push(("status_reason", Planned::Unknown));
            None
        }
    };
    if let (Some(dependents), Some(tenant)) = (facts.dependents, draft.name.as_deref()) {
        warnings.extend(dependent_warnings(tenant, &user_quota, tier, dependents));
    }
    TenantPlan { attributes, requires_replace, errors: Vec::new(), warnings, decision }
}

/// What the planned quota and tier would strand among the tenant's dependents.
fn dependent_warnings(
    tenant: &str,
    user_quota: &Planned,
    tier: Option<Tier>,
    dependents: &TenantDependents,
) -> Vec<ValidationError> {
    let will_fail = " Applying this change will fail unless the same apply changes them first.";
    let mut warnings = Vec::new();
    if let Planned::Known(serde_json::Value::Number(quota)) = user_quota {
        let quota = quota.as_f64().unwrap_or(f64::MAX);
        let used = dependents.users_in_use();
        if (used as f64) > quota {
            let listing: Vec<String> =
                dependents.instances.iter().map(|(id, users)| format!("{id} ({users} users)")).collect();
            warnings.push(ValidationError::new(
                AttributePath::root("user_quota"),
                "User quota below current use",
                format!(
                    "tenant {tenant}'s app instances use {used} users ({}); keep user_quota at {used} or more, or lower the instances' users first.{will_fail}",
                    listing.join(", ")
                ),
            ));
        }
    }
    if let (Some(tier), Some(level)) = (tier, dependents.support_level)
        && !SupportLevel::allowed_for(tier).contains(&level)
    {
        warnings.push(ValidationError::new(
            AttributePath::root("tier"),
            "Tier does not allow the tenant's support level",
            format!(
                "tenant {tenant} has the {} support plan, which a {} tenant cannot have: first change the atrium_support_plan's level to \"standard_8x5\", or keep the tier.{will_fail}",
                level.as_str(),
                tier.as_str()
            ),
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::model::tenant::{Manager, TenantStatus, Tier};

    fn spec(name: &str, display_name: &str, tier: Tier) -> TenantSpec {
        TenantSpec {
            name: TenantId::parse(name).unwrap(),
            display_name: display_name.into(),
            tier,
            user_quota: tier.default_user_quota(),
            expires_on: None,
            manager: Manager { email: format!("boss@{name}.example"), name: "Boss".into() },
            welcome_email: true,
        }
    }

    fn record(spec: TenantSpec, owner: &str) -> TenantRecord {
        TenantRecord {
            spec,
            status: TenantStatus::Active,
            created_at: "2026-11-23T10:00:00Z".into(),
            owner: owner.into(),
        }
    }

    #[test]
    fn every_kind_of_tenant_change_is_planned_from_a_draft() {
        use serde_json::json;
        let today = time::macros::date!(2026 - 12 - 02);
        let base = json!({"name": "acme", "display_name": "ACME", "tier": "business",
            "manager": {"email": "it@acme.example", "name": "Dana"}});
        let with = |changes: serde_json::Value| {
            let mut value = base.clone();
            for (key, change) in changes.as_object().unwrap() {
                value[key] = change.clone();
            }
            value
        };
        let state = |changes: serde_json::Value| {
            let mut value = with(json!({"id": "acme", "user_quota": 50, "welcome_email": true,
                "status": "active", "created_at": "2026-11-23T10:00:00Z"}));
            for (key, change) in changes.as_object().unwrap() {
                value[key] = change.clone();
            }
            Draft::new(Some(value), [])
        };
        // What is not known is not in the known values (as a front door gives it).
        let config = |changes: serde_json::Value, unknown: &[&str]| {
            let mut known = with(changes);
            for attribute in unknown {
                known.as_object_mut().unwrap().remove(*attribute);
            }
            Draft::new(Some(known), unknown.iter().map(|u| u.to_string()))
        };
        let crowded = TenantDependents {
            instances: vec![(crate::model::app_instance::AppInstanceId::parse("acme/erp").unwrap(), 40)],
            support_level: Some(SupportLevel::Premium24x7),
        };
        let none = json!({});
        type Case<'a> = (&'a str, Option<Draft>, Option<Draft>, Option<&'a TenantDependents>);
        let cases: Vec<Case> = vec![
            ("create", None, Some(config(none.clone(), &[])), None),
            ("no-op", Some(state(none.clone())), Some(config(none.clone(), &[])), None),
            ("rename", Some(state(none.clone())), Some(config(json!({"name": "acme-two"}), &[])), None),
            ("unknown name", Some(state(none.clone())), Some(config(json!({}), &["name"])), None),
            ("unknown tier", None, Some(config(json!({}), &["tier"])), None),
            ("expired", Some(state(none.clone())), Some(config(json!({"expires_on": "2026-12-01"}), &[])), None),
            ("expires today", Some(state(none.clone())), Some(config(json!({"expires_on": "2026-12-02"}), &[])), None),
            (
                "resumes",
                Some(state(json!({"status": "suspended"}))),
                Some(config(json!({"expires_on": "2027-01-31"}), &[])),
                None,
            ),
            ("unknown expiry", Some(state(none.clone())), Some(config(json!({}), &["expires_on"])), None),
            (
                "quota below use",
                Some(state(none.clone())),
                Some(config(json!({"user_quota": 30}), &[])),
                Some(&crowded),
            ),
            (
                "tier strands support",
                Some(state(none.clone())),
                Some(config(json!({"tier": "basic"}), &[])),
                Some(&crowded),
            ),
            ("bad quota", None, Some(config(json!({"user_quota": 0}), &[])), None),
            ("destroy", Some(state(none.clone())), None, Some(&crowded)),
        ];
        let mut table = String::new();
        for (case, prior, config, dependents) in &cases {
            let plan =
                plan_tenant_draft(prior.as_ref(), config.as_ref(), &TenantFacts { today, dependents: *dependents });
            let row = crate::plan::draft::row(&plan, &["user_quota", "id", "created_at", "status"]);
            let _ = writeln!(table, "{case}: decision={:?} {row}", plan.decision.map(|d| d.status.as_str()));
        }
        insta::assert_snapshot!(table, @r#"
        create: decision=Some("active") replace=[] user_quota=50 id="acme" created_at=? status="active"
        no-op: decision=Some("active") replace=[] user_quota=50 id="acme" created_at="2026-11-23T10:00:00Z" status="active"
        rename: decision=Some("active") replace=["name"] user_quota=50 id="acme-two" created_at=? status="active"
        unknown name: decision=Some("active") replace=["name"] user_quota=50 id=? created_at=? status="active"
        unknown tier: decision=Some("active") replace=[] user_quota=? id="acme" created_at=? status="active"
        expired: decision=Some("suspended") replace=[] user_quota=50 id="acme" created_at="2026-11-23T10:00:00Z" status="suspended" [warn expires_on: Tenant expires]
        expires today: decision=Some("active") replace=[] user_quota=50 id="acme" created_at="2026-11-23T10:00:00Z" status="active"
        resumes: decision=Some("active") replace=[] user_quota=50 id="acme" created_at="2026-11-23T10:00:00Z" status="active" [warn expires_on: Tenant resumes]
        unknown expiry: decision=None replace=[] user_quota=50 id="acme" created_at="2026-11-23T10:00:00Z" status=?
        quota below use: decision=Some("active") replace=[] user_quota=30 id="acme" created_at="2026-11-23T10:00:00Z" status="active" [warn user_quota: User quota below current use]
        tier strands support: decision=Some("active") replace=[] user_quota=10 id="acme" created_at="2026-11-23T10:00:00Z" status="active" [warn user_quota: User quota below current use] [warn tier: Tier does not allow the tenant's support level]
        bad quota: decision=None replace=[] user_quota=- id=- created_at=- status=- [error user_quota: Invalid user quota]
        destroy: decision=None replace=[] user_quota=- id=- created_at=- status=-
        "#);
    }

    #[test]
    fn renaming_a_tenant_under_one_identity_forces_replacement() {
        let mut renamed = spec("acme", "ACME", Tier::Basic);
        renamed.name = TenantId::parse("acme-new").unwrap();
        let change =
            plan_tenant(Some(&renamed), Some(&record(spec("acme", "ACME", Tier::Basic), "terraform"))).unwrap();
        assert_eq!(change.action, Action::Replace);
        assert_eq!(change.replace_paths(), vec![AttributePath::root("name")]);
        let text = text::render(&[text::ObjectChange {
            action: change.action,
            kind: "tenant",
            name: change.tenant_id.to_string(),
            attribute_changes: change.attribute_changes.clone(),
            reason: change.reason.clone(),
        }]);
        insta::assert_snapshot!(text, @r#"
        -/+ tenant acme-new (changing name forces replacement)
            name: "acme" -> "acme-new" # forces replacement
        Plan: 0 to add, 0 to change, 1 to replace, 0 to destroy.
        "#);
    }
}
