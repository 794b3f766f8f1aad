//! `atrium`, the plan engine's own front door: Terraform's habits (commands,
//! `-chdir`, exit codes, saved plans) over the same planners and apply as
//! the provider, with the registry as its state.

pub mod apply;
pub mod backups;
pub mod command;
pub mod config;
pub mod diagnostic;
pub mod functions;
pub mod kept;
pub mod kinds;
pub mod plan;
pub mod progress;
pub mod schema;
pub mod session;

pub use command::run;
pub mod json;
pub mod saved;
