//! `atrium_tenant`: a customer of the platform.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::Date;

use super::ids::TenantId;
use super::timeouts::Timeouts;
use super::validate;
use crate::model::attribute::{AttributePath, ValidationError};

/// A customer's plan: it sets the default user quota, resource limits and the
/// support levels the customer may buy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Basic,
    Business,
    Enterprise,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Basic, Tier::Business, Tier::Enterprise];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Basic => "basic",
            Tier::Business => "business",
            Tier::Enterprise => "enterprise",
        }
    }

    pub fn parse(value: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|tier| tier.as_str() == value)
    }

    /// The user quota a tenant of this tier gets when `user_quota` is not set.
    pub fn default_user_quota(self) -> u32 {
        match self {
            Tier::Basic => 10,
            Tier::Business => 50,
            Tier::Enterprise => 250,
        }
    }

    /// The largest user quota this tier allows.
    pub fn max_user_quota(self) -> u32 {
        match self {
            Tier::Basic => 25,
            Tier::Business => 500,
            Tier::Enterprise => 100_000,
        }
    }
}

/// Whether a tenant's apps are running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
    Expired,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Expired => "expired",
        }
    }

    pub fn parse(value: &str) -> Option<TenantStatus> {
        [TenantStatus::Active, TenantStatus::Suspended, TenantStatus::Expired]
            .into_iter()
            .find(|status| status.as_str() == value)
    }
}

/// The person at the customer who runs the apps: gets the manager account
/// (never the built-in root/admin user) and the welcome email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manager {
    /// The manager's email address: login name in each app and where the welcome email goes.
    pub email: String,
    /// The manager's full name, as shown in the apps.
    pub name: String,
}

/// A customer of the platform: owns app instances, domains and a support plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantDocument {
    /// The tenant's name and natural key, a slug of 3 to 40 characters (`[a-z][a-z0-9-]{1,38}[a-z0-9]`),
    /// used in container, network and DNS names. Changing it replaces the tenant.
    #[schemars(extend("x-atrium-forces-replacement" = true))]
    pub name: String,
    /// The customer's name as people read it, e.g. `ACME GmbH`.
    pub display_name: String,
    /// The customer's plan: `basic`, `business` or `enterprise`. Sets the default
    /// user quota and resource limits; changes in place.
    pub tier: Tier,
    /// How many user accounts the customer may have across their apps.
    /// Defaults to the tier's quota (basic 10, business 50, enterprise 250).
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true))]
    pub user_quota: Option<u32>,
    /// The last day of the customer's contract, as an RFC 3339 date (`2027-03-31`).
    /// Unset means no end date.
    #[serde(default)]
    pub expires_on: Option<String>,
    /// The customer's manager: gets the manager account in each app and the welcome email.
    pub manager: Manager,
    /// Whether the manager gets a welcome email when the tenant's first app is ready. Default `true`.
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true))]
    pub welcome_email: Option<bool>,
    /// Deadlines for create, update and delete.
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
    /// The tenant's id: the same as `name`.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub id: Option<String>,
    /// `active`, or `suspended` once `expires_on` has passed: the tenant's apps are stopped (not removed,
    /// data kept) and its domains answer 503 with a short page. Extending `expires_on` resumes everything.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub status: Option<String>,
    /// Why the tenant is not active, e.g. `expired on 2026-01-31: …`; null while active.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub status_reason: Option<String>,
    /// When the tenant was created, as an RFC 3339 timestamp (UTC).
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub created_at: Option<String>,
}

/// A manager whose fields may not be known yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ManagerDraft {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// The tenant's attributes as far as they are known; missing means null or
/// not known yet. Validation checks only what is there.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TenantDraft {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub user_quota: Option<serde_json::Number>,
    #[serde(default)]
    pub expires_on: Option<String>,
    #[serde(default)]
    pub manager: Option<ManagerDraft>,
    #[serde(default)]
    pub welcome_email: Option<bool>,
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
}

impl TenantDraft {
    /// Every problem with the known attributes, each naming its attribute.
    pub fn validate(&self) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        let mut check = |path: AttributePath, summary: &str, result: Option<Result<(), String>>| {
            if let Some(Err(detail)) = result {
                errors.push(ValidationError::new(path, summary, detail));
            }
        };
        let tier = self.tier.as_deref().and_then(Tier::parse);
        let manager = self.manager.as_ref();
        check(
            AttributePath::root("name"),
            "Invalid tenant name",
            self.name.as_deref().map(|n| TenantId::parse(n).map(drop)),
        );
        check(
            AttributePath::root("display_name"),
            "Invalid display name",
            self.display_name.as_deref().map(|text| validate::display_text(text, 100)),
        );
        check(
            AttributePath::root("tier"),
            "Unknown tier",
            self.tier.as_deref().map(|text| match Tier::parse(text) {
                Some(_) => Ok(()),
                None => Err(format!("{text:?} is not a tier: use one of \"basic\", \"business\" or \"enterprise\"")),
            }),
        );
        check(
            AttributePath::root("user_quota"),
            "Invalid user quota",
            self.user_quota.as_ref().map(|quota| check_user_quota(quota, tier).map(drop)),
        );
        check(
            AttributePath::root("expires_on"),
            "Invalid date",
            self.expires_on.as_deref().map(|d| validate::date(d).map(drop)),
        );
        check(
            AttributePath::root("manager").attribute("email"),
            "Invalid email address",
            manager.and_then(|m| m.email.as_deref()).map(validate::email),
        );
        check(
            AttributePath::root("manager").attribute("name"),
            "Invalid manager name",
            manager.and_then(|m| m.name.as_deref()).map(|name| validate::display_text(name, 100)),
        );
        if let Some(timeouts) = &self.timeouts {
            errors.extend(timeouts.validate(&AttributePath::root("timeouts")));
        }
        errors
    }
}

fn check_user_quota(quota: &serde_json::Number, tier: Option<Tier>) -> Result<u32, String> {
    let value = quota.as_u64().filter(|value| *value >= 1).and_then(|value| u32::try_from(value).ok());
    let Some(value) = value else {
        return Err(format!("{quota} is not a user quota: use a whole number of at least 1"));
    };
    if let Some(tier) = tier
        && value > tier.max_user_quota()
    {
        return Err(format!(
            "{value} users is more than the {} tier allows: use 1 to {}, or a larger tier",
            tier.as_str(),
            tier.max_user_quota()
        ));
    }
    Ok(value)
}

/// A tenant's desired state: fully known, validated, defaults filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSpec {
    pub name: TenantId,
    pub display_name: String,
    pub tier: Tier,
    pub user_quota: u32,
    pub expires_on: Option<Date>,
    pub manager: Manager,
    pub welcome_email: bool,
}

impl TenantSpec {
    /// Validates a fully known document and fills the defaults.
    pub fn from_document(document: &TenantDocument) -> Result<TenantSpec, Vec<ValidationError>> {
        let draft = TenantDraft {
            name: Some(document.name.clone()),
            display_name: Some(document.display_name.clone()),
            tier: Some(document.tier.as_str().to_owned()),
            user_quota: document.user_quota.map(serde_json::Number::from),
            expires_on: document.expires_on.clone(),
            manager: Some(ManagerDraft {
                email: Some(document.manager.email.clone()),
                name: Some(document.manager.name.clone()),
            }),
            welcome_email: document.welcome_email,
            timeouts: document.timeouts.clone(),
        };
        let errors = draft.validate();
        if !errors.is_empty() {
            return Err(errors);
        }
        let name = TenantId::parse_attribute(&document.name, AttributePath::root("name")).map_err(|e| vec![e])?;
        let expires_on = match &document.expires_on {
            Some(text) => Some(validate::date(text).map_err(|detail| {
                vec![ValidationError::new(AttributePath::root("expires_on"), "Invalid date", detail)]
            })?),
            None => None,
        };
        Ok(TenantSpec {
            name,
            display_name: document.display_name.clone(),
            tier: document.tier,
            user_quota: document.user_quota.unwrap_or_else(|| document.tier.default_user_quota()),
            expires_on,
            manager: document.manager.clone(),
            welcome_email: document.welcome_email.unwrap_or(true),
        })
    }
}

impl TenantSpec {
    /// The status the tenant should have on `today`: suspended once
    /// `expires_on` has passed (the day itself still counts), active otherwise.
    pub fn desired_status(&self, today: Date) -> TenantStatus {
        match self.expires_on {
            Some(expires_on) if expires_on < today => TenantStatus::Suspended,
            _ => TenantStatus::Active,
        }
    }

    /// Why the tenant has `status`, for people; `None` when active.
    pub fn status_reason(&self, status: TenantStatus) -> Option<String> {
        status_reason(status, self.expires_on)
    }
}

/// Why a tenant expiring on `expires_on` has `status`, for people; `None` when active.
pub fn status_reason(status: TenantStatus, expires_on: Option<Date>) -> Option<String> {
    match (status, expires_on) {
        (TenantStatus::Active, _) => None,
        (_, Some(expires_on)) => Some(format!(
            "expired on {}: its apps are stopped and its domains answer 503; data is kept, and extending expires_on resumes everything",
            validate::format_date(expires_on)
        )),
        (_, None) => Some("suspended: its apps are stopped and its domains answer 503; data is kept".to_owned()),
    }
}

/// What depends on a tenant, for the checks a tenant's plan makes: the users
/// its app instances use (each instance with its users) and its support level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantDependents {
    pub instances: Vec<(crate::model::app_instance::AppInstanceId, u32)>,
    pub support_level: Option<crate::model::support_plan::SupportLevel>,
}

impl TenantDependents {
    /// The users the tenant's instances use together.
    pub fn users_in_use(&self) -> u64 {
        self.instances.iter().map(|(_, users)| u64::from(*users)).sum()
    }
}

/// Today's date in UTC.
pub fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}

/// A tenant as the registry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub spec: TenantSpec,
    pub status: TenantStatus,
    /// RFC 3339 timestamp, UTC, whole seconds.
    pub created_at: String,
    /// Which front door manages the tenant (`terraform` or `cli`); neither takes over the other's.
    pub owner: String,
}

impl TenantRecord {
    /// The document a user sees for this record; `timeouts` is configuration
    /// only and comes from the caller.
    pub fn to_document(&self, timeouts: Option<Timeouts>) -> TenantDocument {
        TenantDocument {
            name: self.spec.name.to_string(),
            display_name: self.spec.display_name.clone(),
            tier: self.spec.tier,
            user_quota: Some(self.spec.user_quota),
            expires_on: self.spec.expires_on.map(validate::format_date),
            manager: self.spec.manager.clone(),
            welcome_email: Some(self.spec.welcome_email),
            timeouts,
            id: Some(self.spec.name.to_string()),
            status: Some(self.status.as_str().to_owned()),
            status_reason: self.spec.status_reason(self.status),
            created_at: Some(self.created_at.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(json: serde_json::Value) -> TenantDraft {
        serde_json::from_value(json).unwrap()
    }

    fn check(json: serde_json::Value, expected_paths: &[&str]) {
        let errors = draft(json.clone()).validate();
        let paths: Vec<String> = errors.iter().map(|e| e.attribute.to_string()).collect();
        assert_eq!(paths, expected_paths, "{json}");
    }

    #[test]
    fn tenant_validation_names_the_attribute() {
        check(serde_json::json!({"name": "acme", "tier": "basic"}), &[]);
        check(serde_json::json!({}), &[]);
        check(serde_json::json!({"name": "ACME"}), &["name"]);
        check(serde_json::json!({"tier": "gold"}), &["tier"]);
        check(serde_json::json!({"tier": "basic", "user_quota": 26}), &["user_quota"]);
        check(serde_json::json!({"tier": "business", "user_quota": 26}), &[]);
        check(serde_json::json!({"user_quota": 0}), &["user_quota"]);
        check(serde_json::json!({"user_quota": 2.5}), &["user_quota"]);
        check(serde_json::json!({"expires_on": "31.12.2027"}), &["expires_on"]);
        check(serde_json::json!({"manager": {"email": "nope"}}), &["manager.email"]);
        check(serde_json::json!({"manager": {"name": ""}}), &["manager.name"]);
        check(serde_json::json!({"timeouts": {"delete": "x"}}), &["timeouts.delete"]);
        check(serde_json::json!({"display_name": "a\u{7}"}), &["display_name"]);
    }

    #[test]
    fn spec_fills_defaults_from_the_tier() {
        let document: TenantDocument = serde_json::from_value(serde_json::json!({
            "name": "acme", "display_name": "ACME", "tier": "business",
            "manager": {"email": "m@acme.com", "name": "M"}
        }))
        .unwrap();
        let spec = TenantSpec::from_document(&document).unwrap();
        assert_eq!(spec.user_quota, 50);
        assert!(spec.welcome_email);
        assert_eq!(spec.expires_on, None);
    }

    #[test]
    fn document_schema_marks_attribute_behaviour() {
        let schema = super::super::document_schema::<TenantDocument>();
        let properties = &schema["properties"];
        assert_eq!(properties["name"]["x-atrium-forces-replacement"], true);
        assert_eq!(properties["user_quota"]["x-atrium-defaulted"], true);
        assert_eq!(properties["id"]["readOnly"], true);
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(required, ["name", "display_name", "tier", "manager"]);
        assert!(properties["display_name"]["description"].as_str().unwrap().contains("ACME"));
    }
}
