//! `atrium_support_plan`: how fast and where the provider answers a tenant,
//! and whether her manager gets an account on the support tracker.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ids::TenantId;
use super::tenant::Tier;
use super::timeouts::Timeouts;
use crate::model::attribute::{AttributePath, ValidationError};

/// A support level: business hours or around the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupportLevel {
    Standard8x5,
    Premium24x7,
}

impl SupportLevel {
    pub const ALL: [SupportLevel; 2] = [SupportLevel::Standard8x5, SupportLevel::Premium24x7];

    pub fn as_str(self) -> &'static str {
        match self {
            SupportLevel::Standard8x5 => "standard_8x5",
            SupportLevel::Premium24x7 => "premium_24x7",
        }
    }

    pub fn parse(text: &str) -> Option<SupportLevel> {
        SupportLevel::ALL.into_iter().find(|level| level.as_str() == text)
    }

    /// The first response the level promises, in minutes (within its hours).
    pub fn first_response_minutes(self) -> u32 {
        match self {
            SupportLevel::Standard8x5 => 480,
            SupportLevel::Premium24x7 => 60,
        }
    }

    /// When the level's people answer.
    pub fn hours(self) -> &'static str {
        match self {
            SupportLevel::Standard8x5 => "Monday to Friday, 08:00 to 17:00 (customer's time zone)",
            SupportLevel::Premium24x7 => "every day, around the clock",
        }
    }

    /// The channels a plan of this level gets when `channels` is not set.
    pub fn default_channels(self) -> BTreeSet<String> {
        let channels: &[&str] = match self {
            SupportLevel::Standard8x5 => &["email", "forum"],
            SupportLevel::Premium24x7 => &["chat", "email", "forum", "phone"],
        };
        channels.iter().map(|c| (*c).to_owned()).collect()
    }

    /// The levels a tier may buy.
    pub fn allowed_for(tier: Tier) -> &'static [SupportLevel] {
        match tier {
            Tier::Basic => &[SupportLevel::Standard8x5],
            Tier::Business | Tier::Enterprise => &SupportLevel::ALL,
        }
    }
}

/// Every support channel there is.
pub const CHANNELS: [&str; 4] = ["chat", "email", "forum", "phone"];

/// A tenant's support plan: level, channels, response target and tracker access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportPlanDocument {
    /// The tenant the plan covers (`atrium_tenant.<name>.id`); a tenant has one plan. Changing it replaces
    /// the plan.
    #[schemars(extend("x-atrium-forces-replacement" = true))]
    pub tenant_id: String,
    /// `standard_8x5` (business hours; every tier) or `premium_24x7` (around the clock; business and
    /// enterprise tiers). Changes in place.
    pub level: String,
    /// Where the tenant reaches support: any of `email`, `phone`, `chat`, `forum` (`phone` only with
    /// `premium_24x7`). Default: the level's channels (`email` and `forum`; premium adds `chat` and `phone`).
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true), extend("uniqueItems" = true))]
    pub channels: Option<Vec<String>>,
    /// The first-response target in minutes within the level's hours: the level's promise (480 for
    /// standard, 60 for premium) unless set, and never slower than it.
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true))]
    pub first_response_minutes: Option<u32>,
    /// Whether the tenant's manager gets an account on the support tracker, as a member of the tenant's
    /// support project (where the level is recorded too). Default `false`.
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true))]
    pub tracker_access: Option<bool>,
    /// Deadlines for create, update and delete.
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
    /// The plan's id: its tenant's name.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub id: Option<String>,
    /// When the level's people answer.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub hours: Option<String>,
    /// The day the plan started (`YYYY-MM-DD`).
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub starts_on: Option<String>,
    /// `active`, or `suspended` while the tenant is (its expiry has passed).
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub status: Option<String>,
}

/// The attributes as far as they are known (validation at plan time).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SupportPlanDraft {
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub first_response_minutes: Option<serde_json::Number>,
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
}

impl SupportPlanDraft {
    /// Every problem with the known attributes, each naming its attribute.
    /// `tier` is the tenant's tier when known.
    pub fn validate(&self, tier: Option<Tier>) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        if let Some(tenant) = &self.tenant_id
            && let Err(detail) = TenantId::parse(tenant)
        {
            errors.push(ValidationError::new(AttributePath::root("tenant_id"), "Invalid tenant id", detail));
        }
        let level = self.level.as_deref().map(|text| (text, SupportLevel::parse(text)));
        match level {
            Some((text, None)) => errors.push(ValidationError::new(
                AttributePath::root("level"),
                "Unknown support level",
                format!("{text:?} is not a support level: use \"standard_8x5\" or \"premium_24x7\""),
            )),
            Some((_, Some(level))) => {
                if let Some(tier) = tier
                    && !SupportLevel::allowed_for(tier).contains(&level)
                {
                    errors.push(ValidationError::new(
                        AttributePath::root("level"),
                        "Support level not allowed for the tier",
                        format!(
                            "a {} tenant can have {}; set level = \"standard_8x5\", or raise the tenant's tier to business or enterprise",
                            tier.as_str(),
                            quoted(SupportLevel::allowed_for(tier).iter().map(|l| l.as_str()))
                        ),
                    ));
                }
            }
            None => {}
        }
        let level = level.and_then(|(_, level)| level);
        for channel in self.channels.iter().flatten() {
            let here = AttributePath::root("channels");
            if !CHANNELS.contains(&channel.as_str()) {
                errors.push(ValidationError::new(
                    here,
                    "Unknown support channel",
                    format!("{channel:?} is not a channel: use {}", quoted(CHANNELS.iter().copied())),
                ));
            } else if channel == "phone" && level == Some(SupportLevel::Standard8x5) {
                errors.push(ValidationError::new(
                    here,
                    "Phone support needs the premium level",
                    "phone is offered with premium_24x7 only: remove \"phone\" from channels, or set level = \"premium_24x7\"",
                ));
            }
        }
        if let Some(minutes) = &self.first_response_minutes {
            let here = AttributePath::root("first_response_minutes");
            match (minutes.as_u64(), level) {
                (Some(0), _) => errors.push(ValidationError::new(
                    here,
                    "Invalid response time",
                    "0 minutes is not a response time: use a whole number of minutes from 1",
                )),
                (Some(m), Some(level)) if m > u64::from(level.first_response_minutes()) => {
                    errors.push(ValidationError::new(
                        here,
                        "Slower than the level promises",
                        format!(
                            "{} promises a first response within {} minutes: set at most {} (or leave it unset)",
                            level.as_str(),
                            level.first_response_minutes(),
                            level.first_response_minutes()
                        ),
                    ))
                }
                (None, _) => errors.push(ValidationError::new(
                    here,
                    "Invalid response time",
                    format!("{minutes} is not a whole number of minutes"),
                )),
                _ => {}
            }
        }
        if let Some(timeouts) = &self.timeouts {
            errors.extend(timeouts.validate(&AttributePath::root("timeouts")));
        }
        errors
    }
}

fn quoted<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.map(|item| format!("{item:?}")).collect::<Vec<_>>().join(", ")
}

/// A support plan's desired state: validated, defaults filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportPlanSpec {
    pub tenant_id: TenantId,
    pub level: SupportLevel,
    pub channels: BTreeSet<String>,
    pub first_response_minutes: u32,
    pub tracker_access: bool,
}

impl SupportPlanSpec {
    pub fn from_document(
        document: &SupportPlanDocument,
        tier: Option<Tier>,
    ) -> Result<SupportPlanSpec, Vec<ValidationError>> {
        let draft = SupportPlanDraft {
            tenant_id: Some(document.tenant_id.clone()),
            level: Some(document.level.clone()),
            channels: document.channels.clone(),
            first_response_minutes: document.first_response_minutes.map(serde_json::Number::from),
            timeouts: document.timeouts.clone(),
        };
        let errors = draft.validate(tier);
        if !errors.is_empty() {
            return Err(errors);
        }
        let invalid = |attribute: &str, detail: String| {
            vec![ValidationError::new(AttributePath::root(attribute), "Invalid support plan", detail)]
        };
        let level = SupportLevel::parse(&document.level).ok_or_else(|| invalid("level", document.level.clone()))?;
        Ok(SupportPlanSpec {
            tenant_id: TenantId::parse(&document.tenant_id).map_err(|d| invalid("tenant_id", d))?,
            level,
            channels: document
                .channels
                .clone()
                .map(|c| c.into_iter().collect())
                .unwrap_or_else(|| level.default_channels()),
            first_response_minutes: document.first_response_minutes.unwrap_or_else(|| level.first_response_minutes()),
            tracker_access: document.tracker_access.unwrap_or(false),
        })
    }
}

/// A support plan as the registry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportPlanRecord {
    pub spec: SupportPlanSpec,
    /// `YYYY-MM-DD`.
    pub starts_on: String,
    pub owner: String,
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: serde_json::Value, tier: Option<Tier>, expected: &[&str]) {
        let draft: SupportPlanDraft = serde_json::from_value(json.clone()).unwrap();
        let paths: Vec<String> = draft.validate(tier).iter().map(|e| e.attribute.to_string()).collect();
        assert_eq!(paths, expected, "{json} for {tier:?}");
    }

    #[test]
    fn support_plan_validation_names_the_attribute() {
        check(serde_json::json!({"tenant_id": "acme", "level": "standard_8x5"}), Some(Tier::Basic), &[]);
        check(serde_json::json!({"level": "premium_24x7"}), Some(Tier::Business), &[]);
        check(serde_json::json!({"level": "premium_24x7"}), Some(Tier::Basic), &["level"]);
        check(serde_json::json!({"level": "gold"}), None, &["level"]);
        check(serde_json::json!({"tenant_id": "A"}), None, &["tenant_id"]);
        check(serde_json::json!({"level": "standard_8x5", "channels": ["phone"]}), None, &["channels"]);
        check(serde_json::json!({"level": "premium_24x7", "channels": ["phone", "fax"]}), None, &["channels"]);
        check(
            serde_json::json!({"level": "standard_8x5", "first_response_minutes": 600}),
            None,
            &["first_response_minutes"],
        );
        check(serde_json::json!({"level": "premium_24x7", "first_response_minutes": 30}), None, &[]);
        check(serde_json::json!({"first_response_minutes": 0}), None, &["first_response_minutes"]);
    }

    #[test]
    fn defaults_come_from_the_level() {
        let document: SupportPlanDocument =
            serde_json::from_value(serde_json::json!({"tenant_id": "acme", "level": "premium_24x7"})).unwrap();
        let spec = SupportPlanSpec::from_document(&document, Some(Tier::Enterprise)).unwrap();
        assert_eq!(spec.first_response_minutes, 60);
        assert!(spec.channels.contains("phone"));
        assert!(!spec.tracker_access);
    }
}
