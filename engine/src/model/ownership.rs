//! Who owns what: claims on natural keys, so that a create never takes over
//! an object that another configuration (or this one, already) manages.
//!
//! Every object's natural key (`acme`, `acme/erp`, `erp.acme.com`) is claimed
//! in the registry before a create touches anything. A claim records the
//! [`Owner`] (one Terraform configuration, or one CLI owner), the
//! [`CreateToken`] of the create that made it, and whether that owner's state
//! is known to hold the object (`confirmed`). The rules, decided here without
//! I/O:
//!
//! - no claim: the create is new;
//! - a claim of another owner: refused ("already exists, import it");
//! - a claim of the same owner that no state has confirmed, made by an earlier
//!   process: an interrupted create (Terraform killed before it saved its
//!   state), which this create finishes;
//! - the same, made by this very process: the configuration declares the
//!   object twice; refused;
//! - a confirmed claim of the same owner: the object is in that owner's state
//!   already, so this create is a second copy (`create_before_destroy`, or an
//!   object removed from state by hand): refused, the live object untouched.
//!
//! A state confirms a claim when it shows the create's token back (Terraform
//! keeps it in the resource's private data, returned on every refresh and
//! plan), which is how an interrupted create is told from a finished one.

use std::fmt;
use std::sync::OnceLock;

use crate::model::TenantId;

/// The front door that owns tenants made through Terraform before claims
/// recorded which configuration made them.
pub const LEGACY_TERRAFORM_OWNER: &str = "terraform";

/// One configuration that owns objects: a Terraform configuration
/// (`terraform:<name>`) or a CLI owner (`atrium:<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner(String);

impl Owner {
    /// The owner of a Terraform configuration known as `name` (the provider's
    /// `owner` setting, or its working directory and workspace).
    pub fn terraform(name: &str) -> Owner {
        Owner(format!("terraform:{name}"))
    }

    /// The owner of an `atrium` CLI configuration (its `owner` setting).
    pub fn atrium(name: &str) -> Owner {
        Owner(format!("atrium:{name}"))
    }

    /// An owner as the registry stores it.
    pub fn from_stored(stored: &str) -> Owner {
        Owner(stored.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Objects recorded before owners were told apart: any Terraform
    /// configuration that holds one in its state takes it over.
    pub fn is_legacy_terraform(&self) -> bool {
        self.0 == LEGACY_TERRAFORM_OWNER
    }

    /// Whether the owner is a Terraform configuration.
    pub fn is_terraform(&self) -> bool {
        self.is_legacy_terraform() || self.0.starts_with("terraform:")
    }
}

impl fmt::Display for Owner {
    /// Where the owner's objects are managed, for people.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_legacy_terraform() {
            return f.write_str("a Terraform configuration (recorded before configurations were told apart)");
        }
        match self.0.split_once(':') {
            Some(("terraform", name)) => write!(f, "the Terraform configuration {name:?}"),
            Some(("atrium", name)) => write!(f, "the atrium CLI owner {name:?}"),
            _ => write!(f, "{:?}", self.0),
        }
    }
}

/// The kinds of objects that are claimed by natural key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Tenant,
    AppInstance,
    Domain,
    SupportPlan,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Tenant => "tenant",
            ObjectKind::AppInstance => "app_instance",
            ObjectKind::Domain => "domain",
            ObjectKind::SupportPlan => "support_plan",
        }
    }

    pub fn parse(text: &str) -> Option<ObjectKind> {
        Some(match text {
            "tenant" => ObjectKind::Tenant,
            "app_instance" => ObjectKind::AppInstance,
            "domain" => ObjectKind::Domain,
            "support_plan" => ObjectKind::SupportPlan,
            _ => return None,
        })
    }

    /// The resource type of the kind, in both front doors' configurations.
    pub fn type_name(self) -> &'static str {
        match self {
            ObjectKind::Tenant => "atrium_tenant",
            ObjectKind::AppInstance => "atrium_app_instance",
            ObjectKind::Domain => "atrium_domain",
            ObjectKind::SupportPlan => "atrium_support_plan",
        }
    }

    pub fn from_type_name(type_name: &str) -> Option<ObjectKind> {
        [ObjectKind::Tenant, ObjectKind::AppInstance, ObjectKind::Domain, ObjectKind::SupportPlan]
            .into_iter()
            .find(|kind| kind.type_name() == type_name)
    }

    /// The natural key (the registry's name) of an object of this kind
    /// from its attributes: what its claim and its `id` are.
    pub fn natural_key(self, attributes: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
        let text = |attribute: &str| attributes.get(attribute).and_then(|value| value.as_str()).map(str::to_owned);
        match self {
            ObjectKind::Tenant => text("name"),
            ObjectKind::AppInstance => Some(format!("{}/{}", text("tenant_id")?, text("name")?)),
            ObjectKind::Domain => text("hostname"),
            ObjectKind::SupportPlan => text("tenant_id"),
        }
    }

    /// The kind as people say it ("app instance").
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::Tenant => "tenant",
            ObjectKind::AppInstance => "app instance",
            ObjectKind::Domain => "domain",
            ObjectKind::SupportPlan => "support plan",
        }
    }
}

/// A random value per provider (or CLI) process: tokens made by this process
/// start with it, so an unconfirmed claim of this process is told from one an
/// earlier, interrupted process left.
fn process_nonce() -> &'static str {
    static NONCE: OnceLock<String> = OnceLock::new();
    NONCE.get_or_init(|| hex(&crate::model::password::random_bytes::<8>()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token of one create: `<process>.<random>`. The state that records the
/// created object keeps it, and shows it back on every later refresh and plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreateToken(String);

impl CreateToken {
    /// A new token of this process.
    pub fn new() -> CreateToken {
        CreateToken(format!("{}.{}", process_nonce(), hex(&crate::model::password::random_bytes::<12>())))
    }

    /// A token as stored (in the registry or a state's private data).
    pub fn from_stored(stored: &str) -> CreateToken {
        CreateToken(stored.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this process made the token.
    pub fn made_by_this_process(&self) -> bool {
        self.0.split_once('.').is_some_and(|(process, _)| process == process_nonce())
    }
}

impl Default for CreateToken {
    fn default() -> Self {
        Self::new()
    }
}

/// A natural key's claim as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub kind: ObjectKind,
    pub key: String,
    pub tenant: TenantId,
    pub owner: Owner,
    pub create_token: CreateToken,
    /// Whether the owner's state is known to hold the object.
    pub confirmed: bool,
    pub created_at: String,
    /// The address the atrium CLI last applied the object under (empty for Terraform's).
    pub address: String,
}

/// That the state of `Owner` holds the object of kind and key made by the
/// create with the token: what confirms a claim.
pub type Confirmation = (ObjectKind, String, CreateToken, Owner);

/// Why a create may not claim a natural key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// Another configuration made it.
    OtherOwner { owner: Owner },
    /// This configuration's state already holds it (or held it until it was
    /// removed from the state by hand): a second object cannot have its key.
    AlreadyManaged,
    /// This very run creates it twice (two resources with one natural key).
    DeclaredTwice,
}

/// What a create that may proceed does with the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateDecision {
    /// Nothing claimed the key: a new object.
    New,
    /// An interrupted create of the same owner: finish it, under the new token.
    Resume { previous_token: CreateToken },
}

/// The decision at apply: whether `owner` may create the object whose key
/// `existing` claims (or nobody does).
pub fn decide_create(existing: Option<&Claim>, owner: &Owner) -> Result<CreateDecision, ClaimRefusal> {
    let Some(claim) = existing else { return Ok(CreateDecision::New) };
    if &claim.owner != owner {
        return Err(ClaimRefusal::OtherOwner { owner: claim.owner.clone() });
    }
    if claim.confirmed {
        return Err(ClaimRefusal::AlreadyManaged);
    }
    if claim.create_token.made_by_this_process() {
        return Err(ClaimRefusal::DeclaredTwice);
    }
    Ok(CreateDecision::Resume { previous_token: claim.create_token.clone() })
}

/// The check at plan time: only another owner's claim is refused here.
/// A claim of the same owner is left to apply, where the claim is taken
/// atomically: at plan it may be the create half of a replacement (which a
/// destroy frees first), an interrupted create to finish, or a second copy,
/// and Terraform plans `create_before_destroy` creates again during apply,
/// where a refusal would leave the replaced object deposed instead of
/// restoring it.
pub fn check_planned_create(existing: Option<&Claim>, owner: &Owner) -> Result<(), ClaimRefusal> {
    match decide_create(existing, owner) {
        Err(refusal @ ClaimRefusal::OtherOwner { .. }) => Err(refusal),
        _ => Ok(()),
    }
}

/// An object that depends on another one being deleted, for the refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    pub kind: ObjectKind,
    pub key: String,
    pub owner: Owner,
    /// Whether a state is known to hold it (else an interrupted create).
    pub confirmed: bool,
}

impl fmt::Display for Dependent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (", self.kind.noun(), self.key)?;
        if self.confirmed {
            write!(f, "managed by {})", self.owner)
        } else {
            write!(f, "an unfinished create of {}, in no state yet)", self.owner)
        }
    }
}

/// The dependents as one sentence-friendly list.
pub fn list_dependents(dependents: &[Dependent]) -> String {
    dependents.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(owner: &str, token: CreateToken, confirmed: bool) -> Claim {
        Claim {
            kind: ObjectKind::AppInstance,
            key: "acme/erp".into(),
            tenant: TenantId::parse("acme").unwrap(),
            owner: Owner::terraform(owner),
            create_token: token,
            confirmed,
            created_at: "2026-12-01T00:00:00Z".into(),
            address: String::new(),
        }
    }

    fn earlier_process_token() -> CreateToken {
        CreateToken::from_stored("0000000000000000.abc")
    }

    #[test]
    fn creates_are_decided_by_owner_confirmation_and_process() {
        let me = Owner::terraform("/work/a");
        let cases: Vec<(Option<Claim>, Result<CreateDecision, ClaimRefusal>)> = vec![
            (None, Ok(CreateDecision::New)),
            (
                Some(claim("/work/b", earlier_process_token(), true)),
                Err(ClaimRefusal::OtherOwner { owner: Owner::terraform("/work/b") }),
            ),
            (
                Some(claim("/work/b", earlier_process_token(), false)),
                Err(ClaimRefusal::OtherOwner { owner: Owner::terraform("/work/b") }),
            ),
            (Some(claim("/work/a", earlier_process_token(), true)), Err(ClaimRefusal::AlreadyManaged)),
            (
                Some(claim("/work/a", earlier_process_token(), false)),
                Ok(CreateDecision::Resume { previous_token: earlier_process_token() }),
            ),
            (Some(claim("/work/a", CreateToken::new(), false)), Err(ClaimRefusal::DeclaredTwice)),
        ];
        for (existing, expected) in cases {
            assert_eq!(decide_create(existing.as_ref(), &me), expected, "{existing:?}");
        }
    }

    #[test]
    fn plans_refuse_only_other_owners() {
        let me = Owner::terraform("/work/a");
        let confirmed = claim("/work/a", earlier_process_token(), true);
        assert_eq!(check_planned_create(Some(&confirmed), &me), Ok(()));
        let other = claim("/work/b", earlier_process_token(), true);
        assert!(matches!(check_planned_create(Some(&other), &me), Err(ClaimRefusal::OtherOwner { .. })));
        assert_eq!(check_planned_create(None, &me), Ok(()));
    }

    #[test]
    fn tokens_know_their_process() {
        assert!(CreateToken::new().made_by_this_process());
        assert!(!earlier_process_token().made_by_this_process());
        assert_ne!(CreateToken::new(), CreateToken::new());
    }

    #[test]
    fn owners_say_where_objects_are_managed() {
        assert_eq!(Owner::terraform("/work/a").to_string(), "the Terraform configuration \"/work/a\"");
        assert!(Owner::from_stored("terraform").to_string().contains("Terraform configuration"));
        assert!(Owner::from_stored("terraform").is_terraform());
        assert!(!Owner::from_stored("atrium:partner").is_terraform());
    }
}
