//! The planners: one per resource, pure and deterministic. A plan is data
//! decided before anything is touched.

pub mod app_instance;
pub mod domain;
pub mod draft;
pub mod support_plan;
pub mod tenant;
pub mod text;

use crate::model::attribute::{AttributePath, ValidationError};
use crate::model::ownership::ObjectKind;

/// What can be checked of a configuration's known values before the
/// platform is known (no catalog, targets, platform zone or tenant tier):
/// what both front doors' `validate` answer.
pub fn validate_known(kind: ObjectKind, known: serde_json::Value) -> Vec<ValidationError> {
    fn typed<T: serde::de::DeserializeOwned>(
        known: serde_json::Value,
        noun: &str,
        check: impl FnOnce(T) -> Vec<ValidationError>,
    ) -> Vec<ValidationError> {
        match serde_json::from_value::<T>(known) {
            Ok(draft) => check(draft),
            Err(error) => {
                vec![ValidationError::new(
                    AttributePath::default(),
                    format!("Invalid {noun} configuration"),
                    error.to_string(),
                )]
            }
        }
    }
    match kind {
        ObjectKind::Tenant => typed(known, "tenant", |draft: crate::model::tenant::TenantDraft| draft.validate()),
        ObjectKind::AppInstance => typed(known, "app instance", |draft| {
            app_instance::validate_draft(
                &draft,
                &app_instance::InstanceContext { catalog: None, targets: None, swarm_targets: None },
            )
        }),
        ObjectKind::Domain => typed(known, "domain", |draft: crate::model::domain::DomainDraft| {
            draft.validate(&crate::model::domain::DomainContext { platform_zone: None })
        }),
        ObjectKind::SupportPlan => {
            typed(known, "support plan", |draft: crate::model::support_plan::SupportPlanDraft| draft.validate(None))
        }
    }
}
