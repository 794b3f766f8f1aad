//! The planner: `plan(desired, observed) -> Plan`, pure and deterministic.
//!
//! A plan is data decided before anything is touched. Each [`Change`] holds an
//! action from a closed set, the state before and after, and the reason, so
//! that apply has no choices left and the rendered text says exactly what
//! will happen.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::TenantId;
use crate::model::attribute::AttributePath;
use crate::model::tenant::{TenantRecord, TenantSpec};
use crate::model::validate;

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
    pub attribute: &'static str,
    pub before: String,
    pub after: String,
    /// Whether this attribute's change alone forces replacement.
    pub forces_replacement: bool,
}

/// A planned change to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    pub tenant_id: TenantId,
    pub before: Option<TenantRecord>,
    pub after: Option<TenantSpec>,
    pub attribute_changes: Vec<AttributeChange>,
    /// Why this action, in a sentence.
    pub reason: String,
}

impl Change {
    /// The attributes whose change forces replacement.
    pub fn replace_paths(&self) -> Vec<AttributePath> {
        self.attribute_changes
            .iter()
            .filter(|c| c.forces_replacement)
            .map(|c| AttributePath::root(c.attribute))
            .collect()
    }
}

/// The changes that take the observed world to the desired one, ordered by tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
}

fn quoted(value: &str) -> String {
    format!("{value:?}")
}

/// Compares desired and observed attribute by attribute.
pub fn tenant_attribute_changes(before: &TenantSpec, after: &TenantSpec) -> Vec<AttributeChange> {
    let date =
        |d: Option<time::Date>| d.map(validate::format_date).map(|d| quoted(&d)).unwrap_or_else(|| "null".into());
    let fields: [(&'static str, String, String, bool); 8] = [
        ("name", quoted(before.name.as_str()), quoted(after.name.as_str()), true),
        ("display_name", quoted(&before.display_name), quoted(&after.display_name), false),
        ("tier", quoted(before.tier.as_str()), quoted(after.tier.as_str()), false),
        ("user_quota", before.user_quota.to_string(), after.user_quota.to_string(), false),
        ("expires_on", date(before.expires_on), date(after.expires_on), false),
        ("manager.email", quoted(&before.manager.email), quoted(&after.manager.email), false),
        ("manager.name", quoted(&before.manager.name), quoted(&after.manager.name), false),
        ("welcome_email", before.welcome_email.to_string(), after.welcome_email.to_string(), false),
    ];
    fields
        .into_iter()
        .filter(|(_, b, a, _)| b != a)
        .map(|(attribute, before, after, forces_replacement)| AttributeChange {
            attribute,
            before,
            after,
            forces_replacement,
        })
        .collect()
}

/// Plans one tenant: `observed` is what exists under this object's identity
/// (for Terraform, the prior state's tenant; for the CLI, the tenant of the same name).
pub fn plan_tenant(desired: Option<&TenantSpec>, observed: Option<&TenantRecord>) -> Option<Change> {
    let change = match (desired, observed) {
        (None, None) => return None,
        (Some(spec), None) => Change {
            action: Action::Create,
            tenant_id: spec.name.clone(),
            before: None,
            after: Some(spec.clone()),
            attribute_changes: Vec::new(),
            reason: "the tenant does not exist".into(),
        },
        (None, Some(record)) => Change {
            action: Action::Delete,
            tenant_id: record.spec.name.clone(),
            before: Some(record.clone()),
            after: None,
            attribute_changes: Vec::new(),
            reason: "the tenant is no longer wanted".into(),
        },
        (Some(spec), Some(record)) => {
            let attribute_changes = tenant_attribute_changes(&record.spec, spec);
            let replacing: Vec<&str> =
                attribute_changes.iter().filter(|c| c.forces_replacement).map(|c| c.attribute).collect();
            let (action, reason) = if !replacing.is_empty() {
                (Action::Replace, format!("changing {} forces replacement", replacing.join(", ")))
            } else if !attribute_changes.is_empty() {
                let names: Vec<&str> = attribute_changes.iter().map(|c| c.attribute).collect();
                (Action::Update, format!("{} changed", names.join(", ")))
            } else {
                (Action::NoOp, "up to date".into())
            };
            Change {
                action,
                tenant_id: spec.name.clone(),
                before: Some(record.clone()),
                after: Some(spec.clone()),
                attribute_changes,
                reason,
            }
        }
    };
    Some(change)
}

/// Plans a whole set of tenants matched by name (the bulk front door).
/// Tenants owned by another front door are never changed or deleted.
pub fn plan(desired: &[TenantSpec], observed: &[TenantRecord], owner: &str) -> Plan {
    let mut by_name: BTreeMap<&TenantId, (Option<&TenantSpec>, Option<&TenantRecord>)> = BTreeMap::new();
    for spec in desired {
        by_name.entry(&spec.name).or_default().0 = Some(spec);
    }
    for record in observed.iter().filter(|r| r.owner == owner) {
        by_name.entry(&record.spec.name).or_default().1 = Some(record);
    }
    let changes = by_name.into_values().filter_map(|(desired, observed)| plan_tenant(desired, observed)).collect();
    Plan { changes }
}

impl Plan {
    /// The plan as people read it: one line per change, `+ ~ -/+ -`, then a summary.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let mut counts = [0usize; 4];
        for change in &self.changes {
            let index = match change.action {
                Action::NoOp => continue,
                Action::Create => 0,
                Action::Update => 1,
                Action::Replace => 2,
                Action::Delete => 3,
            };
            counts[index] += 1;
            let _ = writeln!(text, "{} tenant {} ({})", change.action.symbol(), change.tenant_id, change.reason);
            for attribute in &change.attribute_changes {
                let marker = if attribute.forces_replacement { " # forces replacement" } else { "" };
                let _ = writeln!(
                    text,
                    "    {}: {} -> {}{}",
                    attribute.attribute, attribute.before, attribute.after, marker
                );
            }
        }
        let _ = write!(
            text,
            "Plan: {} to add, {} to change, {} to replace, {} to destroy.",
            counts[0], counts[1], counts[2], counts[3]
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tenant::{Manager, TenantStatus, Tier};

    fn spec(name: &str, display_name: &str, tier: Tier) -> TenantSpec {
        TenantSpec {
            name: TenantId::parse(name).unwrap(),
            display_name: display_name.into(),
            tier,
            user_quota: tier.default_user_quota(),
            expires_on: None,
            manager: Manager { email: format!("boss@{name}.example"), name: "Boss".into() },
            welcome_email: true,
        }
    }

    fn record(spec: TenantSpec, owner: &str) -> TenantRecord {
        TenantRecord {
            spec,
            status: TenantStatus::Active,
            created_at: "2026-11-23T10:00:00Z".into(),
            owner: owner.into(),
        }
    }

    #[test]
    fn plan_renders_every_kind_of_change() {
        let desired = vec![
            spec("acme", "ACME GmbH", Tier::Business),
            spec("beta", "Beta", Tier::Basic),
            spec("delta", "Delta", Tier::Basic),
        ];
        let observed = vec![
            record(spec("acme", "ACME", Tier::Basic), "cli"),
            record(spec("delta", "Delta", Tier::Basic), "cli"),
            record(spec("gone", "Gone", Tier::Basic), "cli"),
            record(spec("other", "Terraform's", Tier::Basic), "terraform"),
        ];
        let plan = plan(&desired, &observed, "cli");
        insta::assert_snapshot!(plan.render(), @r#"
        ~ tenant acme (display_name, tier, user_quota changed)
            display_name: "ACME" -> "ACME GmbH"
            tier: "basic" -> "business"
            user_quota: 10 -> 50
        + tenant beta (the tenant does not exist)
        - tenant gone (the tenant is no longer wanted)
        Plan: 1 to add, 1 to change, 0 to replace, 1 to destroy.
        "#);
    }

    #[test]
    fn renaming_a_tenant_under_one_identity_forces_replacement() {
        let mut renamed = spec("acme", "ACME", Tier::Basic);
        renamed.name = TenantId::parse("acme-new").unwrap();
        let change =
            plan_tenant(Some(&renamed), Some(&record(spec("acme", "ACME", Tier::Basic), "terraform"))).unwrap();
        assert_eq!(change.action, Action::Replace);
        assert_eq!(change.replace_paths(), vec![AttributePath::root("name")]);
        let text = Plan { changes: vec![change] }.render();
        insta::assert_snapshot!(text, @r#"
        -/+ tenant acme-new (changing name forces replacement)
            name: "acme" -> "acme-new" # forces replacement
        Plan: 0 to add, 0 to change, 1 to replace, 0 to destroy.
        "#);
    }

    #[test]
    fn planning_is_deterministic_and_identical_state_is_a_noop() {
        let desired = vec![spec("b-one", "B", Tier::Basic), spec("a-one", "A", Tier::Basic)];
        let observed: Vec<TenantRecord> = desired.iter().cloned().map(|s| record(s, "cli")).collect();
        let first = plan(&desired, &observed, "cli");
        assert!(first.changes.iter().all(|c| c.action == Action::NoOp));
        assert_eq!(first, plan(&desired, &observed, "cli"));
        assert_eq!(first.render(), "Plan: 0 to add, 0 to change, 0 to replace, 0 to destroy.");
    }
}
