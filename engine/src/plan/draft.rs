//! What every planner reads and answers, whatever the front door: a draft of
//! the configuration, where some values are not known until apply, and
//! planned attributes, each known now or only after apply.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::model::attribute::{AttributePath, ValidationError};

/// A resource's configuration at plan time: the known values by top-level
/// attribute (null ones left out), and the attributes that hold a value not
/// known until apply (in whole or in part; their known parts are kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Draft {
    known: Map<String, Value>,
    unknown: BTreeSet<String>,
}

impl Draft {
    /// A draft from the known parts as a JSON object and the names of the
    /// attributes that are not (wholly) known.
    pub fn new(known: Option<Value>, unknown: impl IntoIterator<Item = String>) -> Self {
        let known = match known {
            Some(Value::Object(attributes)) => attributes.into_iter().filter(|(_, value)| !value.is_null()).collect(),
            _ => Map::new(),
        };
        Self { known, unknown: unknown.into_iter().collect() }
    }

    /// A fully known draft (a prior state, or a configuration with no unknowns).
    pub fn known(values: &impl serde::Serialize) -> Self {
        Self::new(serde_json::to_value(values).ok(), [])
    }

    pub fn is_unknown(&self, attribute: &str) -> bool {
        self.unknown.contains(attribute)
    }

    /// The attribute's known, non-null value.
    pub fn get(&self, attribute: &str) -> Option<&Value> {
        self.known.get(attribute)
    }

    pub fn str(&self, attribute: &str) -> Option<&str> {
        self.get(attribute).and_then(Value::as_str)
    }

    /// The attribute as planned: unknown, or its known value (null when unset).
    pub fn planned(&self, attribute: &str) -> Planned {
        if self.is_unknown(attribute) {
            Planned::Unknown
        } else {
            Planned::Known(self.get(attribute).cloned().unwrap_or(Value::Null))
        }
    }

    /// The known values read into a resource's lenient draft type; a plan
    /// refused with the reason when they do not fit it.
    pub fn typed<T: DeserializeOwned, D>(&self, noun: &str) -> Result<T, DraftPlan<D>> {
        serde_json::from_value(Value::Object(self.known.clone())).map_err(|error| {
            DraftPlan::refused(vec![ValidationError::new(
                AttributePath::default(),
                format!("Invalid {noun} configuration"),
                error.to_string(),
            )])
        })
    }
}

/// What a planner answers for one object, for a front door that plans with
/// unknown values: the attributes it sets (defaults and computed values; the
/// others are as configured), what forces replacement, problems, and the
/// decisions apply carries out (`None` for a destroy or a refused plan).
#[derive(Debug)]
pub struct DraftPlan<D> {
    pub attributes: Vec<(&'static str, Planned)>,
    pub requires_replace: Vec<AttributePath>,
    pub errors: Vec<ValidationError>,
    pub warnings: Vec<ValidationError>,
    pub decision: Option<D>,
}

impl<D> Default for DraftPlan<D> {
    fn default() -> Self {
        Self {
            attributes: Vec::new(),
            requires_replace: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            decision: None,
        }
    }
}

impl<D> DraftPlan<D> {
    /// A plan that stops at its errors.
    pub fn refused(errors: Vec<ValidationError>) -> Self {
        Self { errors, ..Self::default() }
    }

    /// The planned value of an attribute the plan sets.
    pub fn get(&self, attribute: &str) -> Option<&Planned> {
        self.attributes.iter().find(|(name, _)| *name == attribute).map(|(_, planned)| planned)
    }
}

/// The attributes among `replacing` whose planned value may differ from the
/// prior state's (none when creating).
pub fn replaced(prior: Option<&Draft>, config: &Draft, replacing: &[String]) -> Vec<AttributePath> {
    let Some(prior) = prior else { return Vec::new() };
    replacing
        .iter()
        .filter(|attribute| config.planned(attribute).differs_from(prior.get(attribute)))
        .map(|attribute| AttributePath::root(attribute))
        .collect()
}

/// A planned attribute: its value now, or known only after apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    Known(Value),
    Unknown,
}

impl Planned {
    pub fn string(text: impl Into<String>) -> Self {
        Planned::Known(Value::String(text.into()))
    }

    /// Whether the value may differ from `before`: unknown, or known and
    /// different (null and absent are the same, numbers compare by value).
    pub fn differs_from(&self, before: Option<&Value>) -> bool {
        match self {
            Planned::Unknown => true,
            Planned::Known(value) => !same(Some(value), before),
        }
    }
}

/// Whether two JSON values mean the same attribute value: null and absent
/// are alike, numbers compare by value (`1` and `1.0`), objects key by key.
pub fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let a = a.filter(|v| !v.is_null());
    let b = b.filter(|v| !v.is_null());
    match (a, b) {
        (None, None) => true,
        (Some(Value::Number(a)), Some(Value::Number(b))) => a.as_f64() == b.as_f64(),
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(Some(a), Some(b)))
        }
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().all(|key| same(a.get(key), b.get(key)))
        }
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The top-level attributes a resource document marks with `marker` (see
/// [`crate::model::markers`]): each rule is declared once, on the document.
pub fn marked_attributes<T: schemars::JsonSchema>(marker: &str) -> Vec<String> {
    let schema = crate::model::document_schema::<T>();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return Vec::new() };
    properties
        .iter()
        .filter(|(_, property)| property.get(marker).and_then(Value::as_bool) == Some(true))
        .map(|(name, _)| name.clone())
        .collect()
}

/// One plan in a test table: what forces replacement, the planned values of
/// `attributes` (see [`shown`]), then errors and warnings by attribute.
#[cfg(test)]
pub(crate) fn row<D>(plan: &DraftPlan<D>, attributes: &[&str]) -> String {
    let replace: Vec<String> = plan.requires_replace.iter().map(ToString::to_string).collect();
    let mut text = format!("replace={replace:?}");
    for attribute in attributes {
        text.push_str(&format!(" {attribute}={}", shown(plan.get(attribute))));
    }
    let notes = plan
        .errors
        .iter()
        .map(|e| format!("error {}: {}", e.attribute, e.summary))
        .chain(plan.warnings.iter().map(|w| format!("warn {}: {}", w.attribute, w.summary)));
    for note in notes {
        text.push_str(&format!(" [{note}]"));
    }
    text
}

/// A planned value in a test table: `?` unknown, `-` not set by the plan,
/// objects as `{..}` and lists of them by their length.
#[cfg(test)]
pub(crate) fn shown(planned: Option<&Planned>) -> String {
    match planned {
        None => "-".into(),
        Some(Planned::Unknown) => "?".into(),
        Some(Planned::Known(Value::Object(_))) => "{..}".into(),
        Some(Planned::Known(Value::Array(items))) if items.iter().any(Value::is_object) => format!("[{}]", items.len()),
        Some(Planned::Known(value)) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_draft_tells_unknown_from_null_and_known() {
        let draft = Draft::new(Some(json!({"name": "web", "version": null, "users": 5})), ["channel".to_owned()]);
        assert_eq!(draft.planned("name"), Planned::string("web"));
        assert_eq!(draft.planned("version"), Planned::Known(Value::Null));
        assert_eq!(draft.planned("channel"), Planned::Unknown);
        assert!(draft.get("version").is_none());
    }

    #[test]
    fn values_compare_as_terraform_sees_them() {
        assert!(same(Some(&json!(1)), Some(&json!(1.0))));
        assert!(same(None, Some(&Value::Null)));
        assert!(same(Some(&json!({"a": 1, "b": null})), Some(&json!({"a": 1.0}))));
        assert!(!same(Some(&json!({"a": 1})), Some(&json!({"a": 2}))));
        assert!(!same(Some(&json!("x")), None));
        assert!(Planned::Unknown.differs_from(Some(&json!("x"))));
        assert!(!Planned::string("x").differs_from(Some(&json!("x"))));
    }

    #[test]
    fn replacement_rules_come_from_the_document_markers() {
        let mut replacing = marked_attributes::<crate::model::app_instance::AppInstanceDocument>(
            crate::model::markers::FORCES_REPLACEMENT,
        );
        replacing.sort();
        assert_eq!(replacing, ["app", "name", "tenant_id"]);
    }
}
