//! `atrium_app_instance`: a catalog app deployed for a tenant on a target.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ids::TenantId;
use super::timeouts::Timeouts;
use crate::attribute::{AttributePath, ValidationError};
use crate::catalog::{CHANNELS, Catalog, CatalogEntry};
use crate::password::Password;

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
    /// The catalog app: `hello`, `odoo`, `erpnext`, `mattermost`, `openproject`, `nextcloud`, or one from
    /// the operator's `catalog_dir`. Changing it replaces the instance.
    #[schemars(extend("x-atrium-forces-replacement" = true))]
    pub app: String,
    /// The version channel: `stable` (default), `vanilla` (upstream image) or `custom` (our customized build).
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true))]
    pub channel: Option<String>,
    /// A pinned version. Unset: the channel's current version, recorded in state; when the catalog moves
    /// the channel, the next plan shows the upgrade.
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true))]
    pub version: Option<String>,
    /// The hosting target (a key of the provider's `targets`). Changing it replaces the instance.
    #[schemars(extend("x-atrium-forces-replacement" = true))]
    pub target: String,
    /// How many users the app is licensed for; at most the tenant's `user_quota`.
    pub users: u32,
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
    /// Deadlines for create (including the health check), update (upgrade) and delete.
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
    /// The instance's id: `tenant/name`.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub id: Option<String>,
    /// `running` when the deployed container is up and matches the plan; `stopped`, `missing` or
    /// `drifted` when it was changed out of band (the next apply repairs it).
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
}

/// What the engine knows about the platform when it validates an instance.
/// Before the provider is configured neither is known, and checks that need
/// them wait for the plan.
pub struct InstanceContext<'a> {
    pub catalog: Option<&'a Catalog>,
    /// Target names from the configuration.
    pub targets: Option<Vec<&'a str>>,
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
    pub resources: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub customizations: Option<Customizations>,
    #[serde(default)]
    pub admin_password: Option<String>,
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
}

impl AppInstanceDraft {
    /// Every problem with the known attributes, each naming its attribute.
    pub fn validate(&self, context: &InstanceContext<'_>) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        let mut check = |path: AttributePath, summary: &str, result: Option<Result<(), String>>| {
            if let Some(Err(detail)) = result {
                errors.push(ValidationError::new(path, summary, detail));
            }
        };
        check(
            AttributePath::root("tenant_id"),
            "Invalid tenant id",
            self.tenant_id.as_deref().map(|t| TenantId::parse(t).map(drop)),
        );
        check(AttributePath::root("name"), "Invalid instance name", self.name.as_deref().map(check_instance_name));
        let entry = self.app.as_deref().zip(context.catalog).and_then(|(app, catalog)| catalog.get(app));
        if let Some(catalog) = context.catalog {
            check(
                AttributePath::root("app"),
                "Unknown app",
                self.app.as_deref().map(|app| match entry {
                    Some(_) => Ok(()),
                    None => Err(format!("{app:?} is not in the catalog: use one of {}", quoted_list(&catalog.names()))),
                }),
            );
        }
        let channel = self.channel.as_deref().unwrap_or("stable");
        check(
            AttributePath::root("channel"),
            "Unknown channel",
            self.channel.as_deref().map(|c| {
                if CHANNELS.contains(&c) {
                    Ok(())
                } else {
                    Err(format!("{c:?} is not a channel: use \"stable\", \"vanilla\" or \"custom\""))
                }
            }),
        );
        if let Some(entry) = entry {
            check(AttributePath::root("channel"), "Channel not offered", Some(channel_offered(entry, channel)));
            if let (Some(version), Some(offered)) = (&self.version, entry.channel(channel)) {
                check(
                    AttributePath::root("version"),
                    "Unknown version",
                    Some(if offered.versions.contains(version) {
                        Ok(())
                    } else {
                        Err(format!(
                            "{} has no version {version:?} in the {channel} channel: use one of {}",
                            entry.name,
                            quoted_list(&offered.versions.iter().map(String::as_str).collect::<Vec<_>>())
                        ))
                    }),
                );
            }
        }
        if let Some(targets) = &context.targets {
            check(
                AttributePath::root("target"),
                "Unknown target",
                self.target.as_deref().map(|target| {
                    if targets.contains(&target) {
                        Ok(())
                    } else if targets.is_empty() {
                        Err(format!("no targets are configured: add {target:?} to the provider's targets"))
                    } else {
                        Err(format!("{target:?} is not a configured target: use one of {}", quoted_list(targets)))
                    }
                }),
            );
        }
        check(
            AttributePath::root("users"),
            "Invalid user count",
            self.users.as_ref().map(|users| match users.as_u64() {
                Some(n) if (1..=100_000).contains(&n) => Ok(()),
                _ => Err(format!("{users} is not a user count: use a whole number from 1 to the tenant's user_quota")),
            }),
        );
        if let Some(resources) = &self.resources {
            let cpus = resources.get("cpus").and_then(serde_json::Value::as_f64);
            check(
                AttributePath::root("resources").attribute("cpus"),
                "Invalid CPU limit",
                cpus.map(|c| {
                    if (0.01..=64.0).contains(&c) {
                        Ok(())
                    } else {
                        Err(format!("{c} CPUs is out of range: use 0.01 to 64"))
                    }
                }),
            );
            let memory = resources.get("memory_mb").and_then(serde_json::Value::as_f64);
            check(
                AttributePath::root("resources").attribute("memory_mb"),
                "Invalid memory limit",
                memory.map(|m| {
                    if m.fract() == 0.0 && (16.0..=262_144.0).contains(&m) {
                        Ok(())
                    } else {
                        Err(format!("{m} MiB is out of range: use a whole number from 16 to 262144"))
                    }
                }),
            );
        }
        check(
            AttributePath::root("admin_password"),
            "Invalid admin password",
            self.admin_password.as_deref().map(|password| {
                let length = password.chars().count();
                if !(12..=128).contains(&length) {
                    Err(format!("the password has {length} characters: use 12 to 128"))
                } else if password.chars().any(char::is_control) {
                    Err("the password contains control characters (such as a newline): use printable characters only"
                        .to_owned())
                } else {
                    Ok(())
                }
            }),
        );
        if let Some(customizations) = &self.customizations {
            errors.extend(validate_customizations(customizations, entry));
        }
        if let Some(timeouts) = &self.timeouts {
            errors.extend(timeouts.validate(&AttributePath::root("timeouts")));
        }
        errors
    }
}

fn quoted_list(items: &[&str]) -> String {
    items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ")
}

fn channel_offered(entry: &CatalogEntry, channel: &str) -> Result<(), String> {
    if !CHANNELS.contains(&channel) || entry.channel(channel).is_some() {
        return Ok(());
    }
    let offered: Vec<&str> = entry.channels.keys().map(String::as_str).collect();
    Err(format!("{} has no {channel} channel: use {}", entry.name, quoted_list(&offered)))
}

/// The overlay may add, never remove: the core's health check and data volumes stay.
pub fn validate_customizations(customizations: &Customizations, entry: Option<&CatalogEntry>) -> Vec<ValidationError> {
    let path = AttributePath::root("customizations");
    let mut errors = Vec::new();
    if customizations.disable_health_check == Some(true) {
        errors.push(ValidationError::new(
            path.attribute("disable_health_check"),
            "The health check cannot be removed",
            "the catalog's health check decides whether an upgrade is kept or rolled back; remove disable_health_check",
        ));
    }
    let reserved = entry.map(CatalogEntry::reserved_environment).unwrap_or_default();
    for (key, value) in customizations.environment.iter().flatten() {
        let here = path.attribute("environment").key(key);
        let valid = !key.is_empty()
            && key.len() <= 128
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            errors.push(ValidationError::new(
                here.clone(),
                "Invalid environment variable name",
                format!("{key:?} is not a variable name: use letters, digits and '_', not starting with a digit"),
            ));
        }
        if reserved.contains(key.as_str()) {
            errors.push(ValidationError::new(
                here.clone(),
                "The catalog sets this variable",
                format!(
                    "{} sets {key} itself (for the tenant, its manager account or its user limit), so a customization cannot change it; set users or the tenant's attributes instead, or use another name",
                    entry.map(|e| e.name.as_str()).unwrap_or("the app")
                ),
            ));
        }
        if value.contains('\0') {
            errors.push(ValidationError::new(
                here,
                "Invalid environment value",
                format!(
                    "the value of {key} contains a NUL character, which no process environment can hold: remove it"
                ),
            ));
        } else if value.len() > MAX_ENVIRONMENT_VALUE_BYTES {
            errors.push(ValidationError::new(
                here,
                "Environment value too long",
                format!(
                    "the value of {key} has {} bytes: keep it under {MAX_ENVIRONMENT_VALUE_BYTES} and put larger settings in a configuration file (customizations.files)",
                    value.len()
                ),
            ));
        }
    }
    for (name, mount) in customizations.volumes.iter().flatten() {
        let here = path.attribute("volumes").key(name);
        if check_instance_name(name).is_err() {
            errors.push(ValidationError::new(
                here.clone(),
                "Invalid volume name",
                format!("{name:?} is not a volume name: use lowercase letters, digits and hyphens (e.g. \"uploads\")"),
            ));
        }
        let normal = mount.starts_with('/')
            && mount.len() > 1
            && !mount.ends_with('/')
            && mount[1..].split('/').all(|part| !part.is_empty() && part != "." && part != "..");
        if !normal {
            errors.push(ValidationError::new(
                here.clone(),
                "Invalid mount path",
                format!(
                    "{mount:?} is not a directory inside the container a volume can be mounted at: use an absolute path below / without \".\", \"..\" or \"//\" (e.g. \"/srv/uploads\")"
                ),
            ));
        } else if let Err(detail) = crate::catalog::check_not_kernel_path(mount) {
            errors.push(ValidationError::new(here.clone(), "Invalid mount path", detail));
        }
        if let Some(entry) = entry {
            if let Some(core_path) = entry.volumes.get(name) {
                errors.push(ValidationError::new(
                    here.clone(),
                    "A data volume of the app cannot be replaced",
                    format!("{} keeps its data in the volume {name:?} at {core_path}; choose another name for an extra volume", entry.name),
                ));
            } else if entry.volumes.values().any(|core| {
                core == mount || mount.starts_with(&format!("{core}/")) || core.starts_with(&format!("{mount}/"))
            }) {
                errors.push(ValidationError::new(
                    here,
                    "A data volume of the app cannot be shadowed",
                    format!("{mount:?} overlaps a data volume of {}; mount extra volumes elsewhere", entry.name),
                ));
            }
        }
    }
    for (file, content) in customizations.files.iter().flatten() {
        let here = path.attribute("files").key(file);
        if let Err(detail) = crate::catalog::check_file_path(file) {
            errors.push(ValidationError::new(here.clone(), "Invalid file path", detail));
            continue;
        }
        if content.len() > MAX_FILE_BYTES {
            errors.push(ValidationError::new(
                here.clone(),
                "Configuration file too large",
                format!("the file has {} bytes: keep configuration files under {MAX_FILE_BYTES} bytes and put data in a volume", content.len()),
            ));
        }
        let Some(entry) = entry else { continue };
        if entry.files.contains_key(file) {
            errors.push(ValidationError::new(
                here,
                "A file of the app cannot be replaced",
                format!("{} writes {file} itself (it holds the manager's login); choose another path", entry.name),
            ));
        } else if let Some((volume, mount)) =
            entry.volumes.iter().find(|(_, mount)| file.starts_with(&format!("{mount}/")))
        {
            errors.push(ValidationError::new(
                here,
                "A file cannot go inside a data volume",
                format!("{file} is inside the data volume {volume:?} ({mount}), which holds the app's data; write configuration elsewhere"),
            ));
        }
    }
    errors
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
}

impl AppInstanceSpec {
    /// Validates a fully known document and fills defaults (channel, version from the catalog).
    pub fn from_document(
        document: &AppInstanceDocument,
        context: &InstanceContext<'_>,
    ) -> Result<AppInstanceSpec, Vec<ValidationError>> {
        let draft = AppInstanceDraft {
            tenant_id: Some(document.tenant_id.clone()),
            name: Some(document.name.clone()),
            app: Some(document.app.clone()),
            channel: document.channel.clone(),
            version: document.version.clone(),
            target: Some(document.target.clone()),
            users: Some(serde_json::Number::from(document.users)),
            resources: document.resources.as_ref().map(|r| {
                BTreeMap::from([
                    ("cpus".to_owned(), serde_json::json!(r.cpus)),
                    ("memory_mb".to_owned(), serde_json::json!(r.memory_mb)),
                ])
            }),
            customizations: document.customizations.clone(),
            admin_password: document.admin_password.clone(),
            timeouts: document.timeouts.clone(),
        };
        let errors = draft.validate(context);
        if !errors.is_empty() {
            return Err(errors);
        }
        let entry = context.catalog.and_then(|catalog| catalog.get(&document.app)).ok_or_else(|| {
            vec![ValidationError::new(
                AttributePath::root("app"),
                "Unknown app",
                format!("{:?} is not in the catalog", document.app),
            )]
        })?;
        let channel = document.channel.clone().unwrap_or_else(|| "stable".to_owned());
        let version = match (&document.version, entry.channel(&channel)) {
            (Some(version), _) => version.clone(),
            (None, Some(offered)) => offered.default.clone(),
            (None, None) => {
                return Err(vec![ValidationError::new(
                    AttributePath::root("channel"),
                    "Channel not offered",
                    format!("{} has no {channel} channel", entry.name),
                )]);
            }
        };
        let customizations = document.customizations.clone().unwrap_or_default();
        Ok(AppInstanceSpec {
            id: AppInstanceId {
                tenant_id: TenantId::parse(&document.tenant_id).map_err(|d| {
                    vec![ValidationError::new(AttributePath::root("tenant_id"), "Invalid tenant id", d)]
                })?,
                name: document.name.clone(),
            },
            app: document.app.clone(),
            channel,
            version,
            target: document.target.clone(),
            users: document.users,
            resources: document.resources.clone(),
            environment: customizations.environment.unwrap_or_default(),
            extra_volumes: customizations.volumes.unwrap_or_default(),
            files: customizations.files.unwrap_or_default(),
            admin_password: document.admin_password.clone().map(Password::new),
            password_version: document.password_version.unwrap_or(0),
            delete_data_on_destroy: document.delete_data_on_destroy.unwrap_or(false),
        })
    }
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

/// An instance as the registry records it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppInstanceRecord {
    pub spec: AppInstanceSpec,
    /// Increases with every deployment; names the app container.
    pub generation: u32,
    pub previous_version: Option<String>,
    pub deployed_at: String,
    /// The app port published on the target's loopback.
    pub published_port: Option<u16>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn context(catalog: &Catalog) -> InstanceContext<'_> {
        InstanceContext { catalog: Some(catalog), targets: Some(vec!["lyon-onprem", "cloud-fra1"]) }
    }

    fn check(json: serde_json::Value, expected_paths: &[&str]) {
        let catalog = Catalog::built_in();
        let draft: AppInstanceDraft = serde_json::from_value(json.clone()).unwrap();
        let paths: Vec<String> = draft.validate(&context(&catalog)).iter().map(|e| e.attribute.to_string()).collect();
        assert_eq!(paths, expected_paths, "{json}");
    }

    #[test]
    fn app_instance_validation_names_the_attribute() {
        check(
            serde_json::json!({"tenant_id": "acme", "name": "web", "app": "hello", "target": "lyon-onprem", "users": 5}),
            &[],
        );
        check(serde_json::json!({"tenant_id": "Acme"}), &["tenant_id"]);
        check(serde_json::json!({"name": "x"}), &["name"]);
        check(serde_json::json!({"app": "wordpress"}), &["app"]);
        check(serde_json::json!({"app": "hello", "channel": "nightly"}), &["channel"]);
        check(serde_json::json!({"app": "hello", "version": "3.0"}), &["version"]);
        check(serde_json::json!({"app": "hello", "channel": "custom", "version": "2.0"}), &["version"]);
        check(serde_json::json!({"target": "mars"}), &["target"]);
        check(serde_json::json!({"users": 0}), &["users"]);
        check(
            serde_json::json!({"resources": {"cpus": 0, "memory_mb": 8}}),
            &["resources.cpus", "resources.memory_mb"],
        );
        check(
            serde_json::json!({"customizations": {"disable_health_check": true}}),
            &["customizations.disable_health_check"],
        );
        check(
            serde_json::json!({"app": "hello", "customizations": {"volumes": {"data": "/srv"}}}),
            &["customizations.volumes[\"data\"]"],
        );
        check(
            serde_json::json!({"app": "hello", "customizations": {"volumes": {"extra": "/www/data/x"}}}),
            &["customizations.volumes[\"extra\"]"],
        );
        check(serde_json::json!({"app": "hello", "customizations": {"volumes": {"uploads": "/srv/uploads"}}}), &[]);
        check(
            serde_json::json!({"customizations": {"environment": {"1BAD": "x", "GOOD_ONE": "y"}}}),
            &["customizations.environment[\"1BAD\"]"],
        );
        check(
            serde_json::json!({"app": "hello", "customizations": {"files": {
                "etc/relative.conf": "", "/etc/../escape": "", "/etc/httpd.conf": "", "/www/data/x.conf": "",
                "/etc/extra.conf": "ok"
            }}}),
            &[
                "customizations.files[\"/etc/../escape\"]",
                "customizations.files[\"/etc/httpd.conf\"]",
                "customizations.files[\"/www/data/x.conf\"]",
                "customizations.files[\"etc/relative.conf\"]",
            ],
        );
        check(
            serde_json::json!({"customizations": {"files": {"/etc/big.conf": "x".repeat(MAX_FILE_BYTES + 1)}}}),
            &["customizations.files[\"/etc/big.conf\"]"],
        );
        // Inputs that would hang or break the container: refused at plan.
        check(
            serde_json::json!({"customizations": {"environment": {"NUL": "a\u{0}b", "BIG": "x".repeat(MAX_ENVIRONMENT_VALUE_BYTES + 1)}}}),
            &["customizations.environment[\"BIG\"]", "customizations.environment[\"NUL\"]"],
        );
        check(
            serde_json::json!({"customizations": {"volumes": {"root": "/", "dots": "/srv/../etc", "proc": "/proc/x", "dev": "/dev"}}}),
            &[
                "customizations.volumes[\"dev\"]",
                "customizations.volumes[\"dots\"]",
                "customizations.volumes[\"proc\"]",
                "customizations.volumes[\"root\"]",
            ],
        );
        check(
            serde_json::json!({"customizations": {"files": {"/proc/self/x": "", "/sys/kernel/x": "", "/dev/shm/x": ""}}}),
            &[
                "customizations.files[\"/dev/shm/x\"]",
                "customizations.files[\"/proc/self/x\"]",
                "customizations.files[\"/sys/kernel/x\"]",
            ],
        );
        // The catalog's own variables (the tenant, the manager, the user limit) cannot be overridden.
        check(
            serde_json::json!({"app": "hello", "customizations": {"environment": {
                "HELLO_MAX_USERS": "100000", "HELLO_TENANT": "other", "HELLO_MANAGER_EMAIL": "x@y.z", "GREETING": "Moin"
            }}}),
            &[
                "customizations.environment[\"HELLO_MANAGER_EMAIL\"]",
                "customizations.environment[\"HELLO_MAX_USERS\"]",
                "customizations.environment[\"HELLO_TENANT\"]",
            ],
        );
        check(serde_json::json!({"admin_password": "short"}), &["admin_password"]);
        check(serde_json::json!({"admin_password": "a long one\nwith a newline"}), &["admin_password"]);
        check(serde_json::json!({"admin_password": "a-good-long-password"}), &[]);
    }

    #[test]
    fn ids_parse_as_tenant_slash_name() {
        assert_eq!(AppInstanceId::parse("acme/erp").unwrap().to_string(), "acme/erp");
        for bad in ["acme", "acme/", "/erp", "Acme/erp", "acme/E", "acme/erp/x"] {
            assert!(AppInstanceId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_resolves_the_channel_version_from_the_catalog() {
        let catalog = Catalog::built_in();
        let document: AppInstanceDocument = serde_json::from_value(serde_json::json!({
            "tenant_id": "acme", "name": "web", "app": "hello", "target": "lyon-onprem", "users": 5
        }))
        .unwrap();
        let spec = AppInstanceSpec::from_document(&document, &context(&catalog)).unwrap();
        assert_eq!((spec.channel.as_str(), spec.version.as_str()), ("stable", "1.1"));
        assert!(!spec.delete_data_on_destroy);
    }
}
