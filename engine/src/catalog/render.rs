//! Rendering a catalog entry into the containers, volumes and network of one
//! app instance. Pure and deterministic: same input, same specs, same names.

use std::collections::BTreeMap;

use super::{BackupEntry, CatalogEntry, HealthEntry, ResourcesEntry};
pub use crate::model::container::{ContainerRole, ContainerSpec, HealthSpec, VolumeSpec, labels};
use crate::model::timeouts::parse_duration;

/// Everything that varies per app instance.
#[derive(Debug, Clone)]
pub struct RenderInput<'a> {
    pub tenant: &'a str,
    pub instance: &'a str,
    /// The front door that owns the instance (`terraform` or `cli`).
    pub owner: &'a str,
    pub channel: &'a str,
    pub version: &'a str,
    /// `basic`, `business` or `enterprise`.
    pub tier: &'a str,
    pub users: u32,
    pub manager_email: &'a str,
    pub manager_name: &'a str,
    /// The manager's password as a salted crypt hash (`$6$…`); never the clear password.
    pub manager_password_hash: &'a str,
    /// The manager's clear password, only while rendering the one-shot
    /// `manager_account.command` that sets it; `None` everywhere else.
    pub manager_password: Option<&'a str>,
    /// Increases with each upgrade, so the new app container can start beside the old.
    pub generation: u32,
    /// Overrides the tier's limits.
    pub resources: Option<ResourcesEntry>,
    /// Customizations: environment laid over the entry's.
    pub extra_environment: &'a BTreeMap<String, String>,
    /// Customizations: configuration files laid over the entry's (path → content).
    pub extra_files: &'a BTreeMap<String, String>,
    /// Generated per instance (database passwords…), never in Terraform state.
    pub secrets: &'a BTreeMap<String, String>,
}

/// The rendered app instance.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedApp {
    pub network: String,
    pub network_labels: BTreeMap<String, String>,
    pub volumes: Vec<VolumeSpec>,
    /// Sidecars first (they start first), the app container last.
    pub containers: Vec<ContainerSpec>,
    /// The app container's files that hold the manager's password hash:
    /// written at creation like every file, rewritten in the running
    /// container when the password changes, and left out of the
    /// `atrium.files` digest (a new password is not a new container).
    pub login_files: BTreeMap<String, String>,
}

/// The placeholder of the manager's password hash in catalog files.
pub const PASSWORD_HASH_PLACEHOLDER: &str = "{manager.password_hash}";

impl RenderedApp {
    pub fn app_container(&self) -> &ContainerSpec {
        self.containers.iter().find(|c| c.role == ContainerRole::App).expect("a rendered app has an app container")
    }
}

/// `atrium-<tenant>`: one network per tenant keeps tenants apart.
pub fn network_name(tenant: &str) -> String {
    format!("atrium-{tenant}")
}

/// `atrium-<tenant>-<instance>-g<generation>`.
pub fn app_container_name(tenant: &str, instance: &str, generation: u32) -> String {
    format!("atrium-{tenant}-{instance}-g{generation}")
}

fn base_labels(input: &RenderInput<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::MANAGED.to_owned(), "true".to_owned()),
        (labels::TENANT.to_owned(), input.tenant.to_owned()),
        (labels::INSTANCE.to_owned(), format!("{}/{}", input.tenant, input.instance)),
        (labels::OWNER.to_owned(), input.owner.to_owned()),
    ])
}

fn health_spec(entry: &HealthEntry) -> Result<HealthSpec, String> {
    let nanos = |text: &str| {
        parse_duration(text).map(|d| d.as_nanos() as i64).or_else(|e| if text == "0s" { Ok(0) } else { Err(e) })
    };
    let mut test = vec!["CMD".to_owned()];
    test.extend(entry.command.iter().cloned());
    Ok(HealthSpec {
        test,
        interval_nanoseconds: nanos(&entry.interval)?,
        timeout_nanoseconds: nanos(&entry.timeout)?,
        retries: i64::from(entry.retries),
        start_period_nanoseconds: nanos(&entry.start_period)?,
    })
}

/// Replaces `{tenant}`, `{instance}`, `{version}`, `{users}`, `{port}`,
/// `{manager.email}`, `{manager.name}`, `{manager.login}`, `{manager.password_hash}`,
/// `{manager.password}` (only in `manager_account.command`), `{sidecar.NAME}`
/// and `{secret.NAME}`.
pub(super) fn expand(template: &str, input: &RenderInput<'_>, entry: &CatalogEntry) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or_else(|| format!("unclosed placeholder in {template:?}"))? + start;
        let key = &rest[start + 1..end];
        let value = match key {
            "tenant" => input.tenant.to_owned(),
            "instance" => input.instance.to_owned(),
            "version" => input.version.to_owned(),
            "users" => input.users.to_string(),
            "port" => entry.port.to_string(),
            "manager.email" => input.manager_email.to_owned(),
            "manager.name" => input.manager_name.to_owned(),
            "manager.login" => entry.manager_account.login_for(input.manager_email, input.manager_name),
            "manager.password_hash" => input.manager_password_hash.to_owned(),
            "manager.password" => input.manager_password.map(str::to_owned).ok_or_else(|| {
                format!(
                    "{{manager.password}} in {template:?}: the clear password is only given to manager_account.command"
                )
            })?,
            _ => {
                if let Some(sidecar) = key.strip_prefix("sidecar.").filter(|s| entry.sidecars.contains_key(*s)) {
                    sidecar_container_name(input.tenant, input.instance, sidecar)
                } else if let Some(secret) = key.strip_prefix("secret.") {
                    input.secrets.get(secret).cloned().ok_or_else(|| format!("secret {secret:?} was not generated"))?
                } else {
                    return Err(format!("unknown placeholder {{{key}}} in {template:?}"));
                }
            }
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn sidecar_container_name(tenant: &str, instance: &str, sidecar: &str) -> String {
    format!("atrium-{tenant}-{instance}-{sidecar}")
}

pub(super) fn expand_map(
    map: &BTreeMap<String, String>,
    input: &RenderInput<'_>,
    entry: &CatalogEntry,
) -> Result<BTreeMap<String, String>, String> {
    map.iter().map(|(k, v)| Ok((k.clone(), expand(v, input, entry)?))).collect()
}

/// The secret names an entry's templates use (generated once per instance).
pub fn required_secrets(entry: &CatalogEntry) -> Vec<String> {
    let mut texts: Vec<&String> = entry
        .environment
        .values()
        .chain(entry.manager_account.environment.values())
        .chain(entry.manager_account.command.iter().flatten())
        .collect();
    if let Some(backup) = &entry.backup {
        texts.extend(backup.environment.values().chain(&backup.dump).chain(&backup.restore));
    }
    texts.extend(entry.upgrade.iter().flat_map(|upgrade| &upgrade.migrate));
    for sidecar in entry.sidecars.values() {
        texts.extend(sidecar.environment.values());
    }
    let mut names: Vec<String> = texts
        .iter()
        .flat_map(|text| text.split("{secret.").skip(1).filter_map(|rest| rest.split('}').next().map(str::to_owned)))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The one-shot command that creates (or updates) the manager's account with
/// `password`, for entries whose `manager_account.method` is `command`.
pub fn render_manager_command(
    entry: &CatalogEntry,
    input: &RenderInput<'_>,
    password: &str,
) -> Result<Option<Vec<String>>, String> {
    if entry.manager_account.method != "command" {
        return Ok(None);
    }
    let input = RenderInput { manager_password: Some(password), ..input.clone() };
    entry
        .manager_account
        .command
        .iter()
        .flatten()
        .map(|part| expand(part, &input, entry))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// The command that sets the app's own user limit to `users`, for entries
/// whose `user_limit.method` is `command`.
pub fn render_user_limit_command(entry: &CatalogEntry, input: &RenderInput<'_>) -> Result<Option<Vec<String>>, String> {
    match &entry.user_limit {
        Some(limit) if limit.method == "command" => {
            limit.command.iter().flatten().map(|part| expand(part, input, entry)).collect::<Result<_, _>>().map(Some)
        }
        _ => Ok(None),
    }
}

/// The command that prints how many users the app has (see
/// [`UserLimitEntry::users_in_use`](super::UserLimitEntry)), for entries
/// that count them.
pub fn render_users_in_use_command(
    entry: &CatalogEntry,
    input: &RenderInput<'_>,
) -> Result<Option<Vec<String>>, String> {
    let Some(command) = entry.user_limit.as_ref().and_then(|limit| limit.users_in_use.as_ref()) else {
        return Ok(None);
    };
    command.iter().map(|part| expand(part, input, entry)).collect::<Result<_, _>>().map(Some)
}

/// The command that tells the app its public address (see
/// [`PublicAddressEntry`](super::PublicAddressEntry)), for entries that have
/// one: `addresses` are the instance's live addresses with their scheme,
/// the one customers use first.
pub fn render_public_address_command(
    entry: &CatalogEntry,
    input: &RenderInput<'_>,
    addresses: &[String],
) -> Result<Option<Vec<String>>, String> {
    let (Some(public_address), Some(address)) = (&entry.public_address, addresses.first()) else {
        return Ok(None);
    };
    let hosts: Vec<&str> = addresses.iter().map(|a| a.split_once("://").map_or(a.as_str(), |(_, host)| host)).collect();
    let hosts = hosts.join(" ");
    // Host names hold no braces, so what is put in is never read as a placeholder.
    let command = public_address
        .command
        .iter()
        .map(|part| expand(&part.replace("{address}", address).replace("{hosts}", &hosts), input, entry));
    command.collect::<Result<_, _>>().map(Some)
}

/// Renders an entry for one instance.
pub fn render(entry: &CatalogEntry, input: &RenderInput<'_>) -> Result<RenderedApp, String> {
    let channel =
        entry.channel(input.channel).ok_or_else(|| format!("app {} has no {} channel", entry.name, input.channel))?;
    let image = channel.image.replace("{version}", input.version);
    let limits = match input.resources {
        Some(resources) => resources,
        None => *entry
            .resources
            .get(input.tier)
            .ok_or_else(|| format!("app {} has no resources for tier {}", entry.name, input.tier))?,
    };
    let nano_cpus = (limits.cpus * 1e9).round() as i64;
    let memory_bytes = (limits.memory_mb as i64) * 1024 * 1024;
    let network = network_name(input.tenant);
    let labels = base_labels(input);
    let volume_name = |suffix: &str| format!("atrium-{}-{}-{suffix}", input.tenant, input.instance);

    let mut volumes = Vec::new();
    let mut containers = Vec::new();
    for (sidecar_name, sidecar) in &entry.sidecars {
        let sidecar_limits = sidecar
            .resources
            .get(input.tier)
            .copied()
            .unwrap_or(ResourcesEntry { cpus: limits.cpus / 2.0, memory_mb: limits.memory_mb / 2 });
        let mut sidecar_labels = labels.clone();
        sidecar_labels.insert(labels::ROLE.to_owned(), format!("sidecar:{sidecar_name}"));
        let mounts: Vec<(String, String)> = sidecar
            .volumes
            .iter()
            .map(|(volume, path)| (volume_name(&format!("{sidecar_name}-{volume}")), path.clone()))
            .collect();
        volumes.extend(mounts.iter().map(|(name, _)| VolumeSpec { name: name.clone(), labels: labels.clone() }));
        let name = sidecar_container_name(input.tenant, input.instance, sidecar_name);
        containers.push(ContainerSpec {
            name: name.clone(),
            role: ContainerRole::Sidecar(sidecar_name.clone()),
            image: sidecar.image.replace("{version}", input.version),
            command: sidecar.command.clone(),
            environment: expand_map(&sidecar.environment, input, entry)?,
            labels: sidecar_labels,
            mounts,
            port: None,
            health: sidecar.health.as_ref().map(health_spec).transpose()?,
            nano_cpus: (sidecar_limits.cpus * 1e9).round() as i64,
            memory_bytes: (sidecar_limits.memory_mb as i64) * 1024 * 1024,
            network: network.clone(),
            network_alias: name,
            files: BTreeMap::new(),
            capabilities: sidecar.capabilities.clone(),
            user: sidecar.user.clone(),
            read_only: sidecar.read_only,
            host_port: None,
            replicas: 1,
        });
    }

    let mut environment = expand_map(&entry.environment, input, entry)?;
    if entry.manager_account.method == "environment" {
        environment.extend(expand_map(&entry.manager_account.environment, input, entry)?);
    }
    if let Some(limit) = &entry.user_limit
        && limit.method == "environment"
        && let Some(variable) = &limit.variable
    {
        environment.insert(variable.clone(), input.users.to_string());
    }
    for (key, value) in input.extra_environment {
        environment.insert(key.clone(), value.clone());
    }
    let mut files = expand_map(&entry.files, input, entry)?;
    for (path, content) in input.extra_files {
        files.insert(path.clone(), content.clone());
    }
    let mounts: Vec<(String, String)> =
        entry.volumes.iter().map(|(volume, path)| (volume_name(volume), path.clone())).collect();
    volumes.extend(mounts.iter().map(|(name, _)| VolumeSpec { name: name.clone(), labels: labels.clone() }));
    let mut app_labels = labels.clone();
    app_labels.insert(labels::ROLE.to_owned(), "app".to_owned());
    app_labels.insert(labels::VERSION.to_owned(), input.version.to_owned());
    app_labels.insert(labels::GENERATION.to_owned(), input.generation.to_string());
    let login_files: BTreeMap<String, String> = entry
        .files
        .iter()
        .filter(|(_, template)| template.contains(PASSWORD_HASH_PLACEHOLDER))
        .filter_map(|(path, _)| files.get(path).map(|content| (path.clone(), content.clone())))
        .collect();
    let digested: BTreeMap<String, String> = files
        .iter()
        .filter(|(path, _)| !login_files.contains_key(*path))
        .map(|(p, c)| (p.clone(), c.clone()))
        .collect();
    if !digested.is_empty() {
        app_labels.insert(labels::FILES.to_owned(), files_digest(&digested));
    }
    containers.push(ContainerSpec {
        name: app_container_name(input.tenant, input.instance, input.generation),
        role: ContainerRole::App,
        image,
        command: entry.command.clone(),
        environment,
        labels: app_labels,
        mounts,
        port: Some(entry.port),
        health: Some(health_spec(&entry.health)?),
        nano_cpus,
        memory_bytes,
        network: network.clone(),
        network_alias: format!("atrium-{}-{}", input.tenant, input.instance),
        files,
        capabilities: entry.capabilities.clone(),
        user: entry.user.clone(),
        read_only: entry.read_only,
        host_port: None,
        replicas: 1,
    });
    if entry.backup.is_some() {
        volumes.push(VolumeSpec { name: backup_volume_name(input.tenant, input.instance), labels: labels.clone() });
    }
    let mut network_labels = BTreeMap::from([(labels::MANAGED.to_owned(), "true".to_owned())]);
    network_labels.insert(labels::TENANT.to_owned(), input.tenant.to_owned());
    Ok(RenderedApp { network, network_labels, volumes, containers, login_files })
}

/// `atrium-<tenant>-<instance>-backups`: the instance's backups, on its target.
pub fn backup_volume_name(tenant: &str, instance: &str) -> String {
    format!("atrium-{tenant}-{instance}-backups")
}

/// Where the backup taken before an upgrade lives, in the backup volume
/// (mounted at `/backup` in the backup jobs).
const PRE_UPGRADE: &str = "/backup/pre-upgrade";

/// The one-shot jobs of an upgrade from `from_generation` to the generation
/// `rendered` holds, for entries that migrate data or back it up.
#[derive(Debug, Clone, PartialEq)]
pub struct UpgradeJobs {
    /// Migrates the data: a container of the new version running `upgrade.migrate`.
    pub migrate: Option<ContainerSpec>,
    /// Takes the backup before the migration: the database's dump and an
    /// archive of every data volume of the app, into the backup volume's
    /// `pre-upgrade` directory, made complete last. A complete backup taken
    /// before an upgrade from the same generation is kept (the upgrade is
    /// being run again after an interruption, with the old version stopped).
    pub backup: Option<ContainerSpec>,
    /// Puts that backup back: volumes emptied and extracted, the database
    /// restored; then the backup is marked used, so the old version's new
    /// writes are backed up again before the next attempt.
    pub restore: Option<ContainerSpec>,
}

/// Renders the jobs of an upgrade to the instance `rendered` (its new
/// generation, with every volume its app container mounts).
pub fn render_upgrade_jobs(
    entry: &CatalogEntry,
    input: &RenderInput<'_>,
    rendered: &RenderedApp,
    from_generation: u32,
) -> Result<UpgradeJobs, String> {
    let app = rendered.app_container();
    let migrate = match &entry.upgrade {
        Some(upgrade) => {
            let command = upgrade.migrate.iter().map(|part| expand(part, input, entry)).collect::<Result<_, _>>()?;
            Some(job_container(app, format!("{}-migrate", app.name), "migrate", command))
        }
        None => None,
    };
    let Some(backup) = &entry.backup else {
        return Ok(UpgradeJobs { migrate, backup: None, restore: None });
    };
    let sidecar = backup_sidecar(backup, rendered)?;
    let words = |command: &[String]| shell_command(command, input, entry);
    // Volume names are [a-z0-9-] (tenant and instance names), safe in a
    // script. Each is mounted under its catalog name, as in the backup
    // container, so that the entry's dump and restore commands can read the
    // app's files by the same paths; its archive keeps the volume's name.
    let prefix = format!("atrium-{}-{}-", input.tenant, input.instance);
    let volumes: Vec<(&str, &str)> = app
        .mounts
        .iter()
        .map(|(volume, _)| (volume.as_str(), volume.strip_prefix(&prefix).unwrap_or(volume)))
        .collect();
    // Under the lock of the instance's backups (see `render_backups`).
    let lock = ["exec 9>/backup/.lock".to_owned(), "flock 9".to_owned()];
    let mut take = vec![
        "set -eu".to_owned(),
        lock[0].clone(),
        lock[1].clone(),
        format!(
            "if [ \"$(cat {PRE_UPGRADE}/from-generation 2>/dev/null || true)\" = {from_generation} ]; then echo 'atrium: the backup taken before this upgrade is complete and kept'; exit 0; fi"
        ),
        "rm -rf /backup/next".to_owned(),
        "mkdir -p /backup/next".to_owned(),
        format!("{} > /backup/next/database.dump", words(&backup.dump)?),
    ];
    take.extend(
        volumes.iter().map(|(v, key)| format!("tar --numeric-owner -C /volumes/{key} -cpf /backup/next/{v}.tar .")),
    );
    take.extend([
        format!("echo {from_generation} > /backup/next/from-generation"),
        "sync".to_owned(),
        format!("rm -rf {PRE_UPGRADE}"),
        format!("mv /backup/next {PRE_UPGRADE}"),
    ]);
    let mut put_back = vec![
        "set -eu".to_owned(),
        lock[0].clone(),
        lock[1].clone(),
        format!(
            "[ \"$(cat {PRE_UPGRADE}/from-generation 2>/dev/null || true)\" = {from_generation} ] || {{ echo 'atrium: {PRE_UPGRADE} holds no complete backup taken before this upgrade' >&2; exit 1; }}"
        ),
    ];
    for (volume, key) in &volumes {
        put_back.push(format!("find /volumes/{key} -mindepth 1 -delete"));
        put_back.push(format!("tar --numeric-owner -C /volumes/{key} -xpf {PRE_UPGRADE}/{volume}.tar"));
    }
    put_back.push(format!("{} < {PRE_UPGRADE}/database.dump", words(&backup.restore)?));
    put_back.push(format!("rm {PRE_UPGRADE}/from-generation"));

    let mut base = sidecar;
    base.environment.extend(expand_map(&backup.environment, input, entry)?);
    base.mounts = std::iter::once((backup_volume_name(input.tenant, input.instance), "/backup".to_owned()))
        .chain(volumes.iter().map(|(v, key)| (v.to_string(), format!("/volumes/{key}"))))
        .collect();
    // Root with the capabilities an archive of other users' files needs (the
    // app's files keep their owners), nothing more.
    base.user = Some("0".to_owned());
    base.capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER"].map(str::to_owned).to_vec();
    base.read_only = false;
    let name = |job: &str| format!("atrium-{}-{}-{job}", input.tenant, input.instance);
    let script = |lines: Vec<String>| vec!["sh".to_owned(), "-c".to_owned(), lines.join("\n")];
    Ok(UpgradeJobs {
        migrate,
        // Not `atrium-T-I-backup`: that is the instance's backup container.
        backup: Some(job_container(&base, name("upgrade-backup"), "backup", script(take))),
        restore: Some(job_container(&base, name("upgrade-restore"), "restore", script(put_back))),
    })
}

/// The rendered sidecar the entry's backup runs from, with the backup's own
/// image when the entry names one (the image has the database's tools and
/// restic).
pub(super) fn backup_sidecar(backup: &BackupEntry, rendered: &RenderedApp) -> Result<ContainerSpec, String> {
    let mut sidecar = rendered
        .containers
        .iter()
        .find(|c| c.role == ContainerRole::Sidecar(backup.sidecar.clone()))
        .ok_or_else(|| format!("backup.sidecar {:?} is not rendered", backup.sidecar))?
        .clone();
    if let Some(image) = &backup.image {
        sidecar.image = image.clone();
    }
    Ok(sidecar)
}

/// A command of the entry expanded into one line for `sh`, every word quoted.
pub(super) fn shell_command(
    command: &[String],
    input: &RenderInput<'_>,
    entry: &CatalogEntry,
) -> Result<String, String> {
    let words: Vec<String> =
        command.iter().map(|part| expand(part, input, entry).map(|w| shell_word(&w))).collect::<Result<_, _>>()?;
    Ok(words.join(" "))
}

/// A one-shot job made from `base` (its image, environment, mounts, network
/// and limits): `command` runs once, never restarted, with no port and no
/// health check; labelled `job:<job>` for the instance.
pub(super) fn job_container(base: &ContainerSpec, name: String, job: &str, command: Vec<String>) -> ContainerSpec {
    let mut labels = base.labels.clone();
    labels.insert(labels::ROLE.to_owned(), format!("job:{job}"));
    ContainerSpec {
        role: ContainerRole::Job(job.to_owned()),
        command: Some(command),
        labels,
        port: None,
        health: None,
        network_alias: name.clone(),
        name,
        ..base.clone()
    }
}

/// One word for `sh`, quoted so that nothing in it is read by the shell.
pub(super) fn shell_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// A short SHA-256 digest of files (paths and contents), for the `atrium.files` label.
pub fn files_digest(files: &BTreeMap<String, String>) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for (path, content) in files {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(content.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Renders with sample values to prove every placeholder of an entry resolves.
pub(super) fn check_placeholders(entry: &CatalogEntry) -> Result<(), String> {
    let secrets: BTreeMap<String, String> =
        required_secrets(entry).into_iter().map(|name| (name, "sample".to_owned())).collect();
    let no_environment = BTreeMap::new();
    let sample = |channel: &'static str, version: &'static str| RenderInput {
        tenant: "sample",
        instance: "app",
        owner: "terraform",
        channel,
        version,
        tier: "basic",
        users: 1,
        manager_email: "manager@example.com",
        manager_name: "Manager",
        manager_password_hash: "$6$sample$hash",
        manager_password: None,
        generation: 1,
        resources: None,
        extra_environment: &no_environment,
        extra_files: &no_environment,
        secrets: &secrets,
    };
    for (channel_name, channel) in &entry.channels {
        let input = RenderInput { channel: channel_name, version: &channel.default, ..sample("stable", "1") };
        let rendered = render(entry, &input)?;
        render_upgrade_jobs(entry, &input, &rendered, 1)?;
    }
    render_manager_command(entry, &sample("stable", "1"), "sample")?;
    render_user_limit_command(entry, &sample("stable", "1"))?;
    render_users_in_use_command(entry, &sample("stable", "1"))?;
    Ok(())
}

/// A stable text form of a rendered app, for snapshot tests and plan output.
pub fn describe(app: &RenderedApp) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(text, "network {} {:?}", app.network, app.network_labels);
    for volume in &app.volumes {
        let _ = writeln!(text, "volume {}", volume.name);
    }
    for container in &app.containers {
        describe_container(&mut text, container);
    }
    text
}

/// The upgrade's jobs, for snapshot tests: each container with its command
/// (a backup or restore script one line per step).
#[cfg(test)]
pub(super) fn describe_jobs(jobs: &UpgradeJobs) -> String {
    describe_job_containers([&jobs.backup, &jobs.migrate, &jobs.restore].into_iter().flatten())
}

/// One-shot (or scheduled) job containers, for snapshot tests: each with its
/// `sh -c` script one line per step, then its other arguments.
#[cfg(test)]
pub(super) fn describe_job_containers<'a>(jobs: impl IntoIterator<Item = &'a ContainerSpec>) -> String {
    let mut text = String::new();
    for job in jobs {
        let mut job = job.clone();
        if let Some(["sh", "-c", script, arguments @ ..]) =
            job.command.as_deref().map(|c| c.iter().map(String::as_str).collect::<Vec<_>>()).as_deref()
        {
            text.push_str(&format!("script of {}:\n", job.name));
            for line in script.lines() {
                text.push_str(&format!("  | {line}\n"));
            }
            let mut command: Vec<String> = ["sh", "-c", "(the script above)"].map(str::to_owned).to_vec();
            command.extend(arguments.iter().map(|argument| argument.to_string()));
            job.command = Some(command);
        }
        describe_container(&mut text, &job);
    }
    text
}

fn describe_container(text: &mut String, container: &ContainerSpec) {
    use std::fmt::Write as _;
    {
        let _ = writeln!(text, "container {} ({:?})", container.name, container.role);
        let _ = writeln!(text, "  image: {}", container.image);
        if let Some(command) = &container.command {
            let _ = writeln!(text, "  command: {command:?}");
        }
        for (key, value) in &container.environment {
            let _ = writeln!(text, "  env {key}={value}");
        }
        for (volume, path) in &container.mounts {
            let _ = writeln!(text, "  mount {volume} -> {path}");
        }
        if let Some(port) = container.port {
            let _ = writeln!(text, "  port: {port}");
        }
        if let Some(health) = &container.health {
            let _ = writeln!(
                text,
                "  health: {:?} every {}ms, timeout {}ms, {} retries",
                health.test,
                health.interval_nanoseconds / 1_000_000,
                health.timeout_nanoseconds / 1_000_000,
                health.retries
            );
        }
        let _ = writeln!(text, "  limits: {} nano-cpus, {} bytes", container.nano_cpus, container.memory_bytes);
        let _ = writeln!(
            text,
            "  security: no-new-privileges, capabilities {:?}, user {}, root filesystem {}",
            container.capabilities,
            container.user.as_deref().unwrap_or("of the image"),
            if container.read_only { "read-only" } else { "writable" }
        );
        let _ = writeln!(text, "  alias: {}", container.network_alias);
        for (path, content) in &container.files {
            let _ = writeln!(text, "  file {path}:");
            for line in content.lines() {
                let _ = writeln!(text, "    | {line}");
            }
        }
        let _ = writeln!(text, "  labels: {:?}", container.labels);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Catalog;
    use super::*;

    static NO_FILES: BTreeMap<String, String> = BTreeMap::new();

    pub(crate) fn sample_input<'a>(
        channel: &'a str,
        version: &'a str,
        environment: &'a BTreeMap<String, String>,
        secrets: &'a BTreeMap<String, String>,
    ) -> RenderInput<'a> {
        RenderInput {
            tenant: "acme",
            instance: "erp",
            owner: "terraform",
            channel,
            version,
            tier: "business",
            users: 25,
            manager_email: "it-lead@acme.example",
            manager_name: "Dana Fischer",
            manager_password_hash: "$6$rounds=5000$c2FsdA$sample",
            manager_password: None,
            generation: 3,
            resources: None,
            extra_environment: environment,
            extra_files: &NO_FILES,
            secrets,
        }
    }

    #[test]
    fn hello_renders_deterministic_names_labels_and_limits() {
        let catalog = Catalog::built_in();
        let entry = catalog.get("hello").unwrap();
        let extra = BTreeMap::from([("GREETING".to_owned(), "Moin".to_owned())]);
        let secrets = BTreeMap::new();
        let app = render(entry, &sample_input("stable", "1.1", &extra, &secrets)).unwrap();
        assert_eq!(app, render(entry, &sample_input("stable", "1.1", &extra, &secrets)).unwrap());
        insta::assert_snapshot!(describe(&app));
    }

    #[test]
    fn unknown_placeholders_and_missing_secrets_are_errors() {
        let catalog = Catalog::built_in();
        let entry = catalog.get("hello").unwrap();
        let (environment, secrets) = (BTreeMap::new(), BTreeMap::new());
        let input = sample_input("stable", "1.1", &environment, &secrets);
        assert!(expand("{nope}", &input, entry).unwrap_err().contains("{nope}"));
        assert!(expand("{secret.db}", &input, entry).unwrap_err().contains("\"db\""));
        assert_eq!(expand("x-{tenant}-{users}", &input, entry).unwrap(), "x-acme-25");
    }
}
