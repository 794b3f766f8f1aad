//! Atrium's engine: the model of what we host, the pure planner, the apply
//! core and the backends that touch real systems.
//!
//! Nothing in this crate knows Terraform. The provider crate converts
//! Terraform's values into the types here and back; the engine's own front
//! door (a CLI reading HCL, in a later issue) uses the same types.

pub mod app_apply;
pub mod app_plan;
pub mod attribute;
pub mod backends;
pub mod catalog;
pub mod config;
pub mod domain_apply;
pub mod model;
pub mod observe;
pub mod ownership;
pub mod password;
pub mod plan;
pub mod registry;
pub mod retry;
pub mod support_apply;
pub mod suspension;
pub mod targets;
pub mod tenant_apply;
#[doc(hidden)]
pub mod test_services;
pub mod welcome;

pub use attribute::{AttributePath, ValidationError};
