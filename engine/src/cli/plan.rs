//! Planning a whole configuration against the registry, which is the CLI's
//! state: the objects its owner's claims name are its objects. Each declared
//! resource is planned by its kind's planner (the provider's), objects of
//! the owner no longer declared are deleted, and another owner's objects are
//! refused, never taken over.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::config::{Configuration, Declared};
use super::diagnostic::Diagnostic;
use super::kinds::{self, Document, KindPlan};
use super::progress::Progress;
use super::schema::KindSchema;
use super::session::Session;
use crate::backends::error_chain;
use crate::model::ownership::{Claim, ObjectKind};
use crate::plan::draft::{Draft, Planned};
use crate::plan::text::{Action, AttributeChange, ObjectChange};

/// The kinds in the order their creates run (deletes run in reverse).
pub const KIND_ORDER: [ObjectKind; 4] =
    [ObjectKind::Tenant, ObjectKind::AppInstance, ObjectKind::Domain, ObjectKind::SupportPlan];

fn kind_rank(kind: ObjectKind) -> usize {
    KIND_ORDER.iter().position(|k| *k == kind).unwrap_or(0)
}

/// One object's planned change.
#[derive(Debug, Clone)]
pub struct ResourceChange {
    /// The configuration's address; for an object no longer declared, the
    /// address it was last applied under.
    pub address: String,
    pub kind: ObjectKind,
    pub key: String,
    pub action: Action,
    /// The object as the registry holds it (`None` when creating).
    pub before: Option<Document>,
    /// The object as planned: the known values (`None` when deleting).
    pub after: Option<Document>,
    /// Attributes known only after apply.
    pub after_unknown: Vec<String>,
    pub requires_replace: Vec<String>,
    pub decision: Option<Value>,
    pub reason: String,
    pub attribute_changes: Vec<AttributeChange>,
    /// The create token of this owner's claim on an object that is gone
    /// (deleted by hand): apply frees the name before creating it anew.
    pub stale_claim: Option<String>,
}

/// A whole plan: every change (no-ops included, so that apply confirms them
/// too) and the warnings met on the way.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub owner: String,
    pub changes: Vec<ResourceChange>,
    pub warnings: Vec<Diagnostic>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|change| change.action != Action::NoOp)
    }

    /// The plan as people read it: `+ ~ -/+ -` per change, then the summary.
    pub fn render(&self) -> String {
        let changes: Vec<ObjectChange> = self
            .changes
            .iter()
            .map(|change| ObjectChange {
                action: change.action,
                kind: change.kind.noun(),
                name: change.key.clone(),
                attribute_changes: change.attribute_changes.clone(),
                reason: change.reason.clone(),
            })
            .collect();
        crate::plan::text::render(&changes)
    }
}

/// Whether to plan the configuration, or the destruction of everything the owner has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Destroy,
}

/// The values to show for an attribute: sensitive ones hidden.
fn shown(schema: &KindSchema, attribute: &str, value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "null".to_owned(),
        Some(_) if schema.is_sensitive(attribute) => "(sensitive value)".to_owned(),
        Some(value) => value.to_string(),
    }
}

/// Attribute values flattened to `a.b` paths, for showing what changes.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(object) if !object.is_empty() => {
            for (key, inner) in object {
                let path = if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    format!("{prefix}.{key}")
                } else {
                    format!("{prefix}[{key:?}]")
                };
                flatten(&path, inner, out);
            }
        }
        // An empty map means what no map means (`environment = {}`).
        Value::Null => {}
        Value::Object(_) => {}
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

fn flattened(document: &Document, schema: &KindSchema) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (attribute, value) in document {
        if attribute == "timeouts" || schema.is_write_only(attribute) {
            continue;
        }
        flatten(attribute, value, &mut out);
    }
    out
}

/// The proposed object: the configuration, with what the engine sets
/// (computed and defaulted attributes the configuration leaves unset) kept
/// from the prior object, as Terraform proposes a new state.
fn proposed(config: &Document, prior: Option<&Document>, schema: &KindSchema) -> Document {
    let mut proposed: Document =
        config.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(prior) = prior {
        for (attribute, value) in prior {
            if schema.keeps_prior(attribute) && !proposed.contains_key(attribute) {
                proposed.insert(attribute.clone(), value.clone());
            }
        }
    }
    proposed
}

/// One object's change from its prior document, configuration and plan.
fn change_of(
    destroying: bool,
    address: String,
    kind: ObjectKind,
    key: String,
    prior: Option<Document>,
    config: Option<&Document>,
    plan: Option<KindPlan>,
) -> ResourceChange {
    let schema = KindSchema::of_kind(kind);
    let noun = kind.noun();
    let Some(config) = config else {
        return ResourceChange {
            address,
            kind,
            key,
            action: Action::Delete,
            before: prior,
            after: None,
            after_unknown: Vec::new(),
            requires_replace: Vec::new(),
            decision: None,
            reason: if destroying {
                format!("the {noun} is being destroyed")
            } else {
                format!("the {noun} is no longer declared")
            },
            attribute_changes: Vec::new(),
            stale_claim: None,
        };
    };
    let plan = plan.unwrap_or_default();
    let mut after = proposed(config, prior.as_ref(), schema);
    let mut unknown = Vec::new();
    for (attribute, planned) in &plan.attributes {
        match planned {
            Planned::Known(Value::Null) => {
                after.remove(*attribute);
            }
            Planned::Known(value) => {
                after.insert((*attribute).to_owned(), value.clone());
            }
            Planned::Unknown => {
                after.remove(*attribute);
                unknown.push((*attribute).to_owned());
            }
        }
    }
    for attribute in &schema.write_only {
        after.remove(attribute);
    }
    let Some(prior) = prior else {
        return ResourceChange {
            address,
            kind,
            key,
            action: Action::Create,
            before: None,
            after: Some(after),
            after_unknown: unknown,
            requires_replace: Vec::new(),
            decision: plan.decision,
            reason: format!("the {noun} does not exist"),
            attribute_changes: Vec::new(),
            stale_claim: None,
        };
    };
    let (before_values, after_values) = (flattened(&prior, schema), flattened(&after, schema));
    let mut paths: BTreeSet<&String> = before_values.keys().collect();
    paths.extend(after_values.keys());
    let replacing = |path: &str| {
        plan.requires_replace.iter().any(|attribute| path == attribute || path.starts_with(&format!("{attribute}.")))
    };
    let mut attribute_changes: Vec<AttributeChange> = paths
        .into_iter()
        .filter(|path| !unknown.iter().any(|u| *path == u || path.starts_with(&format!("{u}."))))
        .filter(|path| before_values.get(*path) != after_values.get(*path))
        .map(|path| {
            let top = path.split(['.', '[']).next().unwrap_or(path);
            AttributeChange {
                attribute: path.clone(),
                before: shown(schema, top, before_values.get(path)),
                after: shown(schema, top, after_values.get(path)),
                forces_replacement: replacing(path),
            }
        })
        .collect();
    for attribute in &unknown {
        if prior.contains_key(attribute) {
            attribute_changes.push(AttributeChange {
                attribute: attribute.clone(),
                before: shown(schema, attribute, prior.get(attribute)),
                after: "(known after apply)".to_owned(),
                forces_replacement: replacing(attribute),
            });
        }
    }
    let replaced: Vec<&str> = attribute_changes
        .iter()
        .filter(|change| change.forces_replacement)
        .map(|change| change.attribute.as_str())
        .collect();
    let (action, reason) = if !plan.requires_replace.is_empty() {
        let attributes = if replaced.is_empty() { plan.requires_replace.join(", ") } else { replaced.join(", ") };
        (Action::Replace, format!("changing {attributes} forces replacement"))
    } else if !attribute_changes.is_empty() {
        let names: Vec<&str> = attribute_changes.iter().map(|change| change.attribute.as_str()).collect();
        (Action::Update, format!("{} changed", names.join(", ")))
    } else {
        (Action::NoOp, "up to date".to_owned())
    };
    ResourceChange {
        address,
        kind,
        key,
        action,
        before: Some(prior),
        after: Some(after),
        after_unknown: unknown,
        requires_replace: plan.requires_replace,
        decision: plan.decision,
        reason,
        attribute_changes,
        stale_claim: None,
    }
}

/// The address an object of the owner was last applied under; for one
/// applied before addresses were recorded, its type and key.
fn address_of(claim: &Claim) -> String {
    if claim.address.is_empty() {
        format!("{}[{:?}]", claim.kind.type_name(), claim.key)
    } else {
        claim.address.clone()
    }
}

/// The observed object of `kind` and `key`, taken out of `observed`, as
/// the prior of a change (with the configuration's timeouts, which the
/// registry does not keep).
fn take_prior(
    observed: &mut BTreeMap<ObjectKind, BTreeMap<String, Document>>,
    kind: ObjectKind,
    key: &str,
    config: Option<&Document>,
) -> Option<Document> {
    let mut prior = observed.get_mut(&kind)?.remove(key)?;
    match config.and_then(|config| config.get("timeouts")) {
        Some(timeouts) => prior.insert("timeouts".to_owned(), timeouts.clone()),
        None => prior.remove("timeouts"),
    };
    Some(prior)
}

/// Attributes a configuration may not set: unknown ones, and those only the engine sets.
pub fn check_attributes(declared: &Declared) -> Vec<Diagnostic> {
    let schema = KindSchema::of_kind(declared.kind);
    let mut problems = Vec::new();
    for attribute in declared.values.keys() {
        if !schema.attributes.iter().any(|known| known == attribute) {
            problems.push(Diagnostic::new(
                "Unsupported argument",
                format!(
                    "{} has no attribute {attribute:?}; it has {}",
                    declared.kind.type_name(),
                    schema.attributes.iter().filter(|a| !schema.is_computed(a)).cloned().collect::<Vec<_>>().join(", ")
                ),
                declared.position_of(attribute),
            ));
        } else if schema.is_computed(attribute) {
            problems.push(Diagnostic::new(
                "Invalid configuration",
                format!("{attribute} is set by Atrium and can only be read; remove it from the configuration"),
                declared.position_of(attribute),
            ));
        }
    }
    problems
}

/// A planner's problem, pointed at the attribute's line.
pub fn diagnostic_of(
    declared: &Declared,
    error: &crate::model::attribute::ValidationError,
    warning: bool,
) -> Diagnostic {
    let top = match error.attribute.steps.first() {
        Some(crate::model::attribute::PathStep::Attribute(name)) => name.as_str(),
        _ => "",
    };
    let position = declared.position_of(top);
    let detail = if error.attribute.steps.is_empty() {
        format!("{}: {}", declared.address, error.detail)
    } else {
        format!("{}.{}: {}", declared.address, error.attribute, error.detail)
    };
    if warning {
        Diagnostic::warning(error.summary.clone(), detail, position)
    } else {
        Diagnostic::new(error.summary.clone(), detail, position)
    }
}

/// What can be checked without the platform: each resource's attributes
/// and values (what `atrium validate` answers).
pub fn validate(configuration: &Configuration) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for resource in &configuration.resources {
        problems.extend(check_attributes(resource));
        let errors = crate::plan::validate_known(resource.kind, Value::Object(resource.values.clone()));
        problems.extend(errors.iter().map(|error| diagnostic_of(resource, error, false)));
    }
    problems
}

/// Plans `configuration` for the session's owner. Errors stop the plan;
/// all of them are reported at once.
pub async fn plan(
    configuration: &Configuration,
    session: &Session,
    mode: Mode,
    progress: &Progress,
) -> Result<Plan, Vec<Diagnostic>> {
    let registry_error =
        |error: &dyn std::error::Error| vec![Diagnostic::new("Cannot read the registry", error_chain(error), None)];
    let claims = session.platform.registry.list_claims().await.map_err(|error| registry_error(&error))?;
    let claims: BTreeMap<(ObjectKind, String), Claim> =
        claims.into_iter().map(|claim| ((claim.kind, claim.key.clone()), claim)).collect();

    let mut errors = Vec::new();
    let mut declared: BTreeMap<(ObjectKind, String), &Declared> = BTreeMap::new();
    if mode == Mode::Normal {
        for resource in &configuration.resources {
            errors.extend(check_attributes(resource));
            let Some(key) = resource.kind.natural_key(&resource.values) else {
                let missing = match resource.kind {
                    ObjectKind::Tenant => "name",
                    ObjectKind::AppInstance => "tenant_id and name",
                    ObjectKind::Domain => "hostname",
                    ObjectKind::SupportPlan => "tenant_id",
                };
                errors.push(Diagnostic::new(
                    "Missing required argument",
                    format!("{} needs {missing}", resource.address),
                    resource.position.clone(),
                ));
                continue;
            };
            if let Some(first) = declared.get(&(resource.kind, key.clone())) {
                errors.push(Diagnostic::new(
                    "Object declared twice",
                    format!(
                        "{} and {} both declare {} {key:?}; one object can be declared once",
                        first.address,
                        resource.address,
                        resource.kind.noun()
                    ),
                    resource.position.clone(),
                ));
                continue;
            }
            if let Some(claim) = claims.get(&(resource.kind, key.clone()))
                && claim.owner != session.owner
            {
                errors.push(Diagnostic::new(
                    format!("{} {key:?} belongs to another owner", resource.kind.noun()),
                    format!(
                        "{} is managed by {}; the atrium CLI never takes over another owner's objects. Choose another name, or remove it where it is managed first.",
                        resource.address, claim.owner
                    ),
                    resource.position.clone(),
                ));
                continue;
            }
            declared.insert((resource.kind, key), resource);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    // This owner's objects: declared, or claimed by it.
    let mut keys: BTreeMap<ObjectKind, BTreeSet<String>> = BTreeMap::new();
    for (kind, key) in declared.keys() {
        keys.entry(*kind).or_default().insert(key.clone());
    }
    let owned: Vec<&Claim> = claims.values().filter(|claim| claim.owner == session.owner).collect();
    for claim in &owned {
        keys.entry(claim.kind).or_default().insert(claim.key.clone());
    }
    let mut observed: BTreeMap<ObjectKind, BTreeMap<String, Document>> = BTreeMap::new();
    progress.phase("observe", keys.values().map(BTreeSet::len).sum());
    for (kind, keys) in &keys {
        let found = kinds::observe(session, *kind, keys)
            .await
            .map_err(|detail| vec![Diagnostic::new("Cannot read the registry", detail, None)])?;
        observed.insert(*kind, found);
        progress.advance(keys.len());
    }
    progress.phase("plan", declared.len());

    let mut plan = Plan { owner: session.owner.as_str().to_owned(), ..Plan::default() };
    for ((kind, key), resource) in &declared {
        // Only the owner's claim makes a registry object this configuration's.
        let claim = claims.get(&(*kind, key.clone())).filter(|claim| claim.owner == session.owner);
        let unowned = !claims.contains_key(&(*kind, key.clone()))
            && observed.get(kind).is_some_and(|objects| objects.contains_key(key));
        if unowned {
            errors.push(Diagnostic::new(
                format!("{} {key:?} already exists", kind.noun()),
                format!(
                    "no configuration owns it; to manage it here, import it: atrium import '{}' {key}",
                    resource.address
                ),
                resource.position.clone(),
            ));
            continue;
        }
        let prior = if claim.is_some() { take_prior(&mut observed, *kind, key, Some(&resource.values)) } else { None };
        let prior_draft = prior.as_ref().map(Draft::known);
        let config_draft = Draft::new(Some(Value::Object(resource.values.clone())), []);
        let kind_plan = kinds::plan(session, *kind, prior_draft.as_ref(), &config_draft).await;
        progress.advance(1);
        errors.extend(kind_plan.errors.iter().map(|error| diagnostic_of(resource, error, false)));
        plan.warnings.extend(kind_plan.warnings.iter().map(|warning| diagnostic_of(resource, warning, true)));
        let stale_claim = match (claim, &prior) {
            (Some(claim), None) if claim.confirmed => Some(claim.create_token.as_str().to_owned()),
            _ => None,
        };
        let mut change = change_of(
            false,
            resource.address.clone(),
            *kind,
            key.clone(),
            prior,
            Some(&resource.values),
            Some(kind_plan),
        );
        change.stale_claim = stale_claim;
        plan.changes.push(change);
    }
    let declared_addresses: BTreeMap<(ObjectKind, String), &str> = match mode {
        Mode::Normal => BTreeMap::new(),
        Mode::Destroy => configuration
            .resources
            .iter()
            .filter_map(|r| Some(((r.kind, r.kind.natural_key(&r.values)?), r.address.as_str())))
            .collect(),
    };
    for claim in owned {
        if declared.contains_key(&(claim.kind, claim.key.clone())) {
            continue;
        }
        let Some(prior) = take_prior(&mut observed, claim.kind, &claim.key, None) else {
            // A claim whose object is gone: apply forgets it.
            plan.changes.push(ResourceChange {
                address: address_of(claim),
                kind: claim.kind,
                key: claim.key.clone(),
                action: Action::NoOp,
                before: None,
                after: None,
                after_unknown: Vec::new(),
                requires_replace: Vec::new(),
                decision: None,
                reason: format!("the {} is already gone", claim.kind.noun()),
                attribute_changes: Vec::new(),
                stale_claim: Some(claim.create_token.as_str().to_owned()),
            });
            continue;
        };
        // Destroying what is still declared: under its declared address.
        let address = match declared_addresses.get(&(claim.kind, claim.key.clone())) {
            Some(address) => (*address).to_owned(),
            None => address_of(claim),
        };
        plan.changes.push(change_of(
            mode == Mode::Destroy,
            address,
            claim.kind,
            claim.key.clone(),
            Some(prior),
            None,
            None,
        ));
    }
    progress.finish();
    if !errors.is_empty() {
        return Err(errors);
    }
    plan.changes.sort_by(|a, b| {
        let rank = |change: &ResourceChange| match change.action {
            Action::Delete => (0, KIND_ORDER.len() - kind_rank(change.kind)),
            _ => (1, kind_rank(change.kind)),
        };
        rank(a).cmp(&rank(b)).then_with(|| a.key.cmp(&b.key))
    });
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(json: serde_json::Value) -> Document {
        kinds::document_of(json)
    }

    #[test]
    fn a_change_shows_each_changed_attribute_and_hides_secrets() {
        let prior = document(serde_json::json!({
            "name": "acme", "display_name": "ACME", "tier": "business", "user_quota": 50,
            "manager": {"email": "a@acme.com", "name": "A"}, "status": "active", "id": "acme"
        }));
        let config = document(serde_json::json!({
            "name": "acme", "display_name": "ACME GmbH", "tier": "business",
            "manager": {"email": "b@acme.com", "name": "A"}
        }));
        let change = change_of(
            false,
            "atrium_tenant.acme".into(),
            ObjectKind::Tenant,
            "acme".into(),
            Some(prior.clone()),
            Some(&config),
            None,
        );
        assert_eq!(change.action, Action::Update);
        let changed: Vec<&str> = change.attribute_changes.iter().map(|c| c.attribute.as_str()).collect();
        assert_eq!(changed, ["display_name", "manager.email"], "computed and defaulted values are kept from the prior");
        assert_eq!(change.reason, "display_name, manager.email changed");

        let same =
            change_of(false, "a".into(), ObjectKind::Tenant, "acme".into(), Some(prior.clone()), Some(&prior), None);
        assert_eq!(same.action, Action::NoOp);

        let replaced = change_of(
            false,
            "a".into(),
            ObjectKind::Tenant,
            "acme".into(),
            Some(prior),
            Some(&config),
            Some(KindPlan { requires_replace: vec!["display_name".into()], ..KindPlan::default() }),
        );
        assert_eq!(replaced.action, Action::Replace);
        assert!(replaced.attribute_changes[0].forces_replacement);
    }

    #[test]
    fn plans_render_every_kind_of_change_as_the_provider_snapshots_do() {
        let tenant = |name: &str, display: &str, tier: &str| {
            document(serde_json::json!({
                "name": name, "display_name": display, "tier": tier,
                "manager": {"email": "m@x.example", "name": "M"}
            }))
        };
        let recorded = |name: &str, display: &str, tier: &str, quota: u32| {
            let mut document = tenant(name, display, tier);
            document.insert("user_quota".into(), quota.into());
            document.insert("status".into(), "active".into());
            document
        };
        let quota = |quota: u32| KindPlan {
            attributes: vec![("user_quota", Planned::Known(quota.into()))],
            ..KindPlan::default()
        };
        let changes = vec![
            change_of(
                false,
                "atrium_tenant.acme".into(),
                ObjectKind::Tenant,
                "acme".into(),
                Some(recorded("acme", "ACME", "basic", 10)),
                Some(&tenant("acme", "ACME GmbH", "business")),
                Some(quota(50)),
            ),
            change_of(
                false,
                "atrium_tenant.beta".into(),
                ObjectKind::Tenant,
                "beta".into(),
                None,
                Some(&tenant("beta", "Beta", "basic")),
                Some(quota(10)),
            ),
            change_of(
                false,
                "atrium_tenant.delta".into(),
                ObjectKind::Tenant,
                "delta".into(),
                Some(recorded("delta", "Delta", "basic", 10)),
                Some(&tenant("delta", "Delta", "basic")),
                Some(quota(10)),
            ),
            change_of(
                false,
                "atrium_tenant[\"gone\"]".into(),
                ObjectKind::Tenant,
                "gone".into(),
                Some(recorded("gone", "Gone", "basic", 10)),
                None,
                None,
            ),
        ];
        assert_eq!(changes[2].action, Action::NoOp);
        let plan = Plan { owner: "atrium:partner".into(), changes, warnings: Vec::new() };
        insta::assert_snapshot!(plan.render(), @r#"
        ~ tenant acme (display_name, tier, user_quota changed)
            display_name: "ACME" -> "ACME GmbH"
            tier: "basic" -> "business"
            user_quota: 10 -> 50
        + tenant beta (the tenant does not exist)
        - tenant gone (the tenant is no longer declared)
        Plan: 1 to add, 1 to change, 0 to replace, 1 to destroy.
        "#);
    }

    #[test]
    fn write_only_values_never_enter_the_plan() {
        let config = document(
            serde_json::json!({"tenant_id": "acme", "name": "erp", "app": "hello", "admin_password": "s3cret-Secret"}),
        );
        let change =
            change_of(false, "a".into(), ObjectKind::AppInstance, "acme/erp".into(), None, Some(&config), None);
        assert!(!change.after.unwrap().contains_key("admin_password"));
    }
}
