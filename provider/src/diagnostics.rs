//! Terraform diagnostics: a short summary, a detail that says what to do, and
//! the attribute path when an input caused it. Never a backtrace.

use std::error::Error as StdError;

use atrium_engine::ValidationError;
use atrium_engine::model::attribute::{AttributePath, PathStep};

use crate::proto::tfplugin6 as pb;

pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: pb::diagnostic::Severity::Error as i32,
        summary: summary.into(),
        detail: detail.into(),
        attribute: None,
    }
}

pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: pb::diagnostic::Severity::Warning as i32,
        summary: summary.into(),
        detail: detail.into(),
        attribute: None,
    }
}

/// An error pointed at an attribute.
pub fn attribute_error(path: &AttributePath, summary: impl Into<String>, detail: impl Into<String>) -> pb::Diagnostic {
    pb::Diagnostic { attribute: Some(to_proto_path(path)), ..error(summary, detail) }
}

/// A validation error as a diagnostic. Terraform 1.11 can point at a
/// top-level attribute but not inside an object value (it falls back to the
/// whole resource block), so nested paths point at their top-level attribute
/// and the detail names the full path.
pub fn from_validation(error: &ValidationError) -> pb::Diagnostic {
    if error.attribute.steps.len() <= 1 {
        return attribute_error(&error.attribute, error.summary.clone(), error.detail.clone());
    }
    let top = AttributePath { steps: error.attribute.steps[..1].to_vec() };
    attribute_error(&top, error.summary.clone(), format!("{}: {}", error.attribute, error.detail))
}

/// A problem setting the platform up: pointed at its attribute, or at the
/// whole configuration when the path is empty.
pub fn from_setup(error: &ValidationError) -> pb::Diagnostic {
    if error.attribute.steps.is_empty() {
        return self::error(error.summary.clone(), error.detail.clone());
    }
    from_validation(error)
}

/// An engine's warning, pointed like a validation error (at nothing when its path is empty).
pub fn warning_from_validation(warning: &ValidationError) -> pb::Diagnostic {
    pb::Diagnostic { severity: pb::diagnostic::Severity::Warning as i32, ..from_setup(warning) }
}

pub fn to_proto_path(path: &AttributePath) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: path
            .steps
            .iter()
            .map(|step| pb::attribute_path::Step {
                selector: Some(match step {
                    PathStep::Attribute(name) => Selector::AttributeName(name.clone()),
                    PathStep::MapKey(key) => Selector::ElementKeyString(key.clone()),
                    PathStep::ListIndex(index) => Selector::ElementKeyInt(*index),
                }),
            })
            .collect(),
    }
}

/// An error and its causes as one sentence chain ("a: b: c"), without
/// backtraces, each cause once.
pub fn error_chain(error: &dyn StdError) -> String {
    atrium_engine::backends::error_chain(error)
}

/// True when any diagnostic is an error.
pub fn has_errors(diagnostics: &[pb::Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == pb::diagnostic::Severity::Error as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chains_name_every_cause_once() {
        let error = Outer(std::io::Error::other("disk full"));
        assert_eq!(error_chain(&error), "outer failed: disk full");
    }

    #[test]
    fn validation_errors_point_at_their_attribute() {
        let diagnostic = from_validation(&ValidationError::new(
            AttributePath::root("manager").attribute("email"),
            "Invalid email",
            "write a@b.c",
        ));
        let steps = diagnostic.attribute.unwrap().steps;
        assert_eq!(steps.len(), 1, "nested paths point at the top-level attribute");
        assert!(diagnostic.detail.starts_with("manager.email: "), "{}", diagnostic.detail);
        assert_eq!(diagnostic.severity, pb::diagnostic::Severity::Error as i32);
    }
}
