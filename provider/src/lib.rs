//! terraform-provider-atrium: Atrium's tfplugin6 provider.
//!
//! This is the only crate that knows Terraform: the plugin handshake, the
//! protocol, msgpack values and diagnostics. It turns Terraform's requests
//! into engine calls and the engine's answers back into Terraform's terms.

pub mod claims;
pub mod configured;
pub mod data_sources;
pub mod diagnostics;
pub mod docs;
pub mod logging;
pub mod plugin;
pub mod resources;
pub mod schema;
pub mod server;
pub mod value;

/// Code generated from `proto/`.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}
