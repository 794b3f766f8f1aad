//! A container and a volume as a runtime runs them, fully decided: what the
//! catalog renders for an app instance and what every runtime backend
//! (Docker, later Swarm) creates, compares and labels.

use std::collections::BTreeMap;

/// What a container is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContainerRole {
    App,
    Sidecar(String),
    /// A one-shot job (a migration, a backup): runs once, never restarted.
    Job(String),
}

/// A container health check in Docker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    /// `["CMD", ...]`.
    pub test: Vec<String>,
    pub interval_nanoseconds: i64,
    pub timeout_nanoseconds: i64,
    pub retries: i64,
    pub start_period_nanoseconds: i64,
}

/// One container, fully decided.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub role: ContainerRole,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// (volume name, mount path).
    pub mounts: Vec<(String, String)>,
    /// The port the app listens on; published on the target's loopback.
    pub port: Option<u16>,
    /// Publishes `port` on this port of every address of the target's host
    /// instead (a service other targets reach, like the off-site backup store).
    pub host_port: Option<u16>,
    pub health: Option<HealthSpec>,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    pub network: String,
    /// The name other containers on the tenant network reach it by.
    pub network_alias: String,
    /// Configuration files written into the container before it starts
    /// (path → content); their digest is the `atrium.files` label.
    pub files: BTreeMap<String, String>,
    /// The Linux capabilities it keeps; every other one is dropped.
    pub capabilities: Vec<String>,
    /// The user it runs as; `None`: the image's.
    pub user: Option<String>,
    /// Whether its root filesystem is read-only.
    pub read_only: bool,
    /// How many copies run: 1, or more for an app container without
    /// volumes on a swarm (one per node).
    pub replicas: u32,
}

/// A data volume, fully decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Label keys on every object Atrium makes; nothing without `atrium.managed` is ever touched.
pub mod labels {
    pub const MANAGED: &str = "atrium.managed";
    pub const TENANT: &str = "atrium.tenant";
    pub const INSTANCE: &str = "atrium.instance";
    pub const OWNER: &str = "atrium.owner";
    pub const ROLE: &str = "atrium.role";
    pub const VERSION: &str = "atrium.version";
    pub const GENERATION: &str = "atrium.generation";
    /// A digest of the configuration files written into the container, so a
    /// changed file is seen like a changed image or environment.
    pub const FILES: &str = "atrium.files";
    /// A digest of a container's command, environment and mounts, on
    /// containers that change in place with the instance (the backup
    /// container follows the app's version and policy): a changed one is
    /// replaced like a changed image.
    pub const SPEC: &str = "atrium.spec";
}
