//! Terraform's side of the registry's claims (see `atrium_engine::model::ownership`):
//! which configuration this provider process speaks for, the create token
//! kept in each resource's private state, and the diagnostics of a refused
//! create.
//!
//! Terraform hands the provider no workspace identity, so the owner is the
//! provider's `owner` setting, else the working directory Terraform runs in
//! (with the workspace when it is not `default`). The private state is the
//! only place where Terraform keeps something of ours that users never edit:
//! a create returns its token there, and every later refresh and plan shows
//! it back, which tells the registry that this state holds the object.

use atrium_engine::apply::claims::ClaimError;
use atrium_engine::model::attribute::AttributePath;
use atrium_engine::model::ownership::{ClaimRefusal, CreateToken, ObjectKind, Owner, check_planned_create};

use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::value::Value;

/// The owner this provider process speaks for.
pub fn configuration_owner(configured_name: Option<&str>) -> Owner {
    if let Some(name) = configured_name {
        return Owner::terraform(name);
    }
    let directory = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "?".to_owned());
    match current_workspace() {
        Some(workspace) if workspace != "default" => Owner::terraform(&format!("{directory}#{workspace}")),
        _ => Owner::terraform(&directory),
    }
}

/// Terraform's selected workspace: `TF_WORKSPACE`, else the file Terraform
/// keeps it in (`.terraform/environment`, or under `TF_DATA_DIR`).
fn current_workspace() -> Option<String> {
    if let Ok(workspace) = std::env::var("TF_WORKSPACE")
        && !workspace.is_empty()
    {
        return Some(workspace);
    }
    let data_dir = std::env::var("TF_DATA_DIR").unwrap_or_else(|_| ".terraform".to_owned());
    std::fs::read_to_string(std::path::Path::new(&data_dir).join("environment"))
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|workspace| !workspace.is_empty())
}

/// The kind of object a resource type manages.
pub fn kind_of(type_name: &str) -> Option<ObjectKind> {
    ObjectKind::from_type_name(type_name)
}

/// The Terraform type of a kind of object, for import hints.
pub fn type_of(kind: ObjectKind) -> &'static str {
    kind.type_name()
}

/// The natural key of the object a (state or configuration) value names,
/// when it is known.
pub fn natural_key(kind: ObjectKind, value: &Value) -> Option<String> {
    match value.to_known_json()? {
        serde_json::Value::Object(attributes) => kind.natural_key(&attributes),
        _ => None,
    }
}

/// The create token a resource's private state holds (`None` for states
/// written before tokens, or by another provider).
pub fn token_of(private: &[u8]) -> Option<CreateToken> {
    let json: serde_json::Value = serde_json::from_slice(private).ok()?;
    json.get("create_token").and_then(|token| token.as_str()).map(CreateToken::from_stored)
}

/// The private state that records a create's token.
pub fn private_with(token: &CreateToken) -> Vec<u8> {
    serde_json::json!({ "create_token": token.as_str() }).to_string().into_bytes()
}

/// The planned private data: the prior private state (its token) and the
/// engine's decisions for apply, which Terraform hands back unchanged with
/// the planned change (and keeps in a saved plan).
pub fn planned_private(prior_private: &[u8], decision: Option<serde_json::Value>) -> Vec<u8> {
    let Some(decision) = decision else { return prior_private.to_vec() };
    let mut json = match serde_json::from_slice::<serde_json::Value>(prior_private) {
        Ok(serde_json::Value::Object(attributes)) => attributes,
        _ => serde_json::Map::new(),
    };
    json.insert("decision".to_owned(), decision);
    serde_json::Value::Object(json).to_string().into_bytes()
}

/// The decision a planned change carries (see [`planned_private`]).
pub fn decision_of<T: serde::de::DeserializeOwned>(planned_private: &[u8]) -> Option<T> {
    let json: serde_json::Value = serde_json::from_slice(planned_private).ok()?;
    serde_json::from_value(json.get("decision")?.clone()).ok()
}

/// The private state after apply: the token only (a decision is for one apply).
pub fn state_private(planned_private: &[u8]) -> Vec<u8> {
    match token_of(planned_private) {
        Some(token) => private_with(&token),
        None if decision_of::<serde_json::Value>(planned_private).is_some() => Vec::new(),
        None => planned_private.to_vec(),
    }
}

/// What to tell the user to do about a refused create.
fn refusal_hint(kind: ObjectKind, key: &str, refusal: &ClaimRefusal) -> String {
    let import = format!("terraform import {}.<name> {key}", type_of(kind));
    match refusal {
        ClaimRefusal::OtherOwner { .. } => format!(
            "To manage it from this configuration instead, import it ({import}); to leave it where it is, choose another name."
        ),
        ClaimRefusal::AlreadyManaged => format!(
            "If it was removed from this state (terraform state rm), import it back ({import}). If this is a replacement with create_before_destroy, remove create_before_destroy: the new object keeps the name, so the old one must go first."
        ),
        ClaimRefusal::DeclaredTwice => "Give each resource its own name.".to_owned(),
    }
}

/// The diagnostic of a create whose claim was refused, pointing at the
/// attribute that names the object.
pub fn refusal_diagnostic(kind: ObjectKind, error: &ClaimError) -> pb::Diagnostic {
    let detail = match error {
        ClaimError::Refused { key, refusal, .. } => {
            format!("{}. {}", diagnostics::error_chain(error), refusal_hint(kind, key, refusal))
        }
        ClaimError::Registry { .. } => {
            format!("{}. Nothing was changed; run terraform apply again.", diagnostics::error_chain(error))
        }
    };
    let summary = match error {
        ClaimError::Refused { refusal: ClaimRefusal::AlreadyManaged, .. } => {
            format!("The {} is managed already", kind.noun())
        }
        ClaimError::Refused { .. } => format!("The {} already exists", kind.noun()),
        ClaimError::Registry { .. } => "Cannot read the registry".to_owned(),
    };
    let mut diagnostic = diagnostics::error(summary, detail);
    let attribute = match kind {
        ObjectKind::Tenant | ObjectKind::AppInstance => "name",
        ObjectKind::Domain => "hostname",
        ObjectKind::SupportPlan => "tenant_id",
    };
    diagnostic.attribute = Some(diagnostics::to_proto_path(&AttributePath::root(attribute)));
    diagnostic
}

/// The check of a planned create against the claims: `None` when it may go on.
pub fn check_create(
    kind: ObjectKind,
    key: &str,
    existing: Option<&atrium_engine::model::ownership::Claim>,
    owner: &Owner,
) -> Option<pb::Diagnostic> {
    check_planned_create(existing, owner)
        .err()
        .map(|refusal| refusal_diagnostic(kind, &ClaimError::Refused { kind, key: key.to_owned(), refusal }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_state_round_trips_the_token_and_tolerates_others() {
        let token = CreateToken::new();
        assert_eq!(token_of(&private_with(&token)), Some(token));
        assert_eq!(token_of(b""), None);
        assert_eq!(token_of(b"{\"something\":1}"), None);
    }

    #[test]
    fn a_planned_decision_travels_with_the_token_and_is_dropped_after_apply() {
        let token = CreateToken::new();
        let planned = planned_private(&private_with(&token), Some(serde_json::json!({"redeploy": false})));
        assert_eq!(token_of(&planned), Some(token.clone()));
        assert_eq!(decision_of::<serde_json::Value>(&planned), Some(serde_json::json!({"redeploy": false})));
        assert_eq!(state_private(&planned), private_with(&token));
        let untokened = planned_private(b"", Some(serde_json::json!(1)));
        assert_eq!(decision_of::<u32>(&untokened), Some(1));
        assert!(state_private(&untokened).is_empty());
        assert_eq!(planned_private(b"kept", None), b"kept");
    }

    #[test]
    fn configured_owner_names_win_over_the_directory() {
        assert_eq!(configuration_owner(Some("prod")), Owner::terraform("prod"));
        let default = configuration_owner(None);
        assert!(default.as_str().starts_with("terraform:/"), "{default:?}");
    }
}
