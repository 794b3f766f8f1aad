//! Atrium's engine: the model of what we host, the pure planner, the apply
//! core and the backends that touch real systems.
//!
//! Nothing in this crate knows Terraform. The provider crate converts
//! Terraform's values into the types here and back; the engine's own front
//! door (a CLI reading HCL, in a later issue) uses the same types.
//!
//! The layers, each a module, depend on each other in one direction only
//! (`model ← catalog ← plan ← apply → backends`; see ARCHITECTURE.md and the
//! test `engine/tests/architecture.rs` that holds the code to it).

pub mod apply;
pub mod backends;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod model;
pub mod observe;
pub mod plan;
pub mod platform;
pub mod registry;
#[doc(hidden)]
pub mod test_services;

pub use model::attribute::{AttributePath, ValidationError};
