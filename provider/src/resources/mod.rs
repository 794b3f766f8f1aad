//! Terraform's view of each resource: planning with unknowns, applying, reading
//! and importing, by converting between Terraform values and engine types.

pub mod app_instance;
pub mod domain;
pub mod tenant;
