//! The planners: one per resource, pure and deterministic. A plan is data
//! decided before anything is touched.

pub mod app_instance;
pub mod tenant;
