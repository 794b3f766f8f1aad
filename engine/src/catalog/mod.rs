//! The catalog: the apps Atrium hosts, as data files (one HCL file per app).
//!
//! An entry says, per channel (`stable`, `vanilla`, `custom`), which image and
//! versions exist, and for every version: the port, environment, data volumes,
//! health check, sidecars (databases, caches), resource defaults per tier, how
//! the manager account is created and how the user limit is applied. The
//! built-in entries are compiled in; an operator adds or overrides entries
//! with a directory of their own (`catalog_dir`).
//!
//! Rendering an entry for one app instance ([`render`]) is pure: it chooses
//! every container, volume and network name and every label, so apply has
//! nothing left to decide.

mod backups;
#[cfg(test)]
mod real_apps;
mod render;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use backups::{
    BACKUP_ROLE, BackupJobs, OFFSITE_STATUS_FILE, OffsiteStore, STORE_NAME, SourceLocation, SourceRepository,
    StagedRestore, VERSION_TAG, render_backups,
};
pub use render::{
    ContainerRole, ContainerSpec, HealthSpec, RenderInput, RenderedApp, UpgradeJobs, VolumeSpec, app_container_name,
    backup_volume_name, describe, files_digest, labels, network_name, render, render_manager_command,
    render_public_address_command, render_upgrade_jobs, render_user_limit_command, render_users_in_use_command,
    required_secrets,
};

/// The app container's name for an instance at a generation.
pub fn render_app_container_name(spec: &crate::model::app_instance::AppInstanceSpec, generation: u32) -> String {
    app_container_name(spec.id.tenant_id.as_str(), &spec.id.name, generation)
}

/// The built-in entries, compiled in.
const BUILT_IN: &[(&str, &str)] = &[
    ("hello.hcl", include_str!("../../catalog/hello.hcl")),
    ("erpnext.hcl", include_str!("../../catalog/erpnext.hcl")),
    ("mattermost.hcl", include_str!("../../catalog/mattermost.hcl")),
    ("nextcloud.hcl", include_str!("../../catalog/nextcloud.hcl")),
    ("odoo.hcl", include_str!("../../catalog/odoo.hcl")),
    ("openproject.hcl", include_str!("../../catalog/openproject.hcl")),
    ("redmine.hcl", include_str!("../../catalog/redmine.hcl")),
    ("mediawiki.hcl", include_str!("../../catalog/mediawiki.hcl")),
    ("tryton.hcl", include_str!("../../catalog/tryton.hcl")),
];

/// The channels every entry may offer.
pub const CHANNELS: [&str; 3] = ["stable", "vanilla", "custom"];

/// One channel: an image template (`{version}` is replaced) and its versions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelEntry {
    pub image: String,
    pub versions: Vec<String>,
    /// The version an instance gets when it pins none.
    pub default: String,
}

/// A container health check; durations like `"1s"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthEntry {
    pub command: Vec<String>,
    pub interval: String,
    pub timeout: String,
    pub retries: u32,
    #[serde(default = "zero_seconds")]
    pub start_period: String,
}

fn zero_seconds() -> String {
    "0s".into()
}

/// Limits for one tier.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesEntry {
    pub cpus: f64,
    pub memory_mb: u64,
}

/// A helper container the app needs (database, cache).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarEntry {
    pub image: String,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// The Linux capabilities the sidecar needs; every other one is dropped.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The user the sidecar runs as (`name`, `uid` or `uid:gid`); default the image's.
    #[serde(default)]
    pub user: Option<String>,
    /// Whether its root filesystem can be read-only (it writes only to its volumes).
    #[serde(default)]
    pub read_only: bool,
    /// Its limits per tier; default half of the app's (a database beside the
    /// app never gets the whole of the tenant's allowance again).
    #[serde(default)]
    pub resources: BTreeMap<String, ResourcesEntry>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: BTreeMap<String, String>,
    #[serde(default)]
    pub health: Option<HealthEntry>,
}

/// How the customer's manager account is created inside the app: never the
/// built-in root user, always the app's manager/administrator role.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerAccountEntry {
    /// `environment` (variables the image reads on first start) or `command`
    /// (a one-shot command run in the app container once it is healthy).
    pub method: String,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// The role the manager gets, as the app names it (documentation and checks).
    #[serde(default)]
    pub role: Option<String>,
    /// Where the manager signs in, relative to the app's address (e.g. `/web/login`);
    /// the welcome email links to it.
    #[serde(default)]
    pub login_path: Option<String>,
    /// For apps that check logins against the files the catalog writes (a
    /// file holding `{manager.password_hash}`): the command run in the app
    /// container after those files were rewritten, so that the app reads
    /// them again (a new password never needs a new deployment).
    #[serde(default)]
    pub reload: Option<Vec<String>>,
    /// How her login is made from her account, by the app's own rules for
    /// login names (`{manager.login}`); default her email as it is.
    #[serde(default)]
    pub login: Option<LoginEntry>,
}

/// An app's rules for login names, so that every manager Atrium accepts can
/// sign in: the login is her email or her name with every character the app
/// refuses replaced by `_`, cut to the app's longest login. The welcome email
/// tells her the result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginEntry {
    /// `email` or `name`: what the login is made of.
    pub from: String,
    /// The characters kept besides letters and digits; `None` keeps every
    /// printable character.
    #[serde(default)]
    pub punctuation: Option<String>,
    /// Whether only ASCII letters count as letters (others become `_`).
    #[serde(default)]
    pub ascii_letters: bool,
    /// The longest login the app takes, in characters.
    #[serde(default)]
    pub max_length: Option<usize>,
}

impl ManagerAccountEntry {
    /// The manager's login in this app (`{manager.login}`).
    pub fn login_for(&self, email: &str, name: &str) -> String {
        let Some(rule) = &self.login else { return email.to_owned() };
        let source = if rule.from == "name" { name } else { email };
        let kept = |c: char| {
            let letter = if rule.ascii_letters { c.is_ascii_alphanumeric() } else { c.is_alphanumeric() };
            letter || rule.punctuation.as_ref().map_or(!c.is_control(), |extra| extra.contains(c))
        };
        let login: String = source
            .trim()
            .chars()
            .map(|c| if kept(c) { c } else { '_' })
            .take(rule.max_length.unwrap_or(usize::MAX))
            .collect();
        let login = login.trim().to_owned();
        if login.chars().any(|c| c.is_alphanumeric()) { login } else { "manager".to_owned() }
    }
}

/// How the tenant's user limit reaches the app.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserLimitEntry {
    /// `environment`, `command`, or `unsupported` (the app has no such setting).
    pub method: String,
    #[serde(default)]
    pub variable: Option<String>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// A command run in the app container that prints how many of the app's
    /// users count against the quota (active people, not the app's own
    /// root/admin user or system accounts), as its last line of output.
    /// Shown as `users_in_use`; for apps with no limit of their own, the plan
    /// warns when it exceeds the instance's `users`.
    #[serde(default)]
    pub users_in_use: Option<Vec<String>>,
}

/// How the app learns the public address it is reached at (links in its
/// emails, its list of trusted host names): a command run in the app
/// container whenever a domain of the instance goes live or away, and after
/// every deployment, with `{address}` (the address customers use: her own
/// domain if she has one, else the platform subdomain, with its scheme) and
/// `{hosts}` (every live host name, separated by spaces). Running it twice
/// changes nothing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicAddressEntry {
    pub command: Vec<String>,
}

/// How an upgrade to a newer version changes the app's data: a one-shot
/// command run in a container of the new version (its image, environment
/// and volumes) after the old version stopped and before the new one starts.
/// Its exit code decides; running it again on migrated data changes nothing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeEntry {
    pub migrate: Vec<String>,
}

/// How the instance's data is backed up and restored with the database's
/// own tools. The jobs run once each in a container of the `sidecar`'s
/// image (or `image`) on the tenant's network, with `environment`, the
/// app's data volumes (volume `KEY` at `/volumes/KEY`) and the instance's
/// backup volume mounted: `dump` writes the database's dump to its standard
/// output, `restore` reads one from its standard input into an emptied
/// database; the volumes are archived and restored whole beside it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupEntry {
    pub sidecar: String,
    /// The image the backup container and jobs run, when the sidecar's own
    /// image lacks what they need: restic, `flock`, `sh`, GNU `date`, `tar`,
    /// `find`, `base64` and the database's dump and restore tools (of the
    /// sidecar's major version or a later one). Default: the sidecar's image.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub dump: Vec<String>,
    pub restore: Vec<String>,
}

/// One app of the catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub name: String,
    pub description: String,
    pub port: u16,
    pub channels: BTreeMap<String, ChannelEntry>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// The Linux capabilities the app needs (e.g. `NET_BIND_SERVICE` to
    /// listen on port 80 as root); every other one is dropped, and no process
    /// in the container can gain privileges (`no-new-privileges`).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The user the app runs as (`name`, `uid` or `uid:gid`), where the app
    /// allows a non-root user; default the image's.
    #[serde(default)]
    pub user: Option<String>,
    /// Whether the app's root filesystem can be read-only (it writes only to
    /// its volumes, and has no login files to rewrite).
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Data volumes: name → mount path. Never removed by customizations.
    #[serde(default)]
    pub volumes: BTreeMap<String, String>,
    pub health: HealthEntry,
    #[serde(default)]
    pub sidecars: BTreeMap<String, SidecarEntry>,
    /// Limits per tier (`basic`, `business`, `enterprise`).
    pub resources: BTreeMap<String, ResourcesEntry>,
    pub manager_account: ManagerAccountEntry,
    #[serde(default)]
    pub user_limit: Option<UserLimitEntry>,
    #[serde(default)]
    pub public_address: Option<PublicAddressEntry>,
    /// Configuration files written into the app container before it starts:
    /// absolute path → content, placeholders allowed (e.g. the manager's
    /// password hash for apps that check logins against a crypt hash).
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// What an upgrade runs between the versions (a database migration).
    #[serde(default)]
    pub upgrade: Option<UpgradeEntry>,
    /// How the instance's data is backed up and restored (before an upgrade
    /// that migrates it, so a failed one is undone).
    #[serde(default)]
    pub backup: Option<BackupEntry>,
}

/// A catalog file that cannot be used, with the file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog file {file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("cannot read the catalog directory {directory}")]
    Directory {
        directory: String,
        #[source]
        source: std::io::Error,
    },
}

/// The Linux capabilities a catalog entry may ask for: what app images and
/// their databases need to start as root and step down (never `SYS_ADMIN`,
/// `NET_ADMIN` or anything else that reaches beyond the container).
pub const KNOWN_CAPABILITIES: [&str; 9] =
    ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID", "SETPCAP"];

/// The apps Atrium can host, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: BTreeMap<String, CatalogEntry>,
}

impl CatalogEntry {
    /// The environment variables the catalog sets in the app container
    /// itself (its own, the manager account's, the user limit's): an
    /// instance's customizations may never override them, or a tenant could
    /// lift its licensed user limit or pose as another tenant.
    pub fn reserved_environment(&self) -> std::collections::BTreeSet<&str> {
        let mut reserved: std::collections::BTreeSet<&str> = self.environment.keys().map(String::as_str).collect();
        reserved.extend(self.manager_account.environment.keys().map(String::as_str));
        if let Some(variable) = self.user_limit.as_ref().and_then(|limit| limit.variable.as_deref()) {
            reserved.insert(variable);
        }
        reserved
    }

    /// Parses and checks one catalog file.
    pub fn parse(file: &str, text: &str) -> Result<CatalogEntry, CatalogError> {
        let invalid = |reason: String| CatalogError::Invalid { file: file.to_owned(), reason };
        let entry: CatalogEntry = hcl::from_str(text).map_err(|e| invalid(e.to_string()))?;
        entry.check().map_err(invalid)?;
        Ok(entry)
    }

    fn check(&self) -> Result<(), String> {
        if self.channels.is_empty() {
            return Err("no channels".into());
        }
        for (name, channel) in &self.channels {
            if !CHANNELS.contains(&name.as_str()) {
                return Err(format!("unknown channel {name:?}: use stable, vanilla or custom"));
            }
            if !channel.versions.contains(&channel.default) {
                return Err(format!("channel {name}: default version {:?} is not among its versions", channel.default));
            }
        }
        for tier in ["basic", "business", "enterprise"] {
            if !self.resources.contains_key(tier) {
                return Err(format!("no resources for tier {tier}"));
            }
        }
        if !matches!(self.manager_account.method.as_str(), "environment" | "command") {
            return Err("manager_account.method must be \"environment\" or \"command\"".into());
        }
        if self.manager_account.method == "command" && self.manager_account.command.is_none() {
            return Err("manager_account.method = \"command\" needs manager_account.command".into());
        }
        if let Some(login) = &self.manager_account.login
            && !matches!(login.from.as_str(), "email" | "name")
        {
            return Err("manager_account.login.from must be \"email\" or \"name\"".into());
        }
        if let Some(limit) = &self.user_limit
            && !matches!(limit.method.as_str(), "environment" | "command" | "unsupported")
        {
            return Err("user_limit.method must be \"environment\", \"command\" or \"unsupported\"".into());
        }
        if self.user_limit.as_ref().and_then(|limit| limit.users_in_use.as_ref()).is_some_and(Vec::is_empty) {
            return Err("user_limit.users_in_use is empty: give the command that prints the number of users".into());
        }
        if self.public_address.as_ref().is_some_and(|address| address.command.is_empty()) {
            return Err("public_address.command is empty: give the command that tells the app its address".into());
        }
        for path in self.files.keys() {
            check_file_path(path)?;
        }
        if self.files.values().any(|content| content.contains(render::PASSWORD_HASH_PLACEHOLDER))
            && self.manager_account.reload.is_none()
        {
            return Err(
                "a file holds {manager.password_hash}: give manager_account.reload, the command that makes the app read it again"
                    .into(),
            );
        }
        let capabilities = self.capabilities.iter().chain(self.sidecars.values().flat_map(|s| &s.capabilities));
        for capability in capabilities {
            if !KNOWN_CAPABILITIES.contains(&capability.as_str()) {
                return Err(format!(
                    "capability {capability:?} is not one Atrium grants: use some of {}",
                    KNOWN_CAPABILITIES.join(", ")
                ));
            }
        }
        if self.read_only && self.files.values().any(|content| content.contains(render::PASSWORD_HASH_PLACEHOLDER)) {
            return Err(
                "read_only cannot hold login files that a new password rewrites in the running container".into()
            );
        }
        if self.health.command.is_empty() {
            return Err("health.command is empty".into());
        }
        if self.upgrade.as_ref().is_some_and(|upgrade| upgrade.migrate.is_empty()) {
            return Err("upgrade.migrate is empty: give the command that migrates the data".into());
        }
        if self.sidecars.contains_key(BACKUP_ROLE) {
            return Err(format!(
                "sidecar {BACKUP_ROLE:?}: the name is the instance's backup container's; call the sidecar something else"
            ));
        }
        if let Some(backup) = &self.backup {
            if !self.sidecars.contains_key(&backup.sidecar) {
                return Err(format!(
                    "backup.sidecar {:?} is not one of this entry's sidecars ({})",
                    backup.sidecar,
                    self.sidecars.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            if backup.dump.is_empty() || backup.restore.is_empty() {
                return Err("backup.dump and backup.restore must both be commands".into());
            }
            if backup.image.as_ref().is_some_and(|image| image.trim().is_empty() || image.contains('{')) {
                return Err(
                    "backup.image must name an image (no placeholders), or be left out to use the sidecar's".into()
                );
            }
        }
        // Every placeholder must render: try the entry with sample values.
        render::check_placeholders(self)
    }

    /// Why going from version `from` to `to` cannot be done in place, if it
    /// cannot: an entry whose upgrades migrate the data never goes back to
    /// an earlier version of its channel (that version cannot read data the
    /// later one migrated). Versions are ordered as the channel lists them.
    pub fn downgrade_refusal(&self, channel: &str, from: &str, to: &str) -> Option<String> {
        self.upgrade.as_ref()?;
        let versions = &self.channel(channel)?.versions;
        let position = |version: &str| versions.iter().position(|v| v == version);
        match (position(from), position(to)) {
            (Some(from_at), Some(to_at)) if to_at < from_at => Some(format!(
                "{name} {from} migrated this instance's data, which {name} {to} cannot read: keep version {from} \
                 (or a later one). To go back, restore a backup taken before the upgrade",
                name = self.name
            )),
            _ => None,
        }
    }

    /// The channel's entry, if the app offers that channel.
    pub fn channel(&self, channel: &str) -> Option<&ChannelEntry> {
        self.channels.get(channel)
    }
}

impl Catalog {
    /// The built-in entries.
    pub fn built_in() -> Catalog {
        let mut catalog = Catalog::default();
        for (file, text) in BUILT_IN {
            // Built-in entries are checked by unit tests; a broken one is a build bug.
            let entry = CatalogEntry::parse(file, text).unwrap_or_else(|error| panic!("built-in catalog: {error}"));
            catalog.entries.insert(entry.name.clone(), entry);
        }
        catalog
    }

    /// The built-in entries plus (overriding by name) every `*.hcl` file in `directory`.
    pub fn with_directory(directory: &Path) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::built_in();
        let read_error = |source| CatalogError::Directory { directory: directory.display().to_string(), source };
        let mut paths: Vec<_> = std::fs::read_dir(directory)
            .map_err(read_error)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "hcl"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(read_error)?;
            let entry = CatalogEntry::parse(&path.display().to_string(), &text)?;
            catalog.entries.insert(entry.name.clone(), entry);
        }
        Ok(catalog)
    }

    pub fn get(&self, app: &str) -> Option<&CatalogEntry> {
        self.entries.get(app)
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }
}

/// A configuration file's path: absolute, normalised, not a directory.
pub fn check_file_path(path: &str) -> Result<(), String> {
    let normal = path.starts_with('/')
        && !path.ends_with('/')
        && path[1..].split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if !(normal && path.len() <= 255) {
        return Err(format!(
            "{path:?} is not a file path inside the container: use an absolute path without \".\", \"..\" or \"//\" (e.g. \"/etc/app/custom.conf\")"
        ));
    }
    check_not_kernel_path(path)
}

/// The kernel's own trees in a container (`/proc`, `/sys`, `/dev`): Docker
/// mounts them itself, and nothing of a customization may go there.
pub fn check_not_kernel_path(path: &str) -> Result<(), String> {
    match ["/proc", "/sys", "/dev"].iter().find(|tree| path == **tree || path.starts_with(&format!("{tree}/"))) {
        Some(tree) => Err(format!(
            "{path:?} is inside {tree}, which the container engine provides itself: choose a path elsewhere (e.g. under /etc or /srv)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_entries_parse_and_check() {
        let catalog = Catalog::built_in();
        assert!(catalog.names().contains(&"hello"));
        let hello = catalog.get("hello").unwrap();
        assert_eq!(hello.channel("stable").unwrap().default, "1.1");
        assert_eq!(hello.volumes["data"], "/www/data");
    }

    #[test]
    fn apps_that_migrate_data_never_go_back_a_version() {
        let catalog = Catalog::built_in();
        let redmine = catalog.get("redmine").unwrap();
        let refusal = redmine.downgrade_refusal("stable", "6.0", "5.0").expect("a refusal");
        assert!(refusal.contains("keep version 6.0") && refusal.contains("restore a backup"), "{refusal}");
        assert_eq!(redmine.downgrade_refusal("stable", "5.0", "6.0"), None);
        assert_eq!(redmine.downgrade_refusal("stable", "5.0", "5.0"), None);
        // hello's versions migrate nothing: any version goes.
        assert_eq!(catalog.get("hello").unwrap().downgrade_refusal("stable", "1.1", "1.0"), None);
    }

    #[test]
    fn logins_follow_the_apps_rules() {
        let account = |login: Option<LoginEntry>| ManagerAccountEntry {
            method: "command".into(),
            environment: BTreeMap::new(),
            command: None,
            role: None,
            login_path: None,
            reload: None,
            login,
        };
        let email_only = account(None);
        assert_eq!(email_only.login_for("o'neil+crm@acme.example", "Dana"), "o'neil+crm@acme.example");
        let redmine = account(Some(LoginEntry {
            from: "email".into(),
            punctuation: Some("_-@.".into()),
            ascii_letters: true,
            max_length: Some(60),
        }));
        assert_eq!(redmine.login_for("it-lead@acme.example", "Dana"), "it-lead@acme.example");
        assert_eq!(redmine.login_for("o'neil+crm@acme.example", "Dana"), "o_neil_crm@acme.example");
        assert_eq!(redmine.login_for("zoë@acme.example", "Dana"), "zo_@acme.example");
        let long = format!("{}@acme.example", "a".repeat(80));
        assert_eq!(redmine.login_for(&long, "Dana").chars().count(), 60);
        let wiki = account(Some(LoginEntry {
            from: "name".into(),
            punctuation: Some(" -.'".into()),
            ascii_letters: false,
            max_length: Some(85),
        }));
        assert_eq!(wiki.login_for("dana@acme.example", "  Zoë O'Neil "), "Zoë O'Neil");
        assert_eq!(wiki.login_for("dana@acme.example", "Dana [IT] #1"), "Dana _IT_ _1");
        assert_eq!(wiki.login_for("dana@acme.example", "@@"), "manager", "a login of no letter at all");
    }

    #[test]
    fn broken_entries_say_what_is_wrong() {
        let hello = BUILT_IN[0].1;
        let cases = [
            (hello.replace("default  = \"1.1\"", "default  = \"9.9\""), "default version \"9.9\""),
            (hello.replace("stable = {", "nightly = {"), "unknown channel \"nightly\""),
            (hello.replace("HELLO_TENANT = \"{tenant}\"", "HELLO_TENANT = \"{tenent}\""), "{tenent}"),
            (hello.replace("basic      =", "starter    ="), "no resources for tier basic"),
            (hello.replace("port        = 80", "port        = \"eighty\""), "expected u16"),
        ];
        for (text, expected) in cases {
            let error = CatalogEntry::parse("broken.hcl", &text).unwrap_err().to_string();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
            assert!(error.contains("broken.hcl"));
        }
    }

    #[test]
    fn an_operator_directory_adds_and_overrides_entries() {
        let directory = tempfile::tempdir().unwrap();
        let custom = BUILT_IN[0].1.replace("name        = \"hello\"", "name        = \"greeter\"");
        std::fs::write(directory.path().join("greeter.hcl"), custom).unwrap();
        std::fs::write(directory.path().join("notes.txt"), "ignored").unwrap();
        let catalog = Catalog::with_directory(directory.path()).unwrap();
        assert!(catalog.get("greeter").is_some());
        assert!(catalog.get("hello").is_some());
        std::fs::write(directory.path().join("bad.hcl"), "name = ").unwrap();
        assert!(Catalog::with_directory(directory.path()).unwrap_err().to_string().contains("bad.hcl"));
    }
}
