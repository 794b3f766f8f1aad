//! The machine-readable plan of `atrium plan -json` and `atrium show -json
//! FILE`, shaped like Terraform's `show -json` (one object per resource
//! change with its address and actions). Documented in `docs/cli-json.md`;
//! sensitive values are left out and named in `after_sensitive`.

use serde_json::{Map, Value, json};

use super::diagnostic::{Diagnostic, Severity};
use super::kinds::Document;
use super::plan::{Plan, ResourceChange};
use super::schema::KindSchema;
use crate::plan::text::Action;

/// The layout of this JSON; its major version changes when a field changes meaning.
pub const FORMAT_VERSION: &str = "1.0";

fn actions(action: Action) -> Vec<&'static str> {
    match action {
        Action::NoOp => vec!["no-op"],
        Action::Create => vec!["create"],
        Action::Update => vec!["update"],
        Action::Replace => vec!["delete", "create"],
        Action::Delete => vec!["delete"],
    }
}

/// A document without its sensitive values, and which ones were left out.
fn public(change: &ResourceChange, document: Option<&Document>) -> (Value, Value) {
    let schema = KindSchema::of_kind(change.kind);
    let Some(document) = document else { return (Value::Null, json!({})) };
    let mut shown = Map::new();
    let mut sensitive = Map::new();
    for (attribute, value) in document {
        if schema.is_sensitive(attribute) || schema.is_write_only(attribute) {
            sensitive.insert(attribute.clone(), Value::Bool(true));
        } else {
            shown.insert(attribute.clone(), value.clone());
        }
    }
    (Value::Object(shown), Value::Object(sensitive))
}

fn resource_change(change: &ResourceChange) -> Value {
    let (before, before_sensitive) = public(change, change.before.as_ref());
    let (after, after_sensitive) = public(change, change.after.as_ref());
    let after_unknown: Map<String, Value> =
        change.after_unknown.iter().map(|attribute| (attribute.clone(), Value::Bool(true))).collect();
    json!({
        "address": change.address,
        "type": change.kind.type_name(),
        "id": change.key,
        "change": {
            "actions": actions(change.action),
            "before": before,
            "after": after,
            "after_unknown": after_unknown,
            "before_sensitive": before_sensitive,
            "after_sensitive": after_sensitive,
            "replace_paths": change.requires_replace.iter().map(|attribute| vec![attribute]).collect::<Vec<_>>(),
        },
        "reason": change.reason,
        "attribute_changes": change.attribute_changes.iter().map(|c| json!({
            "attribute": c.attribute,
            "before": c.before,
            "after": c.after,
            "forces_replacement": c.forces_replacement,
        })).collect::<Vec<_>>(),
    })
}

fn diagnostic(diagnostic: &Diagnostic) -> Value {
    let severity = match diagnostic.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let range = diagnostic
        .position
        .as_ref()
        .map(|position| json!({"filename": position.file, "start": {"line": position.line}, "block": position.block}));
    json!({"severity": severity, "summary": diagnostic.summary, "detail": diagnostic.detail, "range": range})
}

/// The plan as JSON.
pub fn plan_json(plan: &Plan, serial: &str, destroy: bool) -> Value {
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .filter(|change| change.before.is_some() || change.after.is_some())
        .map(resource_change)
        .collect();
    json!({
        "format_version": FORMAT_VERSION,
        "atrium_version": env!("CARGO_PKG_VERSION"),
        "owner": plan.owner,
        "registry_serial": serial,
        "destroy": destroy,
        "resource_changes": changes,
        "diagnostics": plan.warnings.iter().map(diagnostic).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ownership::ObjectKind;

    #[test]
    fn changes_carry_terraform_style_actions_and_hide_secrets() {
        let after: Document =
            serde_json::from_value(json!({"tenant_id": "acme", "name": "erp", "admin_password": "x"})).unwrap();
        let plan = Plan {
            owner: "atrium:p".into(),
            changes: vec![ResourceChange {
                address: "atrium_app_instance.erp".into(),
                kind: ObjectKind::AppInstance,
                key: "acme/erp".into(),
                action: Action::Replace,
                before: Some(after.clone()),
                after: Some(after),
                after_unknown: vec!["status".into()],
                requires_replace: vec!["app".into()],
                decision: None,
                reason: "changing app forces replacement".into(),
                attribute_changes: Vec::new(),
                stale_claim: None,
            }],
            warnings: Vec::new(),
        };
        let value = plan_json(&plan, "abc", false);
        let change = &value["resource_changes"][0];
        assert_eq!(change["address"], "atrium_app_instance.erp");
        assert_eq!(change["change"]["actions"], json!(["delete", "create"]));
        assert_eq!(change["change"]["replace_paths"], json!([["app"]]));
        assert_eq!(change["change"]["after_unknown"], json!({"status": true}));
        assert!(change["change"]["after"].get("admin_password").is_none());
        assert_eq!(change["change"]["after_sensitive"], json!({"admin_password": true}));
        assert_eq!(value["format_version"], FORMAT_VERSION);
    }
}
