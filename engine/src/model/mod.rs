//! The resources Atrium manages, as typed specs and states with validation.
//!
//! Each resource has three shapes:
//! - a *document* (`TenantDocument`): the attributes as a user writes and reads
//!   them, the one source of the resource's schema and docs (schemars doc
//!   comments become descriptions);
//! - a *draft* (`TenantDraft`): the same attributes where any may still be
//!   missing (not yet known at plan time), for validation of what is known;
//! - a *spec* (`TenantSpec`): a fully known, validated and defaulted desired
//!   state that the planner and apply work with.
//!
//! Schema markers: the documents carry a few JSON Schema keywords that tell a
//! front door how an attribute behaves; see [`markers`].

pub mod app_instance;
pub mod attribute;
pub mod backup;
pub mod container;
pub mod domain;
pub mod ids;
pub mod kept;
pub mod ownership;
pub mod password;
pub mod support_plan;
pub mod tenant;
pub mod timeouts;
pub mod validate;

pub use ids::TenantId;
pub use tenant::{Manager, TenantDocument, TenantDraft, TenantSpec, TenantStatus, Tier};
pub use timeouts::Timeouts;

/// JSON Schema keywords on resource documents that describe attribute behaviour.
pub mod markers {
    /// Standard JSON Schema: the engine sets this attribute; users only read it.
    pub const COMPUTED: &str = "readOnly";
    /// The user may set the attribute; when they don't, the engine fills a default.
    pub const DEFAULTED: &str = "x-atrium-defaulted";
    /// Changing the attribute replaces the object (delete, then create).
    pub const FORCES_REPLACEMENT: &str = "x-atrium-forces-replacement";
    /// A secret: never shown in plans or logs.
    pub const SENSITIVE: &str = "x-atrium-sensitive";
    /// Sent by the user at plan and apply, never kept in state or plan
    /// files (Terraform 1.11 write-only attributes).
    pub const WRITE_ONLY: &str = "x-atrium-write-only";
}

/// The JSON Schema of a resource document, with markers, for front doors.
pub fn document_schema<T: schemars::JsonSchema>() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

/// The version of each resource's stored state shape. Bump it, and add an
/// upgrade step in the front door, whenever an attribute is renamed or
/// changes type.
pub const TENANT_SCHEMA_VERSION: i64 = 0;

/// The stored state version of `atrium_app_instance`.
pub const APP_INSTANCE_SCHEMA_VERSION: i64 = 0;

/// The stored state version of `atrium_domain`.
pub const DOMAIN_SCHEMA_VERSION: i64 = 0;

/// The stored state version of `atrium_support_plan`.
pub const SUPPORT_PLAN_SCHEMA_VERSION: i64 = 0;
