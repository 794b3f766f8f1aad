//! Typed identifiers: natural keys users can see and import by.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::attribute::{AttributePath, ValidationError};

/// A tenant's name, which is also its id: a slug such as `acme`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// Checks the slug rule `[a-z][a-z0-9-]{1,38}[a-z0-9]`: 3 to 40 characters,
    /// usable in DNS labels, container and database names.
    pub fn parse(name: &str) -> Result<Self, String> {
        let bytes = name.as_bytes();
        let valid_length = (3..=40).contains(&bytes.len());
        let first_ok = bytes.first().is_some_and(|b| b.is_ascii_lowercase());
        let last_ok = bytes.last().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let middle_ok = bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if valid_length && first_ok && last_ok && middle_ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "{name:?} is not a valid tenant name: use 3 to 40 characters, lowercase letters, \
                 digits and hyphens, starting with a letter and ending with a letter or digit \
                 (for example \"acme\" or \"acme-gmbh\")"
            ))
        }
    }

    /// Like [`TenantId::parse`], as a validation error on `attribute`.
    pub fn parse_attribute(name: &str, attribute: AttributePath) -> Result<Self, ValidationError> {
        Self::parse(name).map_err(|detail| ValidationError::new(attribute, "Invalid tenant name", detail))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, valid: bool) {
        assert_eq!(TenantId::parse(name).is_ok(), valid, "{name:?}");
    }

    #[test]
    fn tenant_names_follow_the_slug_rule() {
        check("acme", true);
        check("a1b", true);
        check("acme-gmbh-2", true);
        check(&format!("a{}", "b".repeat(39)), true);
        check(&format!("a{}", "b".repeat(40)), false);
        check("ab", false);
        check("1acme", false);
        check("acme-", false);
        check("Acme", false);
        check("ac_me", false);
        check("acmé", false);
        check("", false);
    }
}
