//! Each resource kind's attributes as the CLI checks and shows them, read
//! from the same documents (and markers) the provider's schema is made of.

use std::sync::LazyLock;

use serde_json::Value;

use crate::model::app_instance::AppInstanceDocument;
use crate::model::domain::DomainDocument;
use crate::model::markers;
use crate::model::ownership::ObjectKind;
use crate::model::support_plan::SupportPlanDocument;
use crate::model::tenant::TenantDocument;

/// A resource kind's top-level attributes, by role.
#[derive(Debug, Default)]
pub struct KindSchema {
    /// Every attribute, in the document's order.
    pub attributes: Vec<String>,
    /// Set by the engine only; a configuration may not set them.
    pub computed: Vec<String>,
    /// Filled by the engine when the configuration leaves them unset.
    pub defaulted: Vec<String>,
    pub sensitive: Vec<String>,
    /// Taken from the configuration at apply; never in plans or state.
    pub write_only: Vec<String>,
}

impl KindSchema {
    fn of<T: schemars::JsonSchema>() -> Self {
        let schema = crate::model::document_schema::<T>();
        let properties = schema.get("properties").and_then(Value::as_object);
        let marked = |marker: &str| -> Vec<String> {
            properties
                .into_iter()
                .flatten()
                .filter(|(_, property)| property.get(marker).and_then(Value::as_bool) == Some(true))
                .map(|(name, _)| name.clone())
                .collect()
        };
        Self {
            attributes: properties.into_iter().flatten().map(|(name, _)| name.clone()).collect(),
            computed: marked(markers::COMPUTED),
            defaulted: marked(markers::DEFAULTED),
            sensitive: marked(markers::SENSITIVE),
            write_only: marked(markers::WRITE_ONLY),
        }
    }

    /// The schema of a kind, read once.
    pub fn of_kind(kind: ObjectKind) -> &'static KindSchema {
        static TENANT: LazyLock<KindSchema> = LazyLock::new(KindSchema::of::<TenantDocument>);
        static APP_INSTANCE: LazyLock<KindSchema> = LazyLock::new(KindSchema::of::<AppInstanceDocument>);
        static DOMAIN: LazyLock<KindSchema> = LazyLock::new(KindSchema::of::<DomainDocument>);
        static SUPPORT_PLAN: LazyLock<KindSchema> = LazyLock::new(KindSchema::of::<SupportPlanDocument>);
        match kind {
            ObjectKind::Tenant => &TENANT,
            ObjectKind::AppInstance => &APP_INSTANCE,
            ObjectKind::Domain => &DOMAIN,
            ObjectKind::SupportPlan => &SUPPORT_PLAN,
        }
    }

    pub fn is_computed(&self, attribute: &str) -> bool {
        self.computed.iter().any(|name| name == attribute)
    }

    /// Whether the engine may set the attribute when the configuration does not.
    pub fn keeps_prior(&self, attribute: &str) -> bool {
        self.is_computed(attribute) || self.defaulted.iter().any(|name| name == attribute)
    }

    pub fn is_sensitive(&self, attribute: &str) -> bool {
        self.sensitive.iter().any(|name| name == attribute)
    }

    pub fn is_write_only(&self, attribute: &str) -> bool {
        self.write_only.iter().any(|name| name == attribute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_know_their_computed_secret_and_write_only_attributes() {
        let tenant = KindSchema::of_kind(ObjectKind::Tenant);
        assert!(tenant.attributes.iter().any(|a| a == "display_name"));
        assert!(tenant.is_computed("status") && tenant.is_computed("created_at"));
        assert!(tenant.keeps_prior("user_quota"), "{tenant:?}");
        let instance = KindSchema::of_kind(ObjectKind::AppInstance);
        assert!(instance.is_write_only("admin_password"), "{instance:?}");
    }
}
