//! Attribute paths and validation errors shared by every resource.
//!
//! A validation error names the attribute that caused it, so that each front
//! door can point the user at the exact line of their configuration.

use std::fmt;

/// One step of an [`AttributePath`]: an attribute name, a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathStep {
    Attribute(String),
    MapKey(String),
    ListIndex(i64),
}

/// Where in a resource's (or the provider's) configuration a value sits,
/// e.g. `manager.email` or `targets["lyon"].docker_host`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AttributePath {
    pub steps: Vec<PathStep>,
}

impl AttributePath {
    /// The path of a top-level attribute.
    pub fn root(name: &str) -> Self {
        Self { steps: vec![PathStep::Attribute(name.to_owned())] }
    }

    /// This path extended by a nested attribute.
    pub fn attribute(&self, name: &str) -> Self {
        let mut steps = self.steps.clone();
        steps.push(PathStep::Attribute(name.to_owned()));
        Self { steps }
    }

    /// This path extended by a map key.
    pub fn key(&self, key: &str) -> Self {
        let mut steps = self.steps.clone();
        steps.push(PathStep::MapKey(key.to_owned()));
        Self { steps }
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, step) in self.steps.iter().enumerate() {
            match step {
                PathStep::Attribute(name) if index == 0 => write!(f, "{name}")?,
                PathStep::Attribute(name) => write!(f, ".{name}")?,
                PathStep::MapKey(key) => write!(f, "[{key:?}]")?,
                PathStep::ListIndex(position) => write!(f, "[{position}]")?,
            }
        }
        Ok(())
    }
}

/// Bad input: which attribute, a one-line summary and a detail that says what
/// would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{attribute}: {summary}: {detail}")]
pub struct ValidationError {
    pub attribute: AttributePath,
    pub summary: String,
    pub detail: String,
}

impl ValidationError {
    pub fn new(attribute: AttributePath, summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { attribute, summary: summary.into(), detail: detail.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_terraform_references() {
        let path = AttributePath::root("targets").key("lyon").attribute("docker_host");
        assert_eq!(path.to_string(), "targets[\"lyon\"].docker_host");
        assert_eq!(AttributePath::root("manager").attribute("email").to_string(), "manager.email");
    }
}
