//! The planners: one per resource, pure and deterministic. A plan is data
//! decided before anything is touched.

pub mod app_instance;
pub mod domain;
pub mod draft;
pub mod support_plan;
pub mod tenant;
pub mod text;
