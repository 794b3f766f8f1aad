//! `atrium_app_instance`: a catalog app deployed for a tenant on a target.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backup::{BackupSettings, RestoreRequest};
use super::ids::TenantId;
use super::timeouts::Timeouts;
use crate::model::password::Password;

/// An app instance's natural key: `tenant/name`, e.g. `acme/erp`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppInstanceId {
    pub tenant_id: TenantId,
    /// The instance's name within its tenant (same slug rule as tenants).
    pub name: String,
}

impl AppInstanceId {
    /// Parses `tenant/name`.
    pub fn parse(text: &str) -> Result<AppInstanceId, String> {
        let hint = "write it as TENANT/NAME, e.g. \"acme/erp\"";
        let (tenant, name) =
            text.split_once('/').ok_or_else(|| format!("{text:?} is not an app instance id: {hint}"))?;
        let tenant_id = TenantId::parse(tenant).map_err(|e| format!("{e}; {hint}"))?;
        check_instance_name(name).map_err(|e| format!("{e}; {hint}"))?;
        Ok(AppInstanceId { tenant_id, name: name.to_owned() })
    }
}

impl std::fmt::Display for AppInstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant_id, self.name)
    }
}

/// Instance names follow the tenant slug rule, shorter: 2 to 30 characters.
pub fn check_instance_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok = (2..=30).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes.last().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid instance name: use 2 to 30 lowercase letters, digits and hyphens, starting with a letter (e.g. \"erp\" or \"chat-1\")"
        ))
    }
}

/// CPU and memory limits for the app's containers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores, e.g. `0.5` or `2`.
    pub cpus: f64,
    /// Memory in MiB, e.g. `512`.
    pub memory_mb: u64,
}

/// An overlay on the catalog entry. It can add environment variables, data
/// volumes and configuration files; it can never remove the core's health
/// check, data volumes or configuration files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Customizations {
    /// Environment variables added to (or overriding) the catalog's.
    #[serde(default)]
    pub environment: Option<BTreeMap<String, String>>,
    /// Extra data volumes: name → mount path. Names and paths of the catalog's
    /// own data volumes cannot be reused.
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, String>>,
    /// Configuration files written into the app container before it starts: absolute path → content, e.g.
    /// `{ "/etc/odoo/extra.conf" = file("extra.conf") }`. A changed file deploys a new container. Files
    /// cannot go inside the app's data volumes or replace the catalog's own files.
    #[serde(default)]
    pub files: Option<BTreeMap<String, String>>,
    /// Must stay unset or `false`: the catalog's health check guards every upgrade.
    #[serde(default)]
    pub disable_health_check: Option<bool>,
}

/// A catalog app deployed for a tenant on a target, upgraded with a health
/// check and rolled back when the new version does not become healthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppInstanceDocument {
    /// The tenant that owns the instance (`atrium_tenant.<name>.id`). Changing it replaces the instance.
    #[schemars(extend("x-atrium-forces-replacement" = true))]
    pub tenant_id: String,
    /// The instance's name within the tenant, 2 to 30 characters (`erp`, `chat`). Changing it replaces the instance.
    #[schemars(extend("x-atrium-forces-replacement" = true))]
    pub name: String,
    /// The catalog app: `redmine`, `mediawiki` and `tryton` (built on the machine from Debian's
    /// packages), `hello` (a test page), `odoo`, `erpnext`, `mattermost`, `openproject`, `nextcloud`
    /// (upstream images), or one from the operator's `catalog_dir`. Changing it replaces the instance.
    #[schemars(extend("x-atrium-forces-replacement" = true))]
    pub app: String,
    /// The version channel: `stable` (default), `vanilla` (upstream image) or `custom` (our customized build).
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true))]
    pub channel: Option<String>,
    /// A pinned version. Unset: the channel's current version, recorded in state; when the catalog moves
    /// the channel, the next plan shows the upgrade. Apps whose upgrades migrate their data (every built-in
    /// app but hello) stop the old version, back up, migrate and start the new one, and put the backup
    /// back if that fails; they never go back to an earlier version (refused at plan).
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true))]
    pub version: Option<String>,
    /// The hosting target (a key of the provider's `targets`). Changing it moves the instance with its data, in
    /// place: the app stops on the old target, its volumes are copied to the new one, it starts there and must
    /// pass its health check, then its domains' routes (and platform DNS records) switch and the old containers
    /// go. The app is down from its stop until its first answer on the new target; a failure at any step leaves
    /// it serving from the old target. The old target keeps its copy of the data (listed by `atrium kept`) until
    /// it is purged, or the instance is destroyed with `delete_data_on_destroy`. A move changes nothing else:
    /// change `version` in another apply.
    pub target: String,
    /// How many users the app is licensed for; at most the tenant's `user_quota`.
    pub users: u32,
    /// How many copies of the app run (1 to 9, default 1), each on its own node of a swarm target, behind
    /// the instance's domains (the proxy goes to the next one when one does not answer). Only on a `swarm`
    /// target, and only for apps whose app container keeps nothing (no volume in the catalog entry or in
    /// `customizations.volumes`): an app with data runs once, where its data is. Sidecars run once. At
    /// most one per node that can run tasks. A change rolls the app to a new generation, one copy at a time.
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true))]
    pub replicas: Option<u32>,
    /// CPU and memory limits. Default: the catalog's limits for the tenant's tier.
    #[serde(default)]
    pub resources: Option<Resources>,
    /// Environment, extra volumes and configuration files laid over the catalog entry.
    #[serde(default)]
    pub customizations: Option<Customizations>,
    /// The password of the tenant's manager account inside the app (12 to 128 characters). Write-only:
    /// Terraform passes it to the provider but never keeps it in state or plan files, and the registry keeps
    /// only a salted hash. Unset: the engine generates one, which reaches the manager only by the welcome
    /// email. A changed value is detected against the stored hash and set inside the app.
    #[serde(default)]
    #[schemars(extend("x-atrium-sensitive" = true, "x-atrium-write-only" = true))]
    pub admin_password: Option<String>,
    /// Change (e.g. increase) this number to set the manager's password again: to `admin_password`, or
    /// to a newly generated one when `admin_password` is unset.
    #[serde(default)]
    pub password_version: Option<u64>,
    /// Whether destroying the instance also deletes its data volumes. Default `false`: data is kept.
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true))]
    pub delete_data_on_destroy: Option<bool>,
    /// The instance's own backup schedule and retention, over its tenant's tier's (apps that back up
    /// their data: redmine, mediawiki, tryton). Unset attributes keep the tier's values. A change
    /// replaces the instance's backup container only; the app keeps running.
    #[serde(default)]
    pub backup: Option<BackupSettings>,
    /// Restores the instance's data from a snapshot when set or changed: at create into the new
    /// instance (with `from`, a clone of another instance's data), later in place. A backup of the data
    /// it replaces is taken first (`atrium snapshots` lists it), the app stops, the snapshot's database
    /// and volumes are put back (migrated when an earlier version took it), and the app starts until
    /// healthy; if any of that fails, the replaced data is put back and the apply fails (the next one
    /// tries again). The accounts come back as the snapshot had them: a manager given a generated
    /// password gets a new one by email. Unsetting it, or keeping it, restores nothing. A replacement
    /// (another tenant, name, app or target) is a new instance, into which it is carried out again.
    /// Apps that take backups only (redmine, mediawiki, tryton).
    #[serde(default)]
    pub restore: Option<RestoreRequest>,
    /// Deadlines for create (including the health check), update (upgrade) and delete.
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
    /// The instance's id: `tenant/name`.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub id: Option<String>,
    /// `running` when the deployed container is up and matches the plan; `suspended` while the tenant is
    /// past its expiry (an instance made or changed then is deployed and left stopped; resuming starts it);
    /// `stopped`, `missing` or `drifted` when it was changed out of band (the next apply repairs it);
    /// `stranded` on a swarm target when the node holding its data is drained or down (the plan says the way
    /// out: make the node active again, or move the instance to another target; Atrium never starts it on an
    /// empty volume elsewhere).
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub status: Option<String>,
    /// Where the app answers on its target (the reverse proxy beside the target uses it), e.g. `http://127.0.0.1:32768`.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub internal_url: Option<String>,
    /// The version that is running.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub version_deployed: Option<String>,
    /// The version that ran before the last upgrade.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub previous_version: Option<String>,
    /// When the running version was deployed (RFC 3339, UTC).
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub deployed_at: Option<String>,
    /// The welcome email with the app's address and the manager's login: `sent`; `waiting_for_domain`
    /// until the instance has a live domain (the email names an address the customer can reach, and goes
    /// out, with a new password, when the first `atrium_domain` of the instance goes live); `pending` when
    /// sending failed (the next apply sets a new password and sends again); `off` when the tenant wants
    /// none (`welcome_email = false`) or the provider has no `smtp` block.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub welcome_email_status: Option<String>,
    /// The snapshot the instance's latest backup made (restic's short id, as `atrium snapshots` lists it
    /// and `atrium restore` takes it): scheduled, taken by hand (`atrium backup`), or of the data a restore
    /// replaced. Null until the first backup, and for apps that take none (`hello`). A refresh reads it
    /// from the backup container; a backup taken since shows at the next refresh, not as a change.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub latest_backup: Option<String>,
    /// When the latest backup was taken (RFC 3339, UTC); null with `latest_backup`.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub latest_backup_at: Option<String>,
    /// The latest restore test (`atrium restore-test`: the latest snapshot restored into a scratch instance,
    /// which must turn healthy by the app's health check): `passed at TIME: ...` or `failed at TIME: ...`,
    /// with the snapshot and what happened. Null before the first test, and for apps that take no
    /// backups. A refresh reads it from the backup volume.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub latest_restore_test: Option<String>,
    /// The latest copy of a backup to the off-site store of the instance's target (the target's
    /// `offsite_backups`): `snapshot ID copied at TIME`, or `failed at TIME: ...` with restic's last
    /// words (the local backup stands; the next one copies again). Null while the target copies none.
    /// A refresh reads it from the backup volume.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub latest_offsite_copy: Option<String>,
    /// How many people use the app (active users, not its own root/admin user or system accounts), as
    /// the app counts them, for apps with no user limit of their own (Tryton, Redmine, MediaWiki): the
    /// plan warns when it exceeds `users`, which such an app cannot enforce. Null for apps that enforce
    /// `users` themselves. A refresh reads it from the app; a change shows at the next refresh.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub users_in_use: Option<u64>,
}

/// The attributes as far as they are known (validation at plan time).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AppInstanceDraft {
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub users: Option<serde_json::Number>,
    #[serde(default)]
    pub replicas: Option<serde_json::Number>,
    #[serde(default)]
    pub resources: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub customizations: Option<Customizations>,
    #[serde(default)]
    pub admin_password: Option<String>,
    #[serde(default)]
    pub backup: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub restore: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
}

/// The largest environment value a customization may set (32 KiB): Docker
/// passes the whole environment in one request, and settings that large
/// belong in a configuration file.
pub const MAX_ENVIRONMENT_VALUE_BYTES: usize = 32 * 1024;

/// The largest configuration file a customization may write (256 KiB).
pub const MAX_FILE_BYTES: usize = 256 * 1024;

/// An instance's desired state: fully known, validated, defaults filled.
#[derive(Debug, Clone, PartialEq)]
pub struct AppInstanceSpec {
    pub id: AppInstanceId,
    pub app: String,
    pub channel: String,
    pub version: String,
    pub target: String,
    pub users: u32,
    /// Copies of the app container (more than one only on a swarm, for an app without volumes).
    pub replicas: u32,
    pub resources: Option<Resources>,
    pub environment: BTreeMap<String, String>,
    pub extra_volumes: BTreeMap<String, String>,
    /// Customizations' configuration files: path → content.
    pub files: BTreeMap<String, String>,
    /// The password the user set (write-only); `None` lets the engine generate one.
    /// Never recorded: the registry keeps only its hash.
    pub admin_password: Option<Password>,
    /// Changing it sets the manager's password again.
    pub password_version: u64,
    pub delete_data_on_destroy: bool,
    /// Over the tier's backup policy.
    pub backup: Option<BackupSettings>,
    /// The restore last asked for and carried out (a new or changed one is carried out by the apply).
    pub restore: Option<RestoreRequest>,
}

/// Whether an app instance's welcome email (its address and the manager's
/// login) went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WelcomeState {
    Sent,
    /// A send failed: the next apply sets a new password (the old one reached
    /// nobody) and sends again.
    Pending,
    /// The instance has no live domain yet, so no address the customer can
    /// reach: the email goes out (with a new password) when its first domain
    /// goes live.
    WaitingForDomain,
    /// The tenant wants no welcome email, or no SMTP relay is configured.
    Off,
}

impl WelcomeState {
    pub fn as_str(self) -> &'static str {
        match self {
            WelcomeState::Sent => "sent",
            WelcomeState::Pending => "pending",
            WelcomeState::WaitingForDomain => "waiting_for_domain",
            WelcomeState::Off => "off",
        }
    }

    pub fn parse(text: &str) -> Option<WelcomeState> {
        [WelcomeState::Sent, WelcomeState::Pending, WelcomeState::WaitingForDomain, WelcomeState::Off]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// How an observed app container compares with the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceHealth {
    Running,
    Stopped,
    Missing,
    Drifted,
    /// Stopped on purpose: the tenant is suspended (expired).
    Suspended,
    /// Not running because the swarm node holding its data is drained or down.
    Stranded,
}

impl InstanceHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceHealth::Running => "running",
            InstanceHealth::Stopped => "stopped",
            InstanceHealth::Missing => "missing",
            InstanceHealth::Drifted => "drifted",
            InstanceHealth::Suspended => "suspended",
            InstanceHealth::Stranded => "stranded",
        }
    }
}

/// An instance as the registry records it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppInstanceRecord {
    pub spec: AppInstanceSpec,
    /// Increases with every deployment; names the app container.
    pub generation: u32,
    pub previous_version: Option<String>,
    pub deployed_at: String,
    /// The app's published port.
    pub published_port: Option<u16>,
    /// The host it is published on, when not the target's loopback: the
    /// node running it on a swarm target.
    pub published_host: Option<String>,
    /// The target a move left, while the instance's containers there are
    /// still to be removed (a move interrupted at its last step): the next
    /// deployment removes them.
    pub moved_from: Option<String>,
    /// Generated once per instance (database passwords); never in Terraform state.
    pub secrets: BTreeMap<String, String>,
    /// The manager's password as a salted SHA-crypt hash; the clear
    /// password is never recorded.
    pub manager_password_hash: String,
    /// Whether the instance's welcome email went out.
    pub welcome: WelcomeState,
    /// Whether the manager's password was given (`admin_password`) rather
    /// than generated.
    pub password_given: bool,
    pub owner: String,
    pub created_at: String,
}

impl AppInstanceRecord {
    /// The record with the address its app container is observed at
    /// (`port` on `host`, `None`: the target's loopback), when that differs
    /// from the recorded one: a restarted container publishes its port anew,
    /// and a swarm may run it on another node. `None` when nothing changed
    /// or it publishes no port.
    pub fn with_address(&self, port: Option<u16>, host: Option<String>) -> Option<AppInstanceRecord> {
        (port.is_some() && (port, host.as_ref()) != (self.published_port, self.published_host.as_ref()))
            .then(|| AppInstanceRecord { published_port: port, published_host: host, ..self.clone() })
    }
}

impl AppInstanceRecord {
    /// The instance as a state holds it, with its observed health. What only
    /// a configuration holds (`timeouts`, the user's spelling of empty
    /// customizations and of an unset `password_version`) comes from
    /// `current`, the state or configuration being refreshed, when there is one.
    pub fn to_document(&self, health: InstanceHealth, current: Option<&AppInstanceDocument>) -> AppInstanceDocument {
        let spec = &self.spec;
        let recorded = Customizations {
            environment: Some(spec.environment.clone()).filter(|m| !m.is_empty()),
            volumes: Some(spec.extra_volumes.clone()).filter(|m| !m.is_empty()),
            files: Some(spec.files.clone()).filter(|m| !m.is_empty()),
            disable_health_check: None,
        };
        // Keep the user's spelling (e.g. an empty map) when it means the same thing.
        let customizations = match current.and_then(|current| current.customizations.clone()) {
            Some(current)
                if current.environment.clone().unwrap_or_default() == spec.environment
                    && current.volumes.clone().unwrap_or_default() == spec.extra_volumes
                    && current.files.clone().unwrap_or_default() == spec.files =>
            {
                Some(current)
            }
            _ if recorded == Customizations::default() => None,
            _ => Some(recorded),
        };
        // Keep the user's spelling: unset and 0 mean the same.
        let password_version = match current.and_then(|current| current.password_version) {
            None if spec.password_version == 0 => None,
            _ => Some(spec.password_version),
        };
        // Keep the user's spelling: unset and 1 mean the same.
        let replicas = match current.and_then(|current| current.replicas) {
            None if spec.replicas == 1 => None,
            _ => Some(spec.replicas),
        };
        // Keep the user's spelling: `backup = {}` sets nothing, as unset does.
        let setting = |backup: Option<BackupSettings>| backup.filter(|b| *b != BackupSettings::default());
        let backup = match current.and_then(|current| current.backup.clone()) {
            Some(current) if setting(Some(current.clone())) == spec.backup => Some(current),
            _ => spec.backup.clone(),
        };
        AppInstanceDocument {
            tenant_id: spec.id.tenant_id.to_string(),
            name: spec.id.name.clone(),
            app: spec.app.clone(),
            channel: Some(spec.channel.clone()),
            version: Some(spec.version.clone()),
            target: spec.target.clone(),
            users: spec.users,
            replicas,
            resources: spec.resources.clone(),
            customizations,
            admin_password: None,
            password_version,
            delete_data_on_destroy: Some(spec.delete_data_on_destroy),
            backup,
            restore: spec.restore.clone(),
            timeouts: current.and_then(|current| current.timeouts.clone()),
            id: Some(spec.id.to_string()),
            status: Some(health.as_str().to_owned()),
            internal_url: self
                .published_port
                .map(|port| format!("http://{}:{port}", self.published_host.as_deref().unwrap_or("127.0.0.1"))),
            version_deployed: Some(spec.version.clone()),
            previous_version: self.previous_version.clone(),
            deployed_at: Some(self.deployed_at.clone()),
            welcome_email_status: Some(self.welcome.as_str().to_owned()),
            // Read from the target, not the registry: the current values
            // until the caller reads them (`LatestBackup::read_into`).
            latest_backup: current.and_then(|current| current.latest_backup.clone()),
            latest_backup_at: current.and_then(|current| current.latest_backup_at.clone()),
            latest_restore_test: current.and_then(|current| current.latest_restore_test.clone()),
            latest_offsite_copy: current.and_then(|current| current.latest_offsite_copy.clone()),
            users_in_use: current.and_then(|current| current.users_in_use),
        }
    }
}

/// The latest backup of an instance, as its backup container wrote it in
/// the backup volume (`/backup/status/latest`: the snapshot and the time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestBackup {
    pub snapshot: String,
    pub taken_at: String,
}

impl LatestBackup {
    /// Parses the status file's line: `SNAPSHOT TIME`.
    pub fn parse(line: &str) -> Option<LatestBackup> {
        let mut words = line.split_whitespace();
        let (snapshot, taken_at) = (words.next()?, words.next()?);
        let hex = !snapshot.is_empty() && snapshot.chars().all(|c| c.is_ascii_hexdigit());
        (hex && taken_at.ends_with('Z') && words.next().is_none())
            .then(|| LatestBackup { snapshot: snapshot.to_owned(), taken_at: taken_at.to_owned() })
    }
}

/// What an instance's backup volume says of its backups: the latest one,
/// the latest restore test and the latest off-site copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupStatus {
    pub latest: Option<LatestBackup>,
    pub restore_test: Option<String>,
    pub offsite_copy: Option<String>,
}

impl BackupStatus {
    /// The line between the status files in what [`BackupStatus::READ`] prints.
    const SEPARATOR: &str = "--";

    /// The command that prints the status files, the latest backup's line first.
    pub const READ: &str = "cat /backup/status/latest 2>/dev/null; echo --; cat /backup/status/restore-test 2>/dev/null; echo --; cat /backup/status/offsite 2>/dev/null; true";

    /// Parses what [`BackupStatus::READ`] printed.
    pub fn parse(output: &str) -> BackupStatus {
        let mut lines = output.lines().map(str::trim);
        let latest: Vec<&str> = lines.by_ref().take_while(|line| *line != Self::SEPARATOR).collect();
        let restore_test: Vec<&str> = lines.by_ref().take_while(|line| *line != Self::SEPARATOR).collect();
        let restore_test = restore_test.into_iter().find(|line| !line.is_empty()).map(str::to_owned);
        let offsite_copy = lines.find(|line| !line.is_empty()).and_then(Self::offsite_copy);
        BackupStatus { latest: LatestBackup::parse(&latest.join(" ")), restore_test, offsite_copy }
    }

    /// The off-site copy's status line (`SNAPSHOT TIME`, or `failed TIME: WHY`)
    /// as `latest_offsite_copy` says it.
    fn offsite_copy(line: &str) -> Option<String> {
        if let Some(failure) = line.strip_prefix("failed ") {
            return Some(format!("failed at {failure}"));
        }
        LatestBackup::parse(line).map(|copied| format!("snapshot {} copied at {}", copied.snapshot, copied.taken_at))
    }
}

/// What a refresh read of an instance's app: its latest backup and the
/// users it counts; what it could not read keeps the values already known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRead {
    pub latest_backup: LatestBackupRead,
    pub users_in_use: UsersInUseRead,
}

impl AppRead {
    /// Nothing read: the values already known stay.
    pub const NOTHING: AppRead =
        AppRead { latest_backup: LatestBackupRead::Unreadable, users_in_use: UsersInUseRead::Unreadable };

    /// Sets the document's attributes from what was read.
    pub fn read_into(self, document: &mut AppInstanceDocument) {
        self.latest_backup.read_into(document);
        if let UsersInUseRead::Read(users) = self.users_in_use {
            document.users_in_use = users;
        }
    }
}

/// Which of an app's values a read asks for (an apply reads only what its
/// plan did not know, so that nothing else differs from the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppReadWanted {
    pub latest_backup: bool,
    pub users_in_use: bool,
}

impl AppReadWanted {
    pub const ALL: AppReadWanted = AppReadWanted { latest_backup: true, users_in_use: true };

    pub fn any(self) -> bool {
        self.latest_backup || self.users_in_use
    }
}

/// What a refresh read of the users an app counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsersInUseRead {
    /// Read: `None` for apps that do not count them (they enforce `users`).
    Read(Option<u64>),
    /// Not readable now (the app is stopped, its command failed or printed
    /// no number, or the engine did not answer).
    Unreadable,
}

impl UsersInUseRead {
    /// The count in the output of the catalog's `users_in_use` command: its
    /// last non-empty line, a whole number and nothing else (what an app
    /// prints before it, warnings, is ignored).
    pub fn parse(output: &str) -> UsersInUseRead {
        let last = output.lines().map(str::trim).rfind(|line| !line.is_empty());
        match last.and_then(|line| line.parse::<u64>().ok()) {
            Some(users) => UsersInUseRead::Read(Some(users)),
            None => UsersInUseRead::Unreadable,
        }
    }
}

/// What a refresh read of an instance's latest backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatestBackupRead {
    /// Read: empty before the first backup and for apps that take none.
    Read(BackupStatus),
    /// Not readable now (the backup container is stopped or gone, or the
    /// engine did not answer): the values already known stay.
    Unreadable,
}

impl LatestBackupRead {
    /// Sets the document's `latest_backup` attributes from what was read.
    pub fn read_into(self, document: &mut AppInstanceDocument) {
        if let LatestBackupRead::Read(status) = self {
            document.latest_backup = status.latest.as_ref().map(|latest| latest.snapshot.clone());
            document.latest_backup_at = status.latest.map(|latest| latest.taken_at);
            document.latest_restore_test = status.restore_test;
            document.latest_offsite_copy = status.offsite_copy;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_address_is_recorded_only_when_it_changed_and_there_is_a_port() {
        let record = AppInstanceRecord {
            spec: crate::test_services::hello_spec("acme", "1.1"),
            generation: 1,
            previous_version: None,
            deployed_at: "2026-12-04T10:00:00Z".into(),
            published_port: Some(20001),
            published_host: Some("10.77.0.11".into()),
            moved_from: None,
            secrets: BTreeMap::new(),
            manager_password_hash: String::new(),
            welcome: WelcomeState::Sent,
            password_given: false,
            owner: "terraform".into(),
            created_at: "2026-12-04T10:00:00Z".into(),
        };
        assert_eq!(record.with_address(Some(20001), Some("10.77.0.11".into())), None);
        assert_eq!(record.with_address(None, None), None, "a stopped task publishes nothing: kept");
        let moved = record.with_address(Some(20001), Some("10.77.0.12".into())).expect("moved to another node");
        assert_eq!((moved.published_port, moved.published_host.as_deref()), (Some(20001), Some("10.77.0.12")));
        let loopback = record.with_address(Some(32768), None).expect("on an engine's loopback");
        assert_eq!(
            loopback.to_document(InstanceHealth::Running, None).internal_url.as_deref(),
            Some("http://127.0.0.1:32768")
        );
        assert_eq!(
            moved.to_document(InstanceHealth::Running, None).internal_url.as_deref(),
            Some("http://10.77.0.12:20001")
        );
    }

    #[test]
    fn the_latest_backup_is_read_from_the_status_line_and_nothing_else() {
        let latest = LatestBackup::parse("3f9a12bc 2026-12-03T16:20:00Z").unwrap();
        assert_eq!(latest, LatestBackup { snapshot: "3f9a12bc".into(), taken_at: "2026-12-03T16:20:00Z".into() });
        for line in
            ["", "3f9a12bc", "not-hex 2026-12-03T16:20:00Z", "3f9a12bc yesterday", "3f9a12bc 2026-12-03T16:20:00Z x"]
        {
            assert_eq!(LatestBackup::parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn users_in_use_is_the_last_line_of_the_command_and_only_a_whole_number() {
        assert_eq!(UsersInUseRead::parse("3\n"), UsersInUseRead::Read(Some(3)));
        assert_eq!(UsersInUseRead::parse("DEPRECATION WARNING: old\n 12 \n\n"), UsersInUseRead::Read(Some(12)));
        for output in ["", "\n", "3 users", "-1", "2.5", "12\nTraceback (most recent call last):"] {
            assert_eq!(UsersInUseRead::parse(output), UsersInUseRead::Unreadable, "{output:?}");
        }
        let mut document: AppInstanceDocument = serde_json::from_value(serde_json::json!({
            "tenant_id": "acme", "name": "erp", "app": "redmine", "target": "lyon", "users": 5, "users_in_use": 4,
        }))
        .unwrap();
        AppRead { users_in_use: UsersInUseRead::Unreadable, ..AppRead::NOTHING }.read_into(&mut document);
        assert_eq!(document.users_in_use, Some(4), "an unreadable count keeps what was known");
        AppRead { users_in_use: UsersInUseRead::Read(Some(6)), ..AppRead::NOTHING }.read_into(&mut document);
        assert_eq!(document.users_in_use, Some(6));
        AppRead { users_in_use: UsersInUseRead::Read(None), ..AppRead::NOTHING }.read_into(&mut document);
        assert_eq!(document.users_in_use, None);
    }

    #[test]
    fn an_unreadable_latest_backup_keeps_what_was_known_and_a_read_one_replaces_it() {
        let known: AppInstanceDocument = serde_json::from_value(serde_json::json!({
            "tenant_id": "acme", "name": "erp", "app": "redmine", "target": "lyon", "users": 5,
            "latest_backup": "3f9a12bc", "latest_backup_at": "2026-12-03T16:20:00Z",
        }))
        .unwrap();
        let mut document = known.clone();
        LatestBackupRead::Unreadable.read_into(&mut document);
        assert_eq!(document, known);
        let newer = LatestBackup { snapshot: "0a1b2c3d".into(), taken_at: "2026-12-03T17:20:00Z".into() };
        let tested = "passed at 2026-12-03T18:00:00Z: snapshot 0a1b2c3d restored".to_owned();
        let copied = "snapshot 0a1b2c3d copied at 2026-12-03T17:21:00Z".to_owned();
        let status =
            BackupStatus { latest: Some(newer), restore_test: Some(tested.clone()), offsite_copy: Some(copied) };
        LatestBackupRead::Read(status).read_into(&mut document);
        assert_eq!(document.latest_offsite_copy.as_deref(), Some("snapshot 0a1b2c3d copied at 2026-12-03T17:21:00Z"));
        assert_eq!(
            (document.latest_backup.as_deref(), document.latest_backup_at.as_deref()),
            (Some("0a1b2c3d"), Some("2026-12-03T17:20:00Z"))
        );
        assert_eq!(document.latest_restore_test, Some(tested));
        LatestBackupRead::Read(BackupStatus::default()).read_into(&mut document);
        assert_eq!(
            (document.latest_backup, document.latest_backup_at, document.latest_restore_test),
            (None, None, None)
        );
    }

    #[test]
    fn the_backup_status_is_the_latest_backups_line_then_the_restore_tests() {
        let both = BackupStatus::parse(
            "3f9a12bc 2026-12-03T16:20:00Z\n--\npassed at 2026-12-03T18:00:00Z: snapshot 3f9a12bc restored\n",
        );
        assert_eq!(both.latest.map(|latest| latest.snapshot).as_deref(), Some("3f9a12bc"));
        assert_eq!(both.restore_test.as_deref(), Some("passed at 2026-12-03T18:00:00Z: snapshot 3f9a12bc restored"));
        assert_eq!(BackupStatus::parse("--\n"), BackupStatus::default(), "no backup and no test yet");
        assert_eq!(BackupStatus::parse(""), BackupStatus::default());
        let untested = BackupStatus::parse("3f9a12bc 2026-12-03T16:20:00Z\n--\n");
        assert!(untested.latest.is_some() && untested.restore_test.is_none(), "{untested:?}");
        let copied = BackupStatus::parse("3f9a12bc 2026-12-03T16:20:00Z\n--\n--\n3f9a12bc 2026-12-03T16:20:04Z\n");
        assert_eq!(copied.restore_test, None);
        assert_eq!(copied.offsite_copy.as_deref(), Some("snapshot 3f9a12bc copied at 2026-12-03T16:20:04Z"));
        let failed = BackupStatus::parse("--\n--\nfailed 2026-12-03T16:20:04Z: Fatal: unable to open repository\n");
        assert_eq!(
            failed.offsite_copy.as_deref(),
            Some("failed at 2026-12-03T16:20:04Z: Fatal: unable to open repository")
        );
        assert_eq!(BackupStatus::parse("--\n--\ngarbage\n").offsite_copy, None);
    }
}
