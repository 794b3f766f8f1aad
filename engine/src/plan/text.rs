//! Plans as people read them: a line per changed object (`+ ~ -/+ -`, its
//! kind and name, and why), its changed attributes below it, and a summary.
//! The same text for every resource, for every front door.

use std::fmt::Write as _;

/// What a change does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    /// The symbol used in rendered plans, as Terraform users read them.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// One attribute whose value changes, rendered for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeChange {
    pub attribute: String,
    pub before: String,
    pub after: String,
    /// Whether this attribute's change alone forces replacement.
    pub forces_replacement: bool,
}

/// One object's planned change, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectChange {
    pub action: Action,
    /// `tenant`, `app instance`, `domain`, `support plan`.
    pub kind: &'static str,
    pub name: String,
    pub attribute_changes: Vec<AttributeChange>,
    /// Why this action, in a few words.
    pub reason: String,
}

/// An attribute's value as a plan shows it, and whether changing it replaces the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub attribute: &'static str,
    pub value: String,
    pub forces_replacement: bool,
}

impl Field {
    pub fn new(attribute: &'static str, value: impl Into<String>) -> Self {
        Self { attribute, value: value.into(), forces_replacement: false }
    }

    /// A field whose change replaces the object.
    pub fn replacing(attribute: &'static str, value: impl Into<String>) -> Self {
        Self { attribute, value: value.into(), forces_replacement: true }
    }
}

/// A string value as plans quote it.
pub fn quoted(value: &str) -> String {
    format!("{value:?}")
}

/// The change that takes an object from `before` to `after` (the same
/// fields in the same order): create, delete, replace when a replacing field
/// changes, update when another does, no-op otherwise.
pub fn compare(
    kind: &'static str,
    name: &str,
    before: Option<&[Field]>,
    after: Option<&[Field]>,
) -> Option<ObjectChange> {
    let (action, attribute_changes, reason) = match (before, after) {
        (None, None) => return None,
        (None, Some(_)) => (Action::Create, Vec::new(), format!("the {kind} does not exist")),
        (Some(_), None) => (Action::Delete, Vec::new(), format!("the {kind} is no longer wanted")),
        (Some(before), Some(after)) => {
            let changes: Vec<AttributeChange> = before
                .iter()
                .zip(after)
                .filter(|(b, a)| b.value != a.value)
                .map(|(b, a)| AttributeChange {
                    attribute: a.attribute.to_owned(),
                    before: b.value.clone(),
                    after: a.value.clone(),
                    forces_replacement: a.forces_replacement,
                })
                .collect();
            let replacing: Vec<&str> =
                changes.iter().filter(|c| c.forces_replacement).map(|c| c.attribute.as_str()).collect();
            let names: Vec<&str> = changes.iter().map(|c| c.attribute.as_str()).collect();
            let (action, reason) = if !replacing.is_empty() {
                (Action::Replace, format!("changing {} forces replacement", replacing.join(", ")))
            } else if !changes.is_empty() {
                (Action::Update, format!("{} changed", names.join(", ")))
            } else {
                (Action::NoOp, "up to date".to_owned())
            };
            (action, changes, reason)
        }
    };
    Some(ObjectChange { action, kind, name: name.to_owned(), attribute_changes, reason })
}

/// The plan as people read it: one block per change (no-ops left out), then
/// `Plan: N to add, N to change, N to replace, N to destroy.`
pub fn render(changes: &[ObjectChange]) -> String {
    let mut text = String::new();
    let mut counts = [0usize; 4];
    for change in changes {
        let index = match change.action {
            Action::NoOp => continue,
            Action::Create => 0,
            Action::Update => 1,
            Action::Replace => 2,
            Action::Delete => 3,
        };
        counts[index] += 1;
        let _ = writeln!(text, "{} {} {} ({})", change.action.symbol(), change.kind, change.name, change.reason);
        for attribute in &change.attribute_changes {
            let marker = if attribute.forces_replacement { " # forces replacement" } else { "" };
            let _ =
                writeln!(text, "    {}: {} -> {}{}", attribute.attribute, attribute.before, attribute.after, marker);
        }
    }
    let _ = write!(
        text,
        "Plan: {} to add, {} to change, {} to replace, {} to destroy.",
        counts[0], counts[1], counts[2], counts[3]
    );
    text
}
