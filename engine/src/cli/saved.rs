//! Saved plans: `atrium plan -out FILE` writes one, `atrium apply FILE`
//! carries it out unless the registry changed since, `atrium show FILE`
//! prints it. The message is `proto/atrium_plan.proto`; sensitive and
//! write-only values never enter it.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use sha2::{Digest as _, Sha256};

use super::kinds::Document;
use super::plan::{Plan, ResourceChange};
use super::schema::KindSchema;
use super::session::Session;
use crate::backends::error_chain;
use crate::model::ownership::ObjectKind;
use crate::plan::text::{Action, AttributeChange};

/// The generated message types.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/atrium.plan.v1.rs"));
}

/// The layout this version writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A file's first bytes, so that another file given to `apply` is told
/// apart from a plan at once.
const MAGIC: &[u8] = b"atrium-plan\n";

fn action_to_proto(action: Action) -> proto::Action {
    match action {
        Action::NoOp => proto::Action::NoOp,
        Action::Create => proto::Action::Create,
        Action::Update => proto::Action::Update,
        Action::Replace => proto::Action::Replace,
        Action::Delete => proto::Action::Delete,
    }
}

fn action_from_proto(action: proto::Action) -> Action {
    match action {
        proto::Action::NoOp => Action::NoOp,
        proto::Action::Create => Action::Create,
        proto::Action::Update => Action::Update,
        proto::Action::Replace => Action::Replace,
        proto::Action::Delete => Action::Delete,
    }
}

/// A document without its sensitive and write-only values, as JSON text.
fn public_json(kind: ObjectKind, document: Option<&Document>) -> String {
    let schema = KindSchema::of_kind(kind);
    match document {
        None => String::new(),
        Some(document) => {
            let public: Document = document
                .iter()
                .filter(|(attribute, _)| !schema.is_sensitive(attribute) && !schema.is_write_only(attribute))
                .map(|(attribute, value)| (attribute.clone(), value.clone()))
                .collect();
            serde_json::Value::Object(public).to_string()
        }
    }
}

fn document_from(text: &str, what: &str) -> Result<Option<Document>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(document)) => Ok(Some(document)),
        _ => Err(format!("the saved plan's {what} is not a JSON object")),
    }
}

/// The plan as its saved message.
pub fn to_message(plan: &Plan, serial: &str, destroy: bool, variables: BTreeMap<String, String>) -> proto::SavedPlan {
    let created_at =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    proto::SavedPlan {
        format_version: FORMAT_VERSION,
        atrium_version: env!("CARGO_PKG_VERSION").to_owned(),
        owner: plan.owner.clone(),
        registry_serial: serial.to_owned(),
        created_at,
        destroy,
        variables: variables.into_iter().collect(),
        changes: plan
            .changes
            .iter()
            .map(|change| proto::ResourceChange {
                address: change.address.clone(),
                r#type: change.kind.type_name().to_owned(),
                key: change.key.clone(),
                action: action_to_proto(change.action) as i32,
                before_json: public_json(change.kind, change.before.as_ref()),
                after_json: public_json(change.kind, change.after.as_ref()),
                after_unknown: change.after_unknown.clone(),
                requires_replace: change.requires_replace.clone(),
                decision_json: change.decision.as_ref().map(ToString::to_string).unwrap_or_default(),
                reason: change.reason.clone(),
                attribute_changes: change
                    .attribute_changes
                    .iter()
                    .map(|c| proto::AttributeChange {
                        attribute: c.attribute.clone(),
                        before: c.before.clone(),
                        after: c.after.clone(),
                        forces_replacement: c.forces_replacement,
                    })
                    .collect(),
                stale_claim: change.stale_claim.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// The plan a saved message holds.
pub fn from_message(message: &proto::SavedPlan) -> Result<Plan, String> {
    let mut changes = Vec::with_capacity(message.changes.len());
    for change in &message.changes {
        let kind = ObjectKind::from_type_name(&change.r#type)
            .ok_or_else(|| format!("the saved plan names an unknown resource type {:?}", change.r#type))?;
        let action = proto::Action::try_from(change.action)
            .map(action_from_proto)
            .map_err(|_| format!("the saved plan has an unknown action {}", change.action))?;
        let decision = if change.decision_json.is_empty() {
            None
        } else {
            Some(serde_json::from_str(&change.decision_json).map_err(|e| format!("the saved plan's decision: {e}"))?)
        };
        changes.push(ResourceChange {
            address: change.address.clone(),
            kind,
            key: change.key.clone(),
            action,
            before: document_from(&change.before_json, "prior object")?,
            after: document_from(&change.after_json, "planned object")?,
            after_unknown: change.after_unknown.clone(),
            requires_replace: change.requires_replace.clone(),
            decision,
            reason: change.reason.clone(),
            attribute_changes: change
                .attribute_changes
                .iter()
                .map(|c| AttributeChange {
                    attribute: c.attribute.clone(),
                    before: c.before.clone(),
                    after: c.after.clone(),
                    forces_replacement: c.forces_replacement,
                })
                .collect(),
            stale_claim: Some(change.stale_claim.clone()).filter(|token| !token.is_empty()),
        });
    }
    Ok(Plan { owner: message.owner.clone(), changes, warnings: Vec::new() })
}

/// Writes a saved plan to `path`.
pub fn write(path: &std::path::Path, message: &proto::SavedPlan) -> Result<(), String> {
    let mut bytes = MAGIC.to_vec();
    message.encode(&mut bytes).map_err(|error| error.to_string())?;
    std::fs::write(path, bytes).map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// Reads a saved plan from `path`, refusing other files and other versions.
pub fn read(path: &std::path::Path) -> Result<proto::SavedPlan, String> {
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| format!("{} is not a saved plan of the atrium CLI (atrium plan -out FILE)", path.display()))?;
    let message = proto::SavedPlan::decode(body).map_err(|error| format!("{} is damaged: {error}", path.display()))?;
    if message.format_version != FORMAT_VERSION {
        return Err(format!(
            "{} was saved in plan format {} by atrium {}; this atrium reads format {FORMAT_VERSION}. Run atrium plan again.",
            path.display(),
            message.format_version,
            message.atrium_version
        ));
    }
    Ok(message)
}

/// The registry's serial for a plan: a digest of the registry rows of every
/// object the plan reads (its claims and its records), so that any change
/// to them since the plan (an apply, Terraform, an operator) changes it.
pub async fn registry_serial(session: &Session, objects: &BTreeSet<(ObjectKind, String)>) -> Result<String, String> {
    let registry = &session.platform.registry;
    let error = |error: crate::registry::RegistryError| error_chain(&error);
    let mut rows: BTreeMap<(ObjectKind, String), String> = BTreeMap::new();
    for claim in registry.list_claims().await.map_err(error)? {
        if claim.owner == session.owner || objects.contains(&(claim.kind, claim.key.clone())) {
            rows.insert((claim.kind, claim.key.clone()), format!("{claim:?}"));
        }
    }
    let wanted = |kind: ObjectKind, key: &str| {
        rows.contains_key(&(kind, key.to_owned())) || objects.contains(&(kind, key.to_owned()))
    };
    let mut records = Vec::new();
    for tenant in registry.list_tenants().await.map_err(error)? {
        if wanted(ObjectKind::Tenant, tenant.spec.name.as_str()) {
            records.push(((ObjectKind::Tenant, tenant.spec.name.to_string()), format!("{tenant:?}")));
        }
    }
    for instance in registry.list_app_instances().await.map_err(error)? {
        let key = instance.spec.id.to_string();
        if wanted(ObjectKind::AppInstance, &key) {
            records.push(((ObjectKind::AppInstance, key), format!("{instance:?}")));
        }
    }
    for domain in registry.list_domains().await.map_err(error)? {
        let key = domain.spec.hostname.to_string();
        if wanted(ObjectKind::Domain, &key) {
            records.push(((ObjectKind::Domain, key), format!("{domain:?}")));
        }
    }
    for plan in registry.list_support_plans().await.map_err(error)? {
        let key = plan.spec.tenant_id.to_string();
        if wanted(ObjectKind::SupportPlan, &key) {
            records.push(((ObjectKind::SupportPlan, key), format!("{plan:?}")));
        }
    }
    let mut hasher = Sha256::new();
    for ((kind, key), row) in rows.iter().chain(records.iter().map(|(k, v)| (k, v))) {
        hasher.update(kind.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(row.as_bytes());
        hasher.update([0xff]);
    }
    Ok(hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_survives_its_file_without_its_secrets() {
        let after: Document = serde_json::from_value(serde_json::json!({
            "tenant_id": "acme", "name": "erp", "app": "hello", "target": "lyon", "admin_password": "s3cret-Secret"
        }))
        .unwrap();
        let plan = Plan {
            owner: "atrium:partner".into(),
            changes: vec![ResourceChange {
                address: "atrium_app_instance.erp".into(),
                kind: ObjectKind::AppInstance,
                key: "acme/erp".into(),
                action: Action::Create,
                before: None,
                after: Some(after),
                after_unknown: vec!["status".into()],
                requires_replace: Vec::new(),
                decision: Some(serde_json::json!({"redeploy": true, "generation": 0})),
                reason: "the app instance does not exist".into(),
                attribute_changes: Vec::new(),
                stale_claim: None,
            }],
            warnings: Vec::new(),
        };
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("plan.bin");
        write(&path, &to_message(&plan, "serial", false, BTreeMap::new())).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"s3cret"), "write-only values never enter a saved plan");
        let read_back = from_message(&read(&path).unwrap()).unwrap();
        let change = &read_back.changes[0];
        assert_eq!(change.action, Action::Create);
        assert_eq!(change.after.as_ref().unwrap()["app"], "hello");
        assert!(!change.after.as_ref().unwrap().contains_key("admin_password"));
        assert_eq!(change.decision, plan.changes[0].decision);

        std::fs::write(&path, b"not a plan").unwrap();
        assert!(read(&path).unwrap_err().contains("not a saved plan"));
        let mut newer = to_message(&plan, "serial", false, BTreeMap::new());
        newer.format_version = 99;
        write(&path, &newer).unwrap();
        assert!(read(&path).unwrap_err().contains("plan format 99"));
    }
}
