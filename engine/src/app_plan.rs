//! Planning app instances: `plan_app_instance(desired, observed)`, pure and
//! deterministic, with the same `+ ~ -/+ -` text as tenants.
//!
//! The decision that matters most is whether a change needs a *new
//! deployment* (a new generation of the app container, health-checked beside
//! the old one) or only a new registry record, and why.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::app_apply::InstanceHealth;
use crate::model::app_instance::{AppInstanceId, AppInstanceRecord, AppInstanceSpec};
use crate::plan::{Action, AttributeChange};

/// A planned change to one app instance.
#[derive(Debug, Clone, PartialEq)]
pub struct AppChange {
    pub action: Action,
    pub id: AppInstanceId,
    pub attribute_changes: Vec<AttributeChange>,
    /// Whether the app container is deployed anew (create, replace, upgrade, repair).
    pub redeploy: bool,
    pub reason: String,
}

fn quoted(value: &str) -> String {
    format!("{value:?}")
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Files by path with a digest of each content: plan text stays short and
/// shows which file changed.
fn file_digests(files: &BTreeMap<String, String>) -> BTreeMap<&str, String> {
    files
        .iter()
        .map(|(path, content)| {
            let one = BTreeMap::from([(String::new(), content.clone())]);
            (path.as_str(), format!("sha256:{}", crate::catalog::files_digest(&one)))
        })
        .collect()
}

/// Compares what the registry records with what is desired, attribute by attribute.
fn attribute_changes(before: &AppInstanceSpec, after: &AppInstanceSpec) -> Vec<(AttributeChange, bool)> {
    // (attribute, before, after, forces replacement, redeploys)
    let fields: [(&'static str, String, String, bool, bool); 13] = [
        ("tenant_id", quoted(before.id.tenant_id.as_str()), quoted(after.id.tenant_id.as_str()), true, true),
        ("name", quoted(&before.id.name), quoted(&after.id.name), true, true),
        ("app", quoted(&before.app), quoted(&after.app), true, true),
        ("target", quoted(&before.target), quoted(&after.target), true, true),
        ("channel", quoted(&before.channel), quoted(&after.channel), false, true),
        ("version", quoted(&before.version), quoted(&after.version), false, true),
        ("users", before.users.to_string(), after.users.to_string(), false, true),
        ("resources", json(&before.resources), json(&after.resources), false, true),
        ("customizations.environment", json(&before.environment), json(&after.environment), false, true),
        ("customizations.volumes", json(&before.extra_volumes), json(&after.extra_volumes), false, true),
        ("customizations.files", json(&file_digests(&before.files)), json(&file_digests(&after.files)), false, true),
        ("password_version", before.password_version.to_string(), after.password_version.to_string(), false, true),
        (
            "delete_data_on_destroy",
            before.delete_data_on_destroy.to_string(),
            after.delete_data_on_destroy.to_string(),
            false,
            false,
        ),
    ];
    fields
        .into_iter()
        .filter(|(_, b, a, _, _)| b != a)
        .map(|(attribute, before, after, forces_replacement, redeploys)| {
            (AttributeChange { attribute, before, after, forces_replacement }, redeploys)
        })
        .collect()
}

/// Plans one app instance against what exists under its identity and how its container looks.
pub fn plan_app_instance(
    desired: Option<&AppInstanceSpec>,
    observed: Option<(&AppInstanceRecord, InstanceHealth)>,
) -> Option<AppChange> {
    let change = match (desired, observed) {
        (None, None) => return None,
        (Some(spec), None) => AppChange {
            action: Action::Create,
            id: spec.id.clone(),
            attribute_changes: Vec::new(),
            redeploy: true,
            reason: format!("{} {} is not deployed", spec.app, spec.version),
        },
        (None, Some((record, _))) => AppChange {
            action: Action::Delete,
            id: record.spec.id.clone(),
            attribute_changes: Vec::new(),
            redeploy: false,
            reason: if record.spec.delete_data_on_destroy {
                "the instance is no longer wanted; its data is deleted".into()
            } else {
                "the instance is no longer wanted; its data volumes are kept".into()
            },
        },
        (Some(spec), Some((record, health))) => {
            let changes = attribute_changes(&record.spec, spec);
            let replacing: Vec<&str> =
                changes.iter().filter(|(c, _)| c.forces_replacement).map(|(c, _)| c.attribute).collect();
            let redeploying = changes.iter().any(|(_, redeploys)| *redeploys);
            let names: Vec<&str> = changes.iter().map(|(c, _)| c.attribute).collect();
            let (action, redeploy, reason) = if !replacing.is_empty() {
                (Action::Replace, true, format!("changing {} forces replacement", replacing.join(", ")))
            } else if health != InstanceHealth::Running {
                let why = format!("the container is {} (changed outside Atrium)", health.as_str());
                let reason = if names.is_empty() { why } else { format!("{} changed; {why}", names.join(", ")) };
                (Action::Update, true, reason)
            } else if redeploying {
                (Action::Update, true, format!("{} changed", names.join(", ")))
            } else if !changes.is_empty() {
                (Action::Update, false, format!("{} changed (no new deployment)", names.join(", ")))
            } else {
                (Action::NoOp, false, "up to date".into())
            };
            AppChange {
                action,
                id: spec.id.clone(),
                attribute_changes: changes.into_iter().map(|(c, _)| c).collect(),
                redeploy,
                reason,
            }
        }
    };
    Some(change)
}

/// The changes as people read them, like a tenant plan.
pub fn render_app_changes(changes: &[AppChange]) -> String {
    let mut text = String::new();
    for change in changes.iter().filter(|c| c.action != Action::NoOp) {
        let _ = writeln!(text, "{} app instance {} ({})", change.action.symbol(), change.id, change.reason);
        for attribute in &change.attribute_changes {
            let marker = if attribute.forces_replacement { " # forces replacement" } else { "" };
            let _ =
                writeln!(text, "    {}: {} -> {}{}", attribute.attribute, attribute.before, attribute.after, marker);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::TenantId;

    fn spec(tenant: &str, name: &str, version: &str) -> AppInstanceSpec {
        AppInstanceSpec {
            id: AppInstanceId { tenant_id: TenantId::parse(tenant).unwrap(), name: name.into() },
            app: "hello".into(),
            channel: "stable".into(),
            version: version.into(),
            target: "lyon-onprem".into(),
            users: 10,
            resources: None,
            environment: BTreeMap::new(),
            extra_volumes: BTreeMap::new(),
            files: BTreeMap::new(),
            admin_password: None,
            password_version: 0,
            delete_data_on_destroy: false,
        }
    }

    fn record(spec: AppInstanceSpec) -> AppInstanceRecord {
        AppInstanceRecord {
            spec,
            generation: 3,
            previous_version: None,
            deployed_at: "2026-11-23T10:00:00Z".into(),
            published_port: Some(32768),
            secrets: BTreeMap::new(),
            manager_password_hash: "$6$rounds=5000$c2FsdA$sample".into(),
            welcome: crate::model::app_instance::WelcomeState::Sent,
            password_given: false,
            owner: "terraform".into(),
            created_at: "2026-11-23T09:00:00Z".into(),
        }
    }

    #[test]
    fn app_instance_plans_say_what_changes_and_whether_it_redeploys() {
        let existing = record(spec("acme", "web", "1.0"));
        let mut moved = spec("acme", "web", "1.0");
        moved.target = "cloud-fra1".into();
        let mut keep_data = spec("acme", "web", "1.0");
        keep_data.delete_data_on_destroy = true;
        let changes: Vec<AppChange> = [
            plan_app_instance(Some(&spec("acme", "new", "1.1")), None),
            plan_app_instance(Some(&spec("acme", "web", "1.1")), Some((&existing, InstanceHealth::Running))),
            plan_app_instance(Some(&spec("acme", "web", "1.0")), Some((&existing, InstanceHealth::Stopped))),
            plan_app_instance(Some(&keep_data), Some((&existing, InstanceHealth::Running))),
            plan_app_instance(Some(&moved), Some((&existing, InstanceHealth::Running))),
            plan_app_instance(None, Some((&existing, InstanceHealth::Running))),
            plan_app_instance(Some(&spec("acme", "web", "1.0")), Some((&existing, InstanceHealth::Running))),
        ]
        .into_iter()
        .flatten()
        .collect();
        let redeploys: Vec<bool> = changes.iter().map(|c| c.redeploy).collect();
        assert_eq!(redeploys, [true, true, true, false, true, false, false]);
        insta::assert_snapshot!(render_app_changes(&changes), @r#"
        + app instance acme/new (hello 1.1 is not deployed)
        ~ app instance acme/web (version changed)
            version: "1.0" -> "1.1"
        ~ app instance acme/web (the container is stopped (changed outside Atrium))
        ~ app instance acme/web (delete_data_on_destroy changed (no new deployment))
            delete_data_on_destroy: false -> true
        -/+ app instance acme/web (changing target forces replacement)
            target: "lyon-onprem" -> "cloud-fra1" # forces replacement
        - app instance acme/web (the instance is no longer wanted; its data volumes are kept)
        "#);
    }
}
