//! Apply: carrying out planned changes against the registry and the backends,
//! one file per resource (and the suspension and welcome email that tenants
//! and app instances share).

pub mod app_instance;
pub mod backups;
pub mod claims;
pub mod domain;
pub mod domain_planned;
pub mod kept;
pub mod platform_certificate;
pub mod restore_test;
pub mod runner;
pub mod support_plan;
pub mod suspension;
pub mod tenant;
pub mod welcome;
