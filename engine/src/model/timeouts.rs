//! Per-operation deadlines (`timeouts { create = "10m" }`), as every resource has.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::attribute::{AttributePath, ValidationError};

/// How long each operation may take before it is abandoned (and undone where
/// it cannot complete). Durations are written like `"30s"`, `"10m"` or `"1h30m"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Deadline for creating the object, e.g. `"10m"`. Default: 5 minutes.
    #[serde(default)]
    pub create: Option<String>,
    /// Deadline for an in-place update, e.g. `"10m"`. Default: 5 minutes.
    #[serde(default)]
    pub update: Option<String>,
    /// Deadline for deleting the object, e.g. `"10m"`. Default: 5 minutes.
    #[serde(default)]
    pub delete: Option<String>,
}

/// The deadline used when `timeouts` leaves an operation unset.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Which operation a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Timeouts {
    /// Checks every duration that is set.
    pub fn validate(&self, path: &AttributePath) -> Vec<ValidationError> {
        [("create", &self.create), ("update", &self.update), ("delete", &self.delete)]
            .into_iter()
            .filter_map(|(name, value)| {
                let value = value.as_deref()?;
                parse_duration(value)
                    .err()
                    .map(|detail| ValidationError::new(path.attribute(name), "Invalid duration", detail))
            })
            .collect()
    }

    /// The deadline for `operation`, falling back to [`DEFAULT_TIMEOUT`].
    pub fn deadline(timeouts: Option<&Timeouts>, operation: Operation) -> Duration {
        let value = timeouts.and_then(|t| match operation {
            Operation::Create => t.create.as_deref(),
            Operation::Update => t.update.as_deref(),
            Operation::Delete => t.delete.as_deref(),
        });
        value.and_then(|v| parse_duration(v).ok()).unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// Parses durations such as `"90s"`, `"10m"`, `"1h30m"` or `"500ms"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "{text:?} is not a duration: write a positive number followed by a unit (ms, s, m or h), e.g. \"30s\", \"10m\" or \"1h30m\""
        )
    };
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let (unit, length) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else {
            return Err(invalid());
        };
        rest = &rest[length..];
        let part = unit.checked_mul(u32::try_from(number).map_err(|_| invalid())?).ok_or_else(invalid)?;
        total = total.checked_add(part).ok_or_else(invalid)?;
    }
    if total.is_zero() {
        return Err(invalid());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<u64>) {
        assert_eq!(parse_duration(text).ok().map(|d| d.as_millis() as u64), expected, "{text:?}");
    }

    #[test]
    fn durations_parse_like_terraform_timeouts() {
        check("30s", Some(30_000));
        check("10m", Some(600_000));
        check("1h30m", Some(5_400_000));
        check("500ms", Some(500));
        check("0s", None);
        check("", None);
        check("10", None);
        check("ten minutes", None);
        check("5d", None);
        check("-5s", None);
    }

    #[test]
    fn bad_timeouts_name_the_operation() {
        let timeouts = Timeouts { create: Some("soon".into()), ..Default::default() };
        let errors = timeouts.validate(&AttributePath::root("timeouts"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].attribute.to_string(), "timeouts.create");
    }
}
