//! Claiming an object's natural key for a create, in the registry: the
//! decision the model's rules make ([`crate::model::ownership::decide_create`]), taken against the
//! registry's claims under its lock.

use crate::apply::runner::{Journal, StepError};
use crate::model::TenantId;
use crate::model::ownership::{ClaimRefusal, CreateDecision, CreateToken, ObjectKind, Owner};
use crate::registry::{ClaimOutcome, Registry, RegistryError};

/// Why a create could not claim its object's natural key.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("the registry failed while claiming {} {key}", kind.noun())]
    Registry {
        kind: ObjectKind,
        key: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("{}", refusal_text(*kind, key, refusal))]
    Refused { kind: ObjectKind, key: String, refusal: ClaimRefusal },
}

impl ClaimError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ClaimError::Registry { source, .. } => source.is_retryable(),
            ClaimError::Refused { .. } => false,
        }
    }
}

fn refusal_text(kind: ObjectKind, key: &str, refusal: &ClaimRefusal) -> String {
    let noun = kind.noun();
    match refusal {
        ClaimRefusal::OtherOwner { owner } => format!(
            "{noun} {key} already exists, created by {owner}; a create never takes over an object that another configuration made, and nothing of it was changed"
        ),
        ClaimRefusal::AlreadyManaged => format!(
            "{noun} {key} already exists, and this configuration's state holds it (or held it until it was removed from the state): the name is taken, so no second {noun} can be created with it, and create_before_destroy cannot keep a name that the object it replaces still has; nothing was changed"
        ),
        ClaimRefusal::DeclaredTwice => {
            format!(
                "{noun} {key} is created twice in this run: two resources of the configuration declare the same {noun}"
            )
        }
    }
}

/// Claims `key` for a create by `owner` with `token` (see
/// [`crate::registry::Registry::claim_for_create`]): the create's decision,
/// or why it may not go on.
pub async fn claim(
    registry: &Registry,
    kind: ObjectKind,
    key: &str,
    tenant: &TenantId,
    owner: &Owner,
    token: &CreateToken,
) -> Result<CreateDecision, ClaimError> {
    match registry.claim_for_create(kind, key, tenant, owner, token).await {
        Ok(ClaimOutcome::Claimed(decision)) => Ok(decision),
        Ok(ClaimOutcome::Refused { refusal, .. }) => Err(ClaimError::Refused { kind, key: key.to_owned(), refusal }),
        Err(source) => Err(ClaimError::Registry { kind, key: key.to_owned(), source: Box::new(source) }),
    }
}

/// The journal's name for the create of `kind` `key` with `token`. A create
/// that resumes an interrupted one takes over that one's journal, so that a
/// failure now undoes what the interrupted create made too.
pub async fn create_operation(
    journal: &dyn Journal,
    kind: ObjectKind,
    key: &str,
    token: &CreateToken,
    decision: &CreateDecision,
) -> Result<String, StepError> {
    let name = |token: &CreateToken| format!("create {} {key} {}", kind.as_str(), token.as_str());
    let operation = name(token);
    if let CreateDecision::Resume { previous_token } = decision {
        journal.adopt(&name(previous_token), &operation).await?;
    }
    Ok(operation)
}

/// The journal's name for a change (update or delete) of `kind` `key` by
/// `owner`: one at a time per owner, which the state's lock ensures.
pub fn change_operation(kind: ObjectKind, key: &str, owner: &Owner) -> String {
    format!("change {} {key} {}", kind.as_str(), owner.as_str())
}
