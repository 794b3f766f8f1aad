//! Deploying and destroying app instances, as steps of the one runner.
//!
//! A deployment renders the catalog entry, then: network → volumes →
//! sidecars (healthy) → the app container of a *new generation* beside the
//! old one (healthy) → the registry records the new generation → routes
//! switch to it → the old container goes. If the new container never turns
//! healthy, the runner undoes the run and the old one keeps serving (for a
//! first deployment, everything this run made is removed, data volumes that
//! existed before excepted). Removing the old container is the point of no
//! return: a failure there is finished by the next apply, never undone.
//!
//! Containers of a generation the registry does not record (a run cut off
//! before it recorded its generation) are removed first by the next run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::apply::claims::change_operation;
use crate::apply::runner::{Part, RegistryJournal, RunError, Step, StepError, Transition, registry_step_error, run};
use crate::apply::welcome::{Occasion, manager_email};
use crate::backends::mailer::Mailer;
use crate::backends::retry::within;
use crate::backends::targets::{TargetError, Targets};
use crate::backends::{ObservedContainer, Runtime, RuntimeError, error_chain, with_retries};
use crate::catalog::{
    BackupJobs, Catalog, CatalogEntry, ContainerRole, ContainerSpec, OffsiteStore, RenderInput, RenderedApp,
    VolumeSpec, labels, render, render_backups, render_manager_command, render_public_address_command,
    render_upgrade_jobs, render_user_limit_command, render_users_in_use_command, required_secrets,
};
use crate::model::app_instance::{
    AppInstanceId, AppInstanceRecord, AppInstanceSpec, AppRead, AppReadWanted, BackupStatus, InstanceHealth,
    LatestBackupRead, UsersInUseRead, WelcomeState,
};
use crate::model::backup::BackupPolicy;
use crate::model::password::Password;
use crate::model::tenant::{TenantRecord, TenantStatus};
use crate::observe::AppObservations;
use crate::plan::app_instance::AppDecision;
use crate::registry::{Registry, RegistryError, now_rfc3339};

/// How long a welcome email is retried before the apply goes on with a warning.
const WELCOME_SEND_BUDGET: Duration = Duration::from_secs(10);

/// Why an app instance change did not complete.
#[derive(Debug, thiserror::Error)]
pub enum AppApplyError {
    #[error("the registry failed while applying app instance {id}")]
    Registry {
        id: AppInstanceId,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("target {target} failed while applying app instance {id}")]
    Target {
        id: AppInstanceId,
        target: String,
        #[source]
        source: Box<TargetError>,
    },
    #[error("tenant {tenant} of app instance {id} does not exist")]
    TenantMissing { id: AppInstanceId, tenant: String },
    #[error("app instance {id} asks for {users} users, but tenant {tenant} has a user quota of {quota}")]
    OverQuota { id: AppInstanceId, tenant: String, users: u32, quota: u32 },
    /// `release` is the app and version, e.g. `hello 2.0`.
    #[error("{release} of app instance {id} did not become healthy; {kept}. Health check output: {output}")]
    Unhealthy { id: AppInstanceId, release: String, kept: String, output: String },
    #[error("the catalog cannot render app instance {id}: {reason}")]
    Catalog { id: AppInstanceId, reason: String },
    #[error("applying app instance {id} was cancelled before it started; nothing was changed")]
    Cancelled { id: AppInstanceId },
    #[error(
        "the command that makes the manager's account in app instance {id} failed (exit code {exit_code:?}): {output}"
    )]
    ManagerAccount { id: AppInstanceId, exit_code: Option<i64>, output: String },
    #[error("the command that sets the user limit of app instance {id} failed (exit code {exit_code:?}): {output}")]
    UserLimit { id: AppInstanceId, exit_code: Option<i64>, output: String },
    #[error("the command that tells app instance {id} its public address failed (exit code {exit_code:?}): {output}")]
    PublicAddress { id: AppInstanceId, exit_code: Option<i64>, output: String },
    #[error("app instance {id} is deployed, but stopping it for its suspended tenant failed")]
    Suspend {
        id: AppInstanceId,
        #[source]
        source: Box<crate::apply::suspension::SuspensionError>,
    },
    #[error(
        "the backup taken before upgrading app instance {id} to {} failed (exit code {:?}); the upgrade did not start and {}. Its output: {}",
        failure.release, failure.exit_code, failure.kept, failure.output
    )]
    Backup { id: AppInstanceId, failure: Box<JobFailure> },
    #[error(
        "the migration of app instance {id} to {} failed (exit code {:?}); {}. Its output: {}",
        failure.release, failure.exit_code, failure.kept, failure.output
    )]
    Migration { id: AppInstanceId, failure: Box<JobFailure> },
    #[error("{operation} of app instance {id} ran out of time: {detail}")]
    DeadlineExceeded { id: AppInstanceId, operation: &'static str, detail: String },
    #[error(transparent)]
    Claim(#[from] crate::apply::claims::ClaimError),
    #[error(
        "app instance {id} still serves domains that another configuration manages, or whose create was interrupted: {}. Destroy or move them where they are managed first (or finish an interrupted create with terraform apply there); nothing was deleted",
        crate::model::ownership::list_dependents(dependents)
    )]
    HasDependents { id: AppInstanceId, dependents: Vec<crate::model::ownership::Dependent> },
    #[error(
        "app instance {id} changed since the plan: {what}. Run terraform plan again (or apply without a saved plan)"
    )]
    MovedSincePlan { id: AppInstanceId, what: String },
    #[error("applying app instance {id}: {source}")]
    Run { id: AppInstanceId, source: Box<RunError> },
    /// `reason` is the restore's error as one line (that error's module uses this one).
    #[error("app instance {id} is deployed, but restoring snapshot {snapshot} into it failed: {reason}")]
    Restore { id: AppInstanceId, snapshot: String, reason: String },
    #[error("app instance {id}: the restore it asks for cannot be carried out, and nothing was changed: {reason}")]
    RestoreRefused { id: AppInstanceId, reason: String },
    #[error("app instance {id} runs, but its domains' routes could not be pointed at it")]
    Routes {
        id: AppInstanceId,
        #[source]
        source: Box<crate::apply::domain::DomainApplyError>,
    },
}

/// A one-shot job of an upgrade that failed: the release it was for, how it
/// ended, what serves now, and the end of its output.
#[derive(Debug)]
pub struct JobFailure {
    pub release: String,
    pub exit_code: Option<i64>,
    pub kept: String,
    pub output: String,
}

impl AppApplyError {
    pub fn is_retryable(&self) -> bool {
        match self {
            AppApplyError::Registry { source, .. } => source.is_retryable(),
            AppApplyError::Target { source, .. } => {
                matches!(source.as_ref(), TargetError::Runtime(runtime) if runtime.is_retryable())
            }
            AppApplyError::Cancelled { .. } | AppApplyError::DeadlineExceeded { .. } => true,
            AppApplyError::Routes { source, .. } => source.is_retryable(),
            AppApplyError::Suspend { source, .. } => source.is_retryable(),
            AppApplyError::Claim(error) => error.is_retryable(),
            AppApplyError::Run { source, .. } => source.source.retryable,
            _ => false,
        }
    }
}

impl crate::backends::retry::Retryable for AppApplyError {
    fn is_retryable(&self) -> bool {
        AppApplyError::is_retryable(self)
    }
}

/// A finished deployment: what the registry now records, and the manager's
/// new password in clear when this deployment set one (for the welcome email;
/// it is never recorded).
#[derive(Debug)]
pub struct Deployment {
    pub record: AppInstanceRecord,
    pub new_manager_password: Option<Password>,
    /// Why the welcome email did not go out, when it should have: the
    /// deployment itself succeeded, so this is a warning (retried next apply).
    pub welcome_warning: Option<String>,
    /// How the instance is after the change: running after a deployment; a
    /// change that only records leaves the containers as they were meant to be.
    pub health: InstanceHealth,
}

/// What every app instance operation needs.
pub struct AppContext<'a> {
    pub registry: &'a Registry,
    /// Snapshots shared by the reads of one process (batched observation).
    pub observations: &'a AppObservations,
    pub catalog: &'a Catalog,
    pub targets: &'a Targets,
    /// Sends welcome emails; `None` when no SMTP relay is configured.
    pub mailer: Option<&'a dyn Mailer>,
    /// The platform zone's DNS, whose subdomain records follow an instance
    /// that moves to a target with another public address; `None` without
    /// a `dns` block.
    pub platform_dns: Option<crate::apply::domain::PlatformDns<'a>>,
    pub owner: &'a crate::model::ownership::Owner,
    pub deadline: Duration,
    pub cancelled: tokio::sync::watch::Receiver<bool>,
}

/// Renders a recorded (or planned) instance at `generation`, its backups
/// copied to `offsite` (its target's off-site store) when there is one.
#[allow(clippy::too_many_arguments)]
pub fn render_instance(
    entry: &CatalogEntry,
    spec: &AppInstanceSpec,
    tenant: &TenantRecord,
    owner: &str,
    generation: u32,
    secrets: &BTreeMap<String, String>,
    manager_password_hash: &str,
    offsite: Option<&OffsiteStore>,
) -> Result<RenderedApp, String> {
    let input = render_input(spec, tenant, owner, generation, secrets, manager_password_hash);
    let (mut app, backups) = render_with_backups(entry, &input, spec, tenant, offsite)?;
    // The backup container starts after the other sidecars, before the app.
    if let Some(backups) = backups {
        let app_index =
            app.containers.iter().position(|c| c.role == ContainerRole::App).unwrap_or(app.containers.len());
        app.containers.insert(app_index, backups.container);
    }
    Ok(app)
}

/// The app rendered from `input`, with its extra volumes, and its backup
/// container and jobs (under the tier's policy with the instance's settings
/// over it) when its entry takes backups.
fn render_with_backups(
    entry: &CatalogEntry,
    input: &RenderInput<'_>,
    spec: &AppInstanceSpec,
    tenant: &TenantRecord,
    offsite: Option<&OffsiteStore>,
) -> Result<(RenderedApp, Option<BackupJobs>), String> {
    let mut app = render(entry, input)?;
    add_extra_volumes(&mut app, spec);
    if let Some(container) = app.containers.iter_mut().find(|c| c.role == ContainerRole::App) {
        container.replicas = spec.replicas;
    }
    let policy = BackupPolicy::for_tier(tenant.spec.tier)
        .with(spec.backup.as_ref())
        .map_err(|(attribute, reason)| format!("backup.{attribute}: {reason}"))?;
    let backups = render_backups(entry, input, &app, &policy, offsite)?;
    Ok((app, backups))
}

/// The backup container and jobs of a recorded instance as it is deployed
/// (with `offsite`, its target's off-site store), or `None` when its
/// catalog entry takes no backups.
pub fn backup_jobs(
    entry: &CatalogEntry,
    record: &AppInstanceRecord,
    tenant: &TenantRecord,
    offsite: Option<&OffsiteStore>,
) -> Result<Option<BackupJobs>, String> {
    let input = recorded_input(record, tenant);
    let (app, jobs) = render_with_backups(entry, &input, &record.spec, tenant, offsite)?;
    let Some(mut jobs) = jobs else {
        return Ok(None);
    };
    jobs.migrate = render_upgrade_jobs(entry, &input, &app, record.generation)?.migrate;
    Ok(Some(jobs))
}

/// The one-shot command that creates the manager's account with `password`
/// (entries whose manager account is made by a command).
pub fn manager_command(
    entry: &CatalogEntry,
    record: &AppInstanceRecord,
    tenant: &TenantRecord,
    password: &Password,
) -> Result<Option<Vec<String>>, String> {
    render_manager_command(entry, &recorded_input(record, tenant), password.expose())
}

/// The render input of a recorded instance as it was deployed: its generation, secrets and password hash.
pub(super) fn recorded_input<'a>(record: &'a AppInstanceRecord, tenant: &'a TenantRecord) -> RenderInput<'a> {
    render_input(&record.spec, tenant, &record.owner, record.generation, &record.secrets, &record.manager_password_hash)
}

fn render_input<'a>(
    spec: &'a AppInstanceSpec,
    tenant: &'a TenantRecord,
    owner: &'a str,
    generation: u32,
    secrets: &'a BTreeMap<String, String>,
    manager_password_hash: &'a str,
) -> RenderInput<'a> {
    let resources =
        spec.resources.as_ref().map(|r| crate::catalog::ResourcesEntry { cpus: r.cpus, memory_mb: r.memory_mb });
    RenderInput {
        tenant: spec.id.tenant_id.as_str(),
        instance: &spec.id.name,
        owner,
        channel: &spec.channel,
        version: &spec.version,
        tier: tenant.spec.tier.as_str(),
        users: spec.users,
        manager_email: &tenant.spec.manager.email,
        manager_name: &tenant.spec.manager.name,
        manager_password_hash,
        manager_password: None,
        generation,
        resources,
        extra_environment: &spec.environment,
        extra_files: &spec.files,
        secrets,
    }
}

/// Extra volumes from customizations: added beside the catalog's, never replacing them.
fn add_extra_volumes(app: &mut RenderedApp, spec: &AppInstanceSpec) {
    let extra: Vec<(String, String)> = spec
        .extra_volumes
        .iter()
        .map(|(name, path)| (format!("atrium-{}-{}-x-{name}", spec.id.tenant_id, spec.id.name), path.clone()))
        .collect();
    let volume_labels =
        app.volumes.first().map(|v| v.labels.clone()).unwrap_or_else(|| app.app_container().labels.clone());
    for (name, _) in &extra {
        app.volumes.push(VolumeSpec { name: name.clone(), labels: volume_labels.clone() });
    }
    if let Some(container) = app.containers.iter_mut().find(|c| c.role == ContainerRole::App) {
        container.mounts.extend(extra);
    }
}

/// Compares the observed app container with the rendered one.
pub fn compare(observed: Option<&ObservedContainer>, rendered: &RenderedApp) -> InstanceHealth {
    let Some(observed) = observed else { return InstanceHealth::Missing };
    let planned = rendered.app_container();
    let environment_matches = planned.environment.iter().all(|(k, v)| observed.environment.get(k) == Some(v));
    if observed.image != planned.image
        || !observed.networks.contains(&planned.network)
        || observed.labels.get(labels::FILES) != planned.labels.get(labels::FILES)
        || !environment_matches
        || observed.nano_cpus != planned.nano_cpus
        || observed.memory_bytes != planned.memory_bytes
    {
        return InstanceHealth::Drifted;
    }
    if !observed.running && observed.health == crate::backends::STRANDED {
        return InstanceHealth::Stranded;
    }
    if !observed.running || observed.health == "unhealthy" {
        return InstanceHealth::Stopped;
    }
    InstanceHealth::Running
}

/// Whether the app runs another number of copies than `planned` says
/// (none: stopped, not this).
fn rescaled(observed: &ObservedContainer, planned: &ContainerSpec) -> bool {
    observed.replicas != 0 && observed.replicas != planned.replicas
}

/// A database password or an app's own secret: 28 letters and digits (about
/// 160 bits), safe inside a URL and accepted by every app's password rules.
fn generate_secret() -> String {
    crate::model::password::random_text::<28>()
}

impl AppContext<'_> {
    pub(super) fn registry_error(&self, id: &AppInstanceId) -> impl FnOnce(RegistryError) -> AppApplyError {
        let id = id.clone();
        move |source| AppApplyError::Registry { id, source: Box::new(source) }
    }

    pub(super) fn runtime_error(&self, id: &AppInstanceId, target: &str) -> impl FnOnce(RuntimeError) -> AppApplyError {
        let (id, target) = (id.clone(), target.to_owned());
        move |source| AppApplyError::Target { id, target, source: Box::new(TargetError::Runtime(source)) }
    }

    pub(super) async fn runtime(&self, id: &AppInstanceId, target: &str) -> Result<Arc<dyn Runtime>, AppApplyError> {
        self.targets.runtime(target).await.map_err(|source| AppApplyError::Target {
            id: id.clone(),
            target: target.to_owned(),
            source: Box::new(source),
        })
    }

    pub(super) fn entry(&self, spec: &AppInstanceSpec) -> Result<&CatalogEntry, AppApplyError> {
        self.catalog.get(&spec.app).ok_or_else(|| AppApplyError::Catalog {
            id: spec.id.clone(),
            reason: format!("no app {:?} in the catalog", spec.app),
        })
    }

    pub(super) async fn tenant(&self, spec: &AppInstanceSpec) -> Result<TenantRecord, AppApplyError> {
        self.registry
            .get_tenant(&spec.id.tenant_id)
            .await
            .map_err(self.registry_error(&spec.id))?
            .ok_or_else(|| AppApplyError::TenantMissing { id: spec.id.clone(), tenant: spec.id.tenant_id.to_string() })
    }

    /// The off-site store `target`'s backups are copied to, and the target
    /// it runs on, when its configuration names one.
    pub(crate) fn offsite_store(&self, target: &str) -> Option<(String, OffsiteStore)> {
        let offsite = self.targets.document(target).ok()?.offsite_backups.as_ref()?;
        Some((offsite.target.clone(), OffsiteStore::new(&offsite.address, offsite.password.as_deref()?)))
    }

    pub(super) async fn repoint_routes(&self, record: &AppInstanceRecord) -> Result<(), AppApplyError> {
        crate::apply::domain::repoint_routes(self.registry, self.targets, self.platform_dns, record, self.deadline)
            .await
            .map(drop)
            .map_err(|source| AppApplyError::Routes { id: record.spec.id.clone(), source: Box::new(source) })
    }

    /// Renders a recorded instance as it was deployed: its generation, secrets and password hash.
    fn render_record(&self, record: &AppInstanceRecord, tenant: &TenantRecord) -> Result<RenderedApp, AppApplyError> {
        let entry = self.entry(&record.spec)?;
        let (secrets, hash) = (&record.secrets, &record.manager_password_hash);
        let offsite = self.offsite_store(&record.spec.target).map(|(_, store)| store);
        render_instance(entry, &record.spec, tenant, &record.owner, record.generation, secrets, hash, offsite.as_ref())
            .map_err(|reason| AppApplyError::Catalog { id: record.spec.id.clone(), reason })
    }

    /// Observes the recorded instance: its record and how its container compares.
    pub async fn observe(
        &self,
        id: &AppInstanceId,
    ) -> Result<Option<(AppInstanceRecord, InstanceHealth)>, AppApplyError> {
        let Some(record) = self.observations.instance(self.registry, id).await.map_err(self.registry_error(id))? else {
            return Ok(None);
        };
        let Some(tenant) =
            self.observations.tenant(self.registry, &id.tenant_id).await.map_err(self.registry_error(id))?
        else {
            return Ok(Some((record, InstanceHealth::Missing)));
        };
        let rendered = self.render_record(&record, &tenant)?;
        let runtime = self.runtime(id, &record.spec.target).await?;
        let name = &rendered.app_container().name;
        let runtime_error = || self.runtime_error(id, &record.spec.target);
        // One list call per target per window says which containers exist;
        // only those are inspected, for their environment and limits.
        let listed = self
            .observations
            .listed_container(&record.spec.target, runtime.as_ref(), name)
            .await
            .map_err(runtime_error())?;
        let observed = match listed {
            Some(_) => runtime.inspect(name).await.map_err(runtime_error())?,
            None => None,
        };
        let mut health = match compare(observed.as_ref(), &rendered) {
            // A suspended tenant's containers are meant to be stopped.
            InstanceHealth::Stopped if tenant.status != TenantStatus::Active => InstanceHealth::Suspended,
            InstanceHealth::Running if tenant.status != TenantStatus::Active => InstanceHealth::Drifted,
            health => health,
        };
        // A sidecar (a database, the backup container) removed or stopped
        // out of band is drift too; the same list call says so.
        if health == InstanceHealth::Running {
            for sidecar in rendered.containers.iter().filter(|c| c.role != ContainerRole::App) {
                let listed = self
                    .observations
                    .listed_container(&record.spec.target, runtime.as_ref(), &sidecar.name)
                    .await
                    .map_err(runtime_error())?;
                if !listed.is_some_and(|c| c.is_up()) {
                    health = InstanceHealth::Drifted;
                }
            }
        }
        // Scaled out of band to another count of copies (to none, it is
        // stopped): the next deployment scales it back.
        if health == InstanceHealth::Running && observed.as_ref().is_some_and(|o| rescaled(o, rendered.app_container()))
        {
            health = InstanceHealth::Drifted;
        }
        // A move that did not finish left containers on its old target:
        // the next deployment removes them.
        if health == InstanceHealth::Running && record.moved_from.is_some() {
            health = InstanceHealth::Drifted;
        }
        Ok(Some((record, health)))
    }

    /// What a refresh reads from the recorded instance's containers: its
    /// latest backup and the users its app counts (one exec each, side by
    /// side, only those `wanted`); never fails a refresh.
    pub async fn read_app(&self, record: &AppInstanceRecord, wanted: AppReadWanted) -> AppRead {
        let latest_backup = async {
            if wanted.latest_backup { self.latest_backup(record).await } else { LatestBackupRead::Unreadable }
        };
        let users_in_use =
            async { if wanted.users_in_use { self.users_in_use(record).await } else { UsersInUseRead::Unreadable } };
        let (latest_backup, users_in_use) = tokio::join!(latest_backup, users_in_use);
        AppRead { latest_backup, users_in_use }
    }

    /// How many users the recorded instance's app counts (the catalog's
    /// `user_limit.users_in_use` command, one exec in the running app
    /// container); a stopped app, a failing command or an engine that does
    /// not answer leaves it unreadable.
    async fn users_in_use(&self, record: &AppInstanceRecord) -> UsersInUseRead {
        let id = &record.spec.id;
        let Ok(entry) = self.entry(&record.spec) else { return UsersInUseRead::Unreadable };
        // Apps that hold themselves to `users` cost a refresh nothing more.
        if entry.user_limit.as_ref().is_none_or(|limit| limit.users_in_use.is_none()) {
            return UsersInUseRead::Read(None);
        }
        let read = async {
            let tenant = self.observations.tenant(self.registry, &id.tenant_id).await.map_err(|e| e.to_string())?;
            let tenant = tenant.ok_or("the tenant is not in the registry")?;
            let Some(command) = render_users_in_use_command(entry, &recorded_input(record, &tenant))? else {
                return Ok(UsersInUseRead::Read(None));
            };
            let runtime = self.runtime(id, &record.spec.target).await.map_err(|e| e.to_string())?;
            let container = crate::catalog::render_app_container_name(&record.spec, record.generation);
            let listed = self.observations.listed_container(&record.spec.target, runtime.as_ref(), &container);
            if !listed.await.map_err(|e| e.to_string())?.is_some_and(|c| c.running) {
                return Ok(UsersInUseRead::Unreadable);
            }
            let output = runtime.exec(&container, &command).await.map_err(|e| e.to_string())?;
            match (output.exit_code, UsersInUseRead::parse(&output.output)) {
                (Some(0), read @ UsersInUseRead::Read(_)) => Ok(read),
                _ => Err(format!(
                    "the users_in_use command printed no number (exit {:?}): {}",
                    output.exit_code,
                    output.output.trim().chars().take(500).collect::<String>()
                )),
            }
        };
        read.await.unwrap_or_else(|reason: String| {
            tracing::warn!(instance = %id, %reason, "cannot read the users in use");
            UsersInUseRead::Unreadable
        })
    }

    /// The recorded instance's latest backup, as its backup container wrote
    /// it in the backup volume (one exec in the running container; a
    /// stopped or missing one, or an engine that does not answer, leaves it
    /// unreadable, never fails a refresh).
    async fn latest_backup(&self, record: &AppInstanceRecord) -> LatestBackupRead {
        let id = &record.spec.id;
        let Ok(entry) = self.entry(&record.spec) else { return LatestBackupRead::Unreadable };
        if entry.backup.is_none() {
            return LatestBackupRead::Read(BackupStatus::default());
        }
        let read = async {
            let tenant = self.observations.tenant(self.registry, &id.tenant_id).await.map_err(|e| e.to_string())?;
            let tenant = tenant.ok_or("the tenant is not in the registry")?;
            let rendered = self.render_record(record, &tenant).map_err(|e| e.to_string())?;
            let role = ContainerRole::Sidecar(crate::catalog::BACKUP_ROLE.to_owned());
            let Some(container) = rendered.containers.iter().find(|c| c.role == role) else {
                return Ok(LatestBackupRead::Read(BackupStatus::default()));
            };
            let runtime = self.runtime(id, &record.spec.target).await.map_err(|e| e.to_string())?;
            let listed = self.observations.listed_container(&record.spec.target, runtime.as_ref(), &container.name);
            if !listed.await.map_err(|e| e.to_string())?.is_some_and(|c| c.running) {
                return Ok(LatestBackupRead::Unreadable);
            }
            let command = ["sh", "-c", BackupStatus::READ].map(str::to_owned);
            let output = runtime.exec(&container.name, &command).await.map_err(|e| e.to_string())?;
            match output.exit_code {
                Some(0) => Ok(LatestBackupRead::Read(BackupStatus::parse(&output.output))),
                _ => Err(format!("reading the backup status failed: {}", output.output.trim())),
            }
        };
        read.await.unwrap_or_else(|reason: String| {
            tracing::warn!(instance = %id, %reason, "cannot read the latest backup");
            LatestBackupRead::Unreadable
        })
    }

    /// Deploys `spec`: creates the instance (`create` carries the create's
    /// token, which claims the instance's name first), or upgrades/repairs it
    /// with a health-checked switch.
    ///
    /// `decision` is what the plan decided (`None`: deploy, or only record
    /// when the running container already matches).
    pub async fn deploy(
        &self,
        spec: &AppInstanceSpec,
        create: Option<&crate::model::ownership::CreateToken>,
        decision: Option<&AppDecision>,
    ) -> Result<Deployment, AppApplyError> {
        if *self.cancelled.borrow() {
            return Err(AppApplyError::Cancelled { id: spec.id.clone() });
        }
        self.observations.clear().await;
        let kind = crate::model::ownership::ObjectKind::AppInstance;
        let key = spec.id.to_string();
        let claimed = match create {
            Some(token) => Some(
                crate::apply::claims::claim(self.registry, kind, &key, &spec.id.tenant_id, self.owner, token).await?,
            ),
            None => None,
        };
        // The restore a configuration asks for is recorded once it is
        // carried out: until then the registry keeps the one done before,
        // and a failed restore shows in the next plan again.
        let restore_done = self
            .registry
            .get_app_instance(&spec.id)
            .await
            .map_err(self.registry_error(&spec.id))?
            .and_then(|record| record.spec.restore);
        let restore_due = spec.restore != restore_done;
        let wanted_restore = spec.restore.as_ref();
        let deploying = AppInstanceSpec { restore: restore_done, ..spec.clone() };
        let spec = &deploying;
        let slot = self.targets.deployment_slot(&spec.target).await;
        let redeploy = decision.is_none_or(|decision| decision.redeploy);
        if restore_due && let Some(offsite_of) = wanted_restore.and_then(|request| request.offsite_of.as_deref()) {
            // Its data comes from an off-site copy: a place that cannot run
            // it (a swarm node drained or lost) is left for another, whose
            // new volumes the restore fills; never for a store that is not
            // there (the instance would run on empty volumes).
            if self.offsite_store(offsite_of).is_none() {
                return Err(AppApplyError::RestoreRefused {
                    id: spec.id.clone(),
                    reason: format!(
                        "restore.offsite_of: target {offsite_of} sends its backups to no off-site store (it has no offsite_backups block)"
                    ),
                });
            }
            let runtime = self.runtime(&spec.id, &spec.target).await?;
            let placed = runtime.place_data_elsewhere(&spec.id.to_string()).await;
            if let Some((from, to)) = placed.map_err(self.runtime_error(&spec.id, &spec.target))? {
                tracing::warn!(instance = %spec.id, %from, %to, "restoring the off-site copy onto another node: the node holding the data cannot run the instance");
            }
        }
        let deployed = self.deploy_steps(spec, decision).await;
        // A new create that failed and left nothing (no row; its undo, if
        // any, complete) frees the name again. An interrupted create it was
        // resuming keeps its claim: what that one made may still be there.
        if let (Err(error), Some(token), Some(crate::model::ownership::CreateDecision::New)) =
            (&deployed, create, &claimed)
            && !matches!(error, AppApplyError::Run { source, .. } if !source.unwound)
            && matches!(self.registry.get_app_instance(&spec.id).await, Ok(None))
            && let Err(release_error) = self.registry.release_claim_of(kind, &key, token).await
        {
            tracing::warn!(instance = %spec.id, error = %release_error, "cannot release the name of a failed create");
        }
        let result = async {
            let deployment = self.create_manager_account(deployed?).await?;
            // A change the plan decided to only record touches no container.
            if redeploy {
                self.apply_user_limit(&deployment).await?;
                self.announce_address(&deployment.record).await?;
            }
            // A restore about to replace the app's accounts (a clone's above
            // all) emails the manager the password it sets after it: a
            // welcome now would carry one that stops working minutes later.
            let mut deployment =
                if restore_due { deployment } else { self.send_welcome(deployment, Occasion::Ready).await? };
            // A suspended tenant's new deployment is stopped once it is made
            // (its domains show the page): resuming starts it again.
            let tenant = self.tenant(spec).await?;
            if redeploy && tenant.status != TenantStatus::Active {
                crate::apply::suspension::suspend_instance(
                    self.registry,
                    self.targets,
                    &tenant,
                    &spec.id,
                    self.deadline,
                )
                .await
                .map_err(|source| AppApplyError::Suspend { id: spec.id.clone(), source: Box::new(source) })?;
                deployment.health = InstanceHealth::Suspended;
            }
            Ok(deployment)
        }
        .await;
        // A restore waits for a slot of its own.
        drop(slot);
        let result = match result {
            Ok(deployment) if restore_due => self.restore_asked(wanted_restore, deployment).await,
            other => other,
        };
        self.observations.clear().await;
        result
    }

    /// Carries out the restore a configuration asks for (`None`: none any
    /// more) after the deployment, and records it once done.
    async fn restore_asked(
        &self,
        wanted: Option<&crate::model::backup::RestoreRequest>,
        mut deployment: Deployment,
    ) -> Result<Deployment, AppApplyError> {
        let id = deployment.record.spec.id.clone();
        if let Some(request) = wanted {
            let from = request.from.as_deref().map(AppInstanceId::parse).transpose().map_err(|reason| {
                AppApplyError::Catalog { id: id.clone(), reason: format!("restore.from: {reason}") }
            })?;
            let replaced = |taken: &crate::model::backup::Snapshot| {
                tracing::info!(instance = %id, snapshot = %taken.id, "took a backup of the data the restore replaces");
            };
            let offsite_of = request.offsite_of.as_deref();
            let restored = self
                .restore_from(&id, from.as_ref(), offsite_of, &request.snapshot, replaced)
                .await
                .map_err(|error| AppApplyError::Restore {
                    id: id.clone(),
                    snapshot: request.snapshot.clone(),
                    reason: crate::backends::error_chain(&error),
                })?;
            tracing::info!(instance = %id, snapshot = %restored.restored.id, "restored the snapshot the configuration asks for");
            if let Err(warning) = restored.manager {
                deployment.welcome_warning = Some(match deployment.welcome_warning.take() {
                    Some(earlier) => format!("{earlier}; {warning}"),
                    None => warning,
                });
            }
        }
        let mut record = self
            .registry
            .get_app_instance(&id)
            .await
            .map_err(self.registry_error(&id))?
            .unwrap_or_else(|| deployment.record.clone());
        record.spec.restore = wanted.cloned();
        self.registry.put_app_instance(&record).await.map_err(self.registry_error(&id))?;
        deployment.record = record;
        Ok(deployment)
    }

    /// Gives the manager's account in the running app the deployment's new
    /// password: the catalog's login files (which hold its hash) rewritten in
    /// the app container and its `reload` command run, and the one-shot
    /// command that makes the account (apps whose account is made by a
    /// command). If a step fails, the instance is marked for a new password,
    /// so the next apply sets one again.
    async fn create_manager_account(&self, mut deployment: Deployment) -> Result<Deployment, AppApplyError> {
        let Some(password) = &deployment.new_manager_password else { return Ok(deployment) };
        let record = &deployment.record;
        let id = record.spec.id.clone();
        let entry = self.entry(&record.spec)?;
        let tenant = self.tenant(&record.spec).await?;
        let runtime = self.runtime(&id, &record.spec.target).await?;
        let container = crate::catalog::render_app_container_name(&record.spec, record.generation);
        let runtime_error = || self.runtime_error(&id, &record.spec.target);
        let rendered = self.render_record(record, &tenant)?;
        // The login files and the app reading them again are each copy's;
        // the account the command makes is the app's, made once.
        let mut runs = Vec::new();
        if !rendered.login_files.is_empty() {
            with_retries(self.deadline, || runtime.write_files(&container, &rendered.login_files))
                .await
                .map_err(runtime_error())?;
            if let Some(reload) = &entry.manager_account.reload {
                runs.extend(runtime.exec_each(&container, reload).await.map_err(runtime_error())?);
            }
        }
        let command = manager_command(entry, record, &tenant, password)
            .map_err(|reason| AppApplyError::Catalog { id: id.clone(), reason })?;
        if let Some(command) = command {
            runs.push(runtime.exec(&container, &command).await.map_err(runtime_error())?);
        }
        for ran in runs {
            if ran.exit_code == Some(0) {
                continue;
            }
            deployment.record.welcome = WelcomeState::Pending;
            self.registry.put_app_instance(&deployment.record).await.map_err(self.registry_error(&id))?;
            return Err(AppApplyError::ManagerAccount {
                id,
                exit_code: ran.exit_code,
                // The command's own output may echo what it was given: the password is cut out.
                output: ran.output.replace(password.expose(), "<password>").trim().chars().take(2000).collect(),
            });
        }
        tracing::info!(instance = %id, "manager account set");
        Ok(deployment)
    }

    /// Sets the app's own user limit to the instance's `users`, for apps that
    /// take it by a command (the setting is idempotent, so every deployment
    /// sets it; apps that read it from the environment got it at start).
    async fn apply_user_limit(&self, deployment: &Deployment) -> Result<(), AppApplyError> {
        let record = &deployment.record;
        let id = &record.spec.id;
        let entry = self.entry(&record.spec)?;
        let tenant = self.tenant(&record.spec).await?;
        let command = render_user_limit_command(entry, &recorded_input(record, &tenant))
            .map_err(|reason| AppApplyError::Catalog { id: id.clone(), reason })?;
        let Some(command) = command else { return Ok(()) };
        self.run_in_app(record, &command).await?.map_err(|(exit_code, output)| AppApplyError::UserLimit {
            id: id.clone(),
            exit_code,
            output,
        })
    }

    /// Runs one of the catalog's commands in the instance's app container:
    /// `Err` for what could not run it, `Ok(Err((exit code, output)))` for a
    /// command that failed (its output trimmed, for the error message).
    async fn run_in_app(
        &self,
        record: &AppInstanceRecord,
        command: &[String],
    ) -> Result<Result<(), (Option<i64>, String)>, AppApplyError> {
        let id = &record.spec.id;
        let runtime = self.runtime(id, &record.spec.target).await?;
        let container = crate::catalog::render_app_container_name(&record.spec, record.generation);
        // Every copy of the app is told (each keeps what it is told itself).
        let runs = runtime.exec_each(&container, command).await;
        let runs = runs.map_err(self.runtime_error(id, &record.spec.target))?;
        match runs.into_iter().find(|ran| ran.exit_code != Some(0)) {
            None => Ok(Ok(())),
            Some(ran) => Ok(Err((ran.exit_code, ran.output.trim().chars().take(2000).collect()))),
        }
    }

    /// Tells the running app its public address (the catalog's
    /// `public_address` command), for apps that have one and instances with a
    /// live domain. Run after every deployment, and by a domain's apply and
    /// destroy, so that the app's own links and trusted host names follow
    /// its domains without a new container.
    pub async fn announce_address(&self, record: &AppInstanceRecord) -> Result<(), AppApplyError> {
        let id = &record.spec.id;
        let entry = self.entry(&record.spec)?;
        if entry.public_address.is_none() || record.published_port.is_none() {
            return Ok(());
        }
        let tenant = self.tenant(&record.spec).await?;
        // A suspended tenant's containers are stopped; resuming starts the same ones.
        if tenant.status != TenantStatus::Active {
            return Ok(());
        }
        let addresses = self.addresses(record).await?;
        let command = render_public_address_command(entry, &recorded_input(record, &tenant), &addresses)
            .map_err(|reason| AppApplyError::Catalog { id: id.clone(), reason })?;
        let Some(command) = command else { return Ok(()) };
        self.run_in_app(record, &command).await?.map_err(|(exit_code, output)| AppApplyError::PublicAddress {
            id: id.clone(),
            exit_code,
            output,
        })?;
        tracing::info!(instance = %id, address = %addresses[0], "public address set in the app");
        Ok(())
    }

    /// [`announce_address`](Self::announce_address) for the instance `id`, if it still exists.
    /// Parallel calls for one instance (the applies of its many domains)
    /// share a run that reads the registry after all of them were made.
    pub async fn announce_address_of(&self, id: &AppInstanceId) -> Result<(), AppApplyError> {
        self.targets
            .coalesce(&format!("announce {id}"), || async {
                match self.registry.get_app_instance(id).await.map_err(self.registry_error(id))? {
                    Some(record) => self.announce_address(&record).await,
                    None => Ok(()),
                }
            })
            .await
    }

    /// Sends the welcome email of a deployment that set a new password while
    /// its welcome is due (a first deployment, a send that failed before, or
    /// one waiting for a domain). Without a live domain there is no address
    /// the customer can reach, so the email waits for the instance's first
    /// domain (`waiting_for_domain`). A failed send leaves it pending and
    /// becomes a warning: the app itself is deployed.
    async fn send_welcome(
        &self,
        mut deployment: Deployment,
        occasion: Occasion<'_>,
    ) -> Result<Deployment, AppApplyError> {
        let due = matches!(deployment.record.welcome, WelcomeState::Pending | WelcomeState::WaitingForDomain);
        let Some(password) = deployment.new_manager_password.clone().filter(|_| due) else {
            return Ok(deployment);
        };
        let id = deployment.record.spec.id.clone();
        let Some(mailer) = self.mailer else {
            deployment.record.welcome = WelcomeState::Off;
            deployment.welcome_warning = Some(
                "no SMTP relay is configured (the provider's smtp block), so the welcome email with the manager's \
                 initial password was not sent; set admin_password to give the manager a password you know"
                    .to_owned(),
            );
            self.registry.put_app_instance(&deployment.record).await.map_err(self.registry_error(&id))?;
            return Ok(deployment);
        };
        let addresses = self.addresses(&deployment.record).await?;
        if addresses.is_empty() {
            deployment.record.welcome = WelcomeState::WaitingForDomain;
            self.registry.put_app_instance(&deployment.record).await.map_err(self.registry_error(&id))?;
            tracing::info!(instance = %id, "welcome email waits for the instance's first live domain");
            return Ok(deployment);
        }
        let tenant = self.tenant(&deployment.record.spec).await?;
        let entry = self.entry(&deployment.record.spec)?;
        let shown_password = (!deployment.record.password_given).then_some(&password);
        let email = manager_email(occasion, &tenant, &deployment.record.spec, entry, &addresses, shown_password);
        // A relay that stays down costs a warning, not the whole create timeout.
        match with_retries(WELCOME_SEND_BUDGET, || mailer.send(&email)).await {
            Ok(()) => {
                tracing::info!(instance = %id, to = %email.to_address, "welcome email sent");
                deployment.record.welcome = WelcomeState::Sent;
                self.registry.put_app_instance(&deployment.record).await.map_err(self.registry_error(&id))?;
            }
            Err(error) => {
                tracing::warn!(instance = %id, error = %error, "welcome email not sent");
                deployment.record.welcome = WelcomeState::Pending;
                self.registry.put_app_instance(&deployment.record).await.map_err(self.registry_error(&id))?;
                deployment.welcome_warning = Some(format!(
                    "the welcome email to {} was not sent ({}); the next terraform apply sets a new password and sends it again",
                    email.to_address,
                    crate::backends::error_chain(&error)
                ));
            }
        }
        Ok(deployment)
    }

    /// Delivers the welcome email an instance is waiting to send now that a
    /// domain of it is live (called after a domain's apply): a new password
    /// is set in the app (never a new deployment) and the email names the
    /// domain. Returns a warning when the email could not go out.
    pub async fn deliver_waiting_welcome(&self, id: &AppInstanceId) -> Result<Option<String>, AppApplyError> {
        let Some(record) = self.registry.get_app_instance(id).await.map_err(self.registry_error(id))? else {
            return Ok(None);
        };
        if record.welcome != WelcomeState::WaitingForDomain || self.addresses(&record).await?.is_empty() {
            return Ok(None);
        }
        self.new_manager_password(record, Occasion::Ready).await
    }

    /// Gives the manager of an instance whose data a restore replaced her
    /// account again (the app's accounts are now as the snapshot had them:
    /// her password of then, or another instance's in a clone): a generated
    /// password is replaced by a new one, set in the app and emailed as the
    /// welcome email is (when the app is stopped, or the email cannot go
    /// out, the next apply does it); one given as `admin_password` is set
    /// again by the next apply. `Ok` says what was done, `Err` why she
    /// cannot sign in with a password she was given yet.
    pub(super) async fn renew_manager_after_restore(
        &self,
        id: &AppInstanceId,
        running: bool,
        restored: &crate::model::backup::Snapshot,
    ) -> Result<String, String> {
        let renewed = async {
            let Some(mut record) = self.registry.get_app_instance(id).await.map_err(self.registry_error(id))? else {
                return Ok(Err(format!("{id} is no longer in the registry")));
            };
            if record.password_given {
                // No hash matches: the next plan sees the password as changed.
                record.manager_password_hash = String::new();
                self.registry.put_app_instance(&record).await.map_err(self.registry_error(id))?;
                return Ok(Err(format!(
                    "the manager's password in {id} is the snapshot's until the next apply sets admin_password again"
                )));
            }
            // No email was sent or is waiting: nobody was given a password.
            if !matches!(record.welcome, WelcomeState::Sent | WelcomeState::Pending) {
                return Ok(Ok("no welcome email was sent for it, so no new manager password is either".to_owned()));
            }
            record.welcome = WelcomeState::Pending;
            if !running {
                self.registry.put_app_instance(&record).await.map_err(self.registry_error(id))?;
                return Ok(Err(format!(
                    "the app of {id} is stopped: the next apply that starts it sets a new manager password and emails it"
                )));
            }
            let to = self.tenant(&record.spec).await?.spec.manager.email;
            let sent = if self.addresses(&record).await?.is_empty() {
                format!("a new manager password was set; its email to {to} waits for a live domain")
            } else {
                format!("a new manager password was set and emailed to {to}")
            };
            let warning = self.new_manager_password(record, Occasion::Restored { taken: &restored.time }).await?;
            Ok(warning.map_or(Ok(sent), Err))
        };
        renewed.await.unwrap_or_else(|error: AppApplyError| {
            let reason = crate::backends::error_chain(&error);
            tracing::warn!(instance = %id, error = %reason, "cannot renew the manager's password after a restore");
            Err(format!(
                "the manager's new password was not set after the restore ({reason}); the next apply sets one and emails it"
            ))
        })
    }

    /// Sets a new manager password in the running app and sends it by email
    /// for `occasion` (a given password stays, and the email says so).
    async fn new_manager_password(
        &self,
        mut record: AppInstanceRecord,
        occasion: Occasion<'_>,
    ) -> Result<Option<String>, AppApplyError> {
        let id = &record.spec.id.clone();
        let password = Password::generate();
        if !record.password_given {
            record.manager_password_hash = password.hash();
        }
        self.registry.put_app_instance(&record).await.map_err(self.registry_error(id))?;
        self.observations.clear().await;
        let deployment = Deployment {
            record,
            new_manager_password: Some(password),
            welcome_warning: None,
            health: InstanceHealth::Running,
        };
        let deployment =
            if deployment.record.password_given { deployment } else { self.create_manager_account(deployment).await? };
        let deployment = self.send_welcome(deployment, occasion).await?;
        self.observations.clear().await;
        Ok(deployment.welcome_warning)
    }

    /// An instance's addresses for people: its live domains (a customer's own
    /// or a platform subdomain), over HTTPS where they have a certificate.
    /// Never the internal URL: the customer cannot reach it.
    async fn addresses(&self, record: &AppInstanceRecord) -> Result<Vec<String>, AppApplyError> {
        let domains =
            self.registry.domains_of_instance(&record.spec.id).await.map_err(self.registry_error(&record.spec.id))?;
        let mut live: Vec<_> =
            domains.iter().filter(|domain| domain.status == crate::model::domain::DomainStatus::Active).collect();
        // The customer's own domain first: it is the address she gives out.
        live.sort_by_key(|domain| {
            (domain.kind != crate::model::domain::DomainKind::Custom, domain.spec.hostname.to_string())
        });
        Ok(live
            .into_iter()
            .map(|domain| match domain.spec.tls {
                crate::model::domain::TlsMode::Acme => format!("https://{}", domain.spec.hostname),
                crate::model::domain::TlsMode::None => format!("http://{}", domain.spec.hostname),
            })
            .collect())
    }

    async fn deploy_steps(
        &self,
        spec: &AppInstanceSpec,
        decision: Option<&AppDecision>,
    ) -> Result<Deployment, AppApplyError> {
        let tenant = self.tenant(spec).await?;
        let redeploy = decision.is_none_or(|decision| decision.redeploy);
        if spec.users > tenant.spec.user_quota {
            return Err(AppApplyError::OverQuota {
                id: spec.id.clone(),
                tenant: tenant.spec.name.to_string(),
                users: spec.users,
                quota: tenant.spec.user_quota,
            });
        }
        let entry = self.entry(spec)?;
        let existing = self.registry.get_app_instance(&spec.id).await.map_err(self.registry_error(&spec.id))?;
        if let Some(record) = existing.as_ref().filter(|record| record.spec.app == spec.app)
            && let Some(reason) = entry.downgrade_refusal(&spec.channel, &record.spec.version, &spec.version)
        {
            return Err(AppApplyError::Catalog { id: spec.id.clone(), reason });
        }
        let existing = match existing {
            Some(record) if record.moved_from.is_some() => Some(self.finish_leaving(record, &spec.target).await?),
            other => other,
        };
        let runtime = self.runtime(&spec.id, &spec.target).await?;
        // The store of the target's off-site copies runs (started again if
        // it was stopped), whatever else this deployment changes.
        if entry.backup.is_some() {
            self.ensure_offsite_store(&spec.id, &spec.target).await?;
        }
        // The manager's password stays while nothing asks for a new one: a
        // new password_version, or an admin_password its hash does not match.
        // A pending welcome email gets a new password too (the old one never
        // reached anybody), and so does one waiting for a domain that is live now.
        let welcome_due = match &existing {
            Some(record) if record.welcome == WelcomeState::Pending => true,
            Some(record) if record.welcome == WelcomeState::WaitingForDomain => {
                !self.addresses(record).await?.is_empty()
            }
            _ => false,
        };
        let (manager_password_hash, new_password) = match &existing {
            Some(record)
                if record.spec.password_version == spec.password_version
                    && !welcome_due
                    && !record.manager_password_hash.is_empty()
                    && spec.admin_password.as_ref().is_none_or(|p| p.matches(&record.manager_password_hash)) =>
            {
                (record.manager_password_hash.clone(), None)
            }
            _ => {
                let password = spec.admin_password.clone().unwrap_or_else(Password::generate);
                (password.hash(), Some(password))
            }
        };
        let password_given = match (&new_password, &existing) {
            (Some(_), _) => spec.admin_password.is_some(),
            (None, Some(record)) => record.password_given,
            (None, None) => false,
        };
        let offsite = self.offsite_store(&spec.target).map(|(_, store)| store);
        let render_at = |generation: u32, secrets: &BTreeMap<String, String>| {
            let offsite = offsite.as_ref();
            render_instance(
                entry,
                spec,
                &tenant,
                self.owner.as_str(),
                generation,
                secrets,
                &manager_password_hash,
                offsite,
            )
            .map_err(|reason| AppApplyError::Catalog { id: spec.id.clone(), reason })
        };
        let secrets = match &existing {
            Some(record) => record.secrets.clone(),
            None => required_secrets(entry).into_iter().map(|name| (name, generate_secret())).collect(),
        };

        // The plan decided to only record: what it saw must still be so.
        if let Some(decision) = decision.filter(|decision| !decision.redeploy) {
            let moved = match &existing {
                None => Some("its record is gone from the registry".to_owned()),
                Some(record) if Some(record.generation) != decision.generation => Some(format!(
                    "generation {} was deployed after the plan saw {}",
                    record.generation,
                    decision.generation.map_or_else(|| "none".to_owned(), |g| g.to_string())
                )),
                Some(record) if record.spec.target != spec.target => Some("it moved to another target".to_owned()),
                Some(_) => None,
            };
            if let Some(what) = moved {
                return Err(AppApplyError::MovedSincePlan { id: spec.id.clone(), what });
            }
        }
        if let Some(old) = existing.as_ref().filter(|record| record.spec.target != spec.target) {
            // The plan refuses it too: the data in transit is never migrated.
            if old.spec.version != spec.version || old.spec.app != spec.app {
                return Err(AppApplyError::Catalog {
                    id: spec.id.clone(),
                    reason: format!(
                        "a move from {} to {} changes nothing else, and the configuration also asks for {} {} where {} {} runs: move it with the version it runs, then change the version in another apply",
                        old.spec.target, spec.target, spec.app, spec.version, old.spec.app, old.spec.version
                    ),
                });
            }
            let origin = self.runtime(&spec.id, &old.spec.target).await?;
            let leaving = self.render_record(old, &tenant)?;
            let rendered = render_at(old.generation + 1, &secrets)?;
            let record = AppInstanceRecord {
                spec: AppInstanceSpec { admin_password: None, ..spec.clone() },
                generation: old.generation + 1,
                deployed_at: now_rfc3339(),
                published_port: None,
                published_host: None,
                moved_from: Some(old.spec.target.clone()),
                secrets,
                manager_password_hash,
                password_given,
                ..old.clone()
            };
            let steps = move_steps(old, &leaving, &rendered, record);
            let record = self.run_deployment(spec, existing.as_ref(), (runtime, Some(origin)), &steps).await?;
            return Ok(Deployment {
                record,
                new_manager_password: new_password,
                welcome_warning: None,
                health: InstanceHealth::Running,
            });
        }
        // Nothing to deploy when the plan says so, or when the recorded
        // container already matches the spec.
        if let Some(record) = &existing {
            let current = render_at(record.generation, &secrets)?;
            // Sidecars whose spec label changed (the backup container when
            // the backup settings do) are replaced beside the running app.
            let mut changed_sidecars = Vec::new();
            // Another number of copies scales the app where it runs.
            let mut rescale = spec.replicas != record.spec.replicas;
            let matches = !redeploy || {
                let observed = runtime
                    .inspect(&current.app_container().name)
                    .await
                    .map_err(self.runtime_error(&spec.id, &spec.target))?;
                rescale |= observed.as_ref().is_some_and(|o| rescaled(o, current.app_container()));
                let mut sidecars_run = true;
                for sidecar in current.containers.iter().filter(|c| c.role != ContainerRole::App) {
                    let observed =
                        runtime.inspect(&sidecar.name).await.map_err(self.runtime_error(&spec.id, &spec.target))?;
                    sidecars_run &= observed.as_ref().is_some_and(|c| c.is_up());
                    if observed.is_some_and(|c| c.labels.get(labels::SPEC) != sidecar.labels.get(labels::SPEC)) {
                        changed_sidecars.push(sidecar.clone());
                    }
                }
                sidecars_run && compare(observed.as_ref(), &current) == InstanceHealth::Running
            };
            if matches && record.spec.target == spec.target {
                let recorded = self.render_record(record, &tenant)?;
                // The record and the routes change; the containers stay.
                let updated = AppInstanceRecord {
                    spec: AppInstanceSpec { admin_password: None, ..spec.clone() },
                    manager_password_hash: manager_password_hash.clone(),
                    password_given,
                    ..record.clone()
                };
                let mut steps: Vec<Box<dyn Step<DeployContext<'_>>>> =
                    vec![Box::new(Leftovers { instance: spec.id.clone(), keep: Some(record.generation) })];
                if rescale {
                    changed_sidecars.push(current.app_container().clone());
                }
                for after in changed_sidecars {
                    let before = recorded.containers.iter().find(|c| c.name == after.name).cloned();
                    steps.push(Box::new(Container { before, after }));
                }
                steps.extend::<[Box<dyn Step<DeployContext<'_>>>; 2]>([
                    Box::new(Record {
                        before: existing.clone(),
                        after: updated,
                        app_container: current.app_container().name.clone(),
                    }),
                    Box::new(Routes { before: existing.clone() }),
                ]);
                let record = self.run_deployment(spec, existing.as_ref(), (runtime, None), &steps).await?;
                // Suspended or running, the containers stay as they were meant to be.
                let health = if tenant.status == TenantStatus::Active {
                    InstanceHealth::Running
                } else {
                    InstanceHealth::Suspended
                };
                return Ok(Deployment { record, new_manager_password: new_password, welcome_warning: None, health });
            }
        }

        let old_generation = existing.as_ref().map(|r| r.generation);
        let generation = old_generation.unwrap_or(0) + 1;
        let rendered = render_at(generation, &secrets)?;
        // What runs now, rendered from the record (its spec, owner and
        // secrets), not the new spec at the old generation: an undo puts
        // these containers back, and the old backup container must go on
        // tagging snapshots with the version that wrote the data. A version
        // the catalog no longer renders falls back to the new spec.
        let previous = match &existing {
            Some(record) => Some(match self.render_record(record, &tenant) {
                Ok(recorded) => recorded,
                Err(error) => {
                    tracing::warn!(instance = %spec.id, %error, "the recorded deployment no longer renders");
                    render_at(record.generation, &secrets)?
                }
            }),
            None => None,
        };
        // An upgrade to another version whose data the catalog migrates or
        // backs up: the old version stops first (its data must hold still),
        // the backup is taken, the migration runs, then the new version starts.
        let jobs = match &existing {
            Some(old) if old.spec.version != spec.version && old.spec.target == spec.target => {
                let input =
                    render_input(spec, &tenant, self.owner.as_str(), generation, &secrets, &manager_password_hash);
                let jobs = render_upgrade_jobs(entry, &input, &rendered, old.generation)
                    .map_err(|reason| AppApplyError::Catalog { id: spec.id.clone(), reason })?;
                (jobs.migrate.is_some() || jobs.backup.is_some()).then_some((old, jobs))
            }
            _ => None,
        };
        let previous_version = match &existing {
            Some(record) if record.spec.version != spec.version => Some(record.spec.version.clone()),
            Some(record) => record.previous_version.clone(),
            None => None,
        };
        let record = AppInstanceRecord {
            spec: AppInstanceSpec { admin_password: None, ..spec.clone() },
            generation,
            previous_version,
            deployed_at: now_rfc3339(),
            published_port: None,
            published_host: None,
            moved_from: None,
            secrets,
            manager_password_hash,
            welcome: match &existing {
                Some(record) => record.welcome,
                None if tenant.spec.welcome_email => WelcomeState::Pending,
                None => WelcomeState::Off,
            },
            password_given,
            owner: existing.as_ref().map(|r| r.owner.clone()).unwrap_or_else(|| self.owner.as_str().to_owned()),
            created_at: existing.as_ref().map(|r| r.created_at.clone()).unwrap_or_else(now_rfc3339),
        };
        // Network → volumes → sidecars → the new generation's app container
        // (each healthy) → the record → routes switched → the old generation
        // goes. Undo removes what this deployment made, puts back sidecars it
        // changed and never removes a volume it did not create.
        let mut steps: Vec<Box<dyn Step<DeployContext<'_>>>> =
            vec![Box::new(Leftovers { instance: spec.id.clone(), keep: old_generation })];
        let network = Network { name: rendered.network.clone(), labels: rendered.network_labels.clone() };
        steps.push(Box::new(Transition::new(network, existing.as_ref().map(|_| ()), Some(()))));
        for volume in &rendered.volumes {
            steps.push(Box::new(Volume { spec: volume.clone(), created: std::sync::atomic::AtomicBool::new(false) }));
        }
        // An upgrade stops the backup container with the old version and
        // starts the new one after the new version: no scheduled backup runs
        // on data being backed up, migrated or put back, or is tagged with a
        // version that did not write it.
        let backup_role = ContainerRole::Sidecar(crate::catalog::BACKUP_ROLE.to_owned());
        let mut backup_container_step = None;
        for container in &rendered.containers {
            if let (ContainerRole::App, Some((old, jobs))) = (&container.role, &jobs) {
                let serving = format!("version {} serves again", old.spec.version);
                let old_container = crate::catalog::render_app_container_name(spec, old.generation);
                let old_backups = previous
                    .as_ref()
                    .and_then(|previous| previous.containers.iter().find(|c| c.role == backup_role).cloned());
                steps.push(Box::new(StopOld {
                    container: old_container,
                    backups: old_backups,
                    record: (*old).clone(),
                }));
                let release = format!("{} {}", spec.app, spec.version);
                if let (Some(backup), Some(restore)) = (&jobs.backup, &jobs.restore) {
                    steps.push(Box::new(Backup {
                        id: spec.id.clone(),
                        release: release.clone(),
                        kept: serving.clone(),
                        backup: backup.clone(),
                        restore: restore.clone(),
                        taken: std::sync::atomic::AtomicBool::new(false),
                    }));
                }
                if let Some(migrate) = &jobs.migrate {
                    let kept = match jobs.backup {
                        Some(_) => format!("the backup taken before it was put back and {serving}"),
                        None => format!(
                            "{serving}, on the data as the migration left it (the catalog entry takes no backup)"
                        ),
                    };
                    steps.push(Box::new(Migrate { id: spec.id.clone(), release, kept, job: migrate.clone() }));
                }
            }
            let before = match container.role {
                ContainerRole::App => None,
                _ => previous
                    .as_ref()
                    .and_then(|previous| previous.containers.iter().find(|old| old.name == container.name).cloned()),
            };
            let step = Box::new(Container { before, after: container.clone() });
            if jobs.is_some() && container.role == backup_role {
                backup_container_step = Some(step);
            } else {
                steps.push(step);
            }
        }
        if let Some(step) = backup_container_step {
            steps.push(step);
        }
        let app_container = rendered.app_container().name.clone();
        steps.push(Box::new(Record { before: existing.clone(), after: record, app_container }));
        steps.push(Box::new(Routes { before: existing.clone() }));
        if let Some(old) = old_generation {
            steps.push(Box::new(RemoveContainer(crate::catalog::render_app_container_name(spec, old))));
        }
        let record = self.run_deployment(spec, existing.as_ref(), (runtime, None), &steps).await?;
        Ok(Deployment {
            record,
            new_manager_password: new_password,
            welcome_warning: None,
            health: InstanceHealth::Running,
        })
    }

    /// Runs a deployment's steps on the runner; returns the record it wrote.
    async fn run_deployment<'s>(
        &'s self,
        spec: &AppInstanceSpec,
        existing: Option<&AppInstanceRecord>,
        (runtime, origin): (Arc<dyn Runtime>, Option<Arc<dyn Runtime>>),
        steps: &[Box<dyn Step<DeployContext<'s>>>],
    ) -> Result<AppInstanceRecord, AppApplyError> {
        let context = DeployContext { app: self, runtime, origin, written: std::sync::Mutex::new(None) };
        let operation = self.deploy_operation(spec);
        let journal = RegistryJournal(self.registry);
        if let Err(error) = within(self.deadline, run(&operation, steps, &context, &journal)).await {
            return Err(self.deployment_error(spec, existing, error));
        }
        let record = context.written.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        record.ok_or_else(|| AppApplyError::Catalog {
            id: spec.id.clone(),
            reason: "the deployment finished without recording the instance".to_owned(),
        })
    }

    /// The journal's name of a deployment of `spec`: the same as its
    /// destroy's, so that whichever comes next after a crash finds what the
    /// crashed run journaled.
    fn deploy_operation(&self, spec: &AppInstanceSpec) -> String {
        change_operation(crate::model::ownership::ObjectKind::AppInstance, &spec.id.to_string(), self.owner)
    }

    /// A failed deployment's error: the step's own, said for people (what
    /// keeps serving), when everything was undone; else with the undo failures.
    fn deployment_error(
        &self,
        spec: &AppInstanceSpec,
        existing: Option<&AppInstanceRecord>,
        error: RunError,
    ) -> AppApplyError {
        let error = match error.into_step_error::<AppApplyError>() {
            Ok(own) => return own,
            Err(error) => error,
        };
        let error = match error.into_step_error::<RuntimeError>() {
            Ok(runtime) => runtime,
            Err(error) => return AppApplyError::Run { id: spec.id.clone(), source: Box::new(error) },
        };
        let operation = if existing.is_none() { "create" } else { "update" };
        let kept = match existing {
            Some(record) => format!("version {} keeps serving", record.spec.version),
            None => "nothing was left behind".to_owned(),
        };
        match error {
            RuntimeError::Unhealthy { output, .. } => AppApplyError::Unhealthy {
                id: spec.id.clone(),
                release: format!("{} {}", spec.app, spec.version),
                kept: match existing {
                    Some(_) => format!("{kept} and nothing else changed"),
                    None => kept,
                },
                output,
            },
            deadline @ (RuntimeError::HealthDeadline { .. } | RuntimeError::JobDeadline { .. }) => {
                AppApplyError::DeadlineExceeded {
                    id: spec.id.clone(),
                    operation,
                    detail: format!(
                        "{}; {kept}. Raise timeouts.{operation} if the app needs longer to start",
                        crate::backends::error_chain(&deadline),
                    ),
                }
            }
            other => self.runtime_error(&spec.id, &spec.target)(other),
        }
    }

    /// Destroys an instance: its containers, its network when unused, and its
    /// data volumes only when `delete_data_on_destroy` is set.
    pub async fn destroy(&self, id: &AppInstanceId) -> Result<(), AppApplyError> {
        if *self.cancelled.borrow() {
            return Err(AppApplyError::Cancelled { id: id.clone() });
        }
        self.observations.clear().await;
        let result = self.destroy_steps(id).await;
        self.observations.clear().await;
        result
    }

    async fn destroy_steps(&self, id: &AppInstanceId) -> Result<(), AppApplyError> {
        let kind = crate::model::ownership::ObjectKind::AppInstance;
        let key = id.to_string();
        let operation = change_operation(kind, &key, self.owner);
        let Some(record) = self.registry.get_app_instance(id).await.map_err(self.registry_error(id))? else {
            // Already gone: a journal an interrupted destroy left is done
            // with, and the name is free.
            self.registry.journal_forget(&operation).await.map_err(self.registry_error(id))?;
            self.registry.release_claim(kind, &key).await.map_err(self.registry_error(id))?;
            return Ok(());
        };
        let spec = &record.spec;
        // Refusals first: nothing is touched while others depend on it.
        let own_domains = self.domains_to_release(&record).await?;
        let runtime = self.runtime(id, &spec.target).await?;
        // What an undo starts again (nothing when the tenant went by hand).
        let rendered = match self.tenant(spec).await {
            Ok(tenant) => Some(self.render_record(&record, &tenant)?),
            Err(_) => None,
        };
        let claim = self.registry.get_claim(kind, &key).await.map_err(self.registry_error(id))?;
        let mut steps: Vec<Box<dyn Step<DeployContext<'_>>>> = Vec::new();
        steps.push(Box::new(ReplacedPage { domains: own_domains, record: record.clone() }));
        steps.push(Box::new(InstanceContainers {
            instance: id.clone(),
            rendered: rendered.as_ref().map(|app| app.containers.clone()).unwrap_or_default(),
        }));
        if spec.delete_data_on_destroy {
            for volume in rendered.iter().flat_map(|app| &app.volumes) {
                steps.push(Box::new(RemoveVolume(volume.name.clone())));
            }
        }
        let network = Network {
            name: crate::catalog::network_name(id.tenant_id.as_str()),
            labels: rendered.as_ref().map(|app| app.network_labels.clone()).unwrap_or_default(),
        };
        steps.push(Box::new(Transition::new(network, Some(()), None)));
        steps.push(Box::new(InstanceRow { record: record.clone(), claim }));
        let context = DeployContext { app: self, runtime, origin: None, written: std::sync::Mutex::new(None) };
        let journal = RegistryJournal(self.registry);
        within(self.deadline, run(&operation, &steps, &context, &journal)).await.map_err(|error| {
            error
                .into_step_error()
                .unwrap_or_else(|error| AppApplyError::Run { id: id.clone(), source: Box::new(error) })
        })?;
        // Gone: its name is free (the row step freed it with the row).
        self.registry.release_claim(kind, &key).await.map_err(self.registry_error(id))?;
        if spec.delete_data_on_destroy {
            self.remove_moved_copies(&record).await?;
        }
        Ok(())
    }

    /// Finishes a move interrupted at its last step: the instance's
    /// containers on the target it left go, and the record says so. When
    /// that target does not answer, the deployment goes on (the record keeps
    /// saying it, and the next one tries again), unless the instance is
    /// moving back there.
    async fn finish_leaving(
        &self,
        record: AppInstanceRecord,
        going_to: &str,
    ) -> Result<AppInstanceRecord, AppApplyError> {
        let Some(left) = record.moved_from.clone() else { return Ok(record) };
        let id = record.spec.id.clone();
        let network = crate::catalog::network_name(id.tenant_id.as_str());
        let removed = match self.runtime(&id, &left).await {
            Ok(runtime) => remove_instance_containers(runtime.as_ref(), &id, &network)
                .await
                .map_err(self.runtime_error(&id, &left)),
            Err(error) => Err(error),
        };
        match removed {
            Ok(()) => {
                let finished = AppInstanceRecord { moved_from: None, ..record };
                self.registry.put_app_instance(&finished).await.map_err(self.registry_error(&id))?;
                Ok(finished)
            }
            Err(error) if going_to == left => Err(error),
            Err(error) => {
                tracing::warn!(instance = %id, target = %left, error = %error_chain(&error), "the containers a move left are still there");
                Ok(record)
            }
        }
    }

    /// The copies of a destroyed instance's data that its moves left on
    /// the other targets (its own volumes, by its owner), removed with it
    /// when it deletes its data. A target that does not answer keeps its
    /// copy, which `atrium kept` lists and `atrium purge` removes later.
    async fn remove_moved_copies(&self, record: &AppInstanceRecord) -> Result<(), AppApplyError> {
        let id = record.spec.id.to_string();
        for target in self.targets.names().into_iter().filter(|target| *target != record.spec.target) {
            let copies = async {
                let runtime = self.targets.runtime(target).await.map_err(|error| error_chain(&error))?;
                let volumes = runtime.list_managed_volumes().await.map_err(|error| error_chain(&error))?;
                for volume in volumes.iter().filter(|volume| {
                    volume.labels.get(labels::INSTANCE) == Some(&id)
                        && volume.labels.get(labels::OWNER) == Some(&record.owner)
                }) {
                    runtime.remove_volume(&volume.name).await.map_err(|error| error_chain(&error))?;
                }
                Ok::<(), String>(())
            };
            // A target that does not answer soon keeps its copy: a destroy never waits on it.
            let copies = tokio::time::timeout(MOVED_COPIES_WAIT, copies)
                .await
                .unwrap_or_else(|_| Err(format!("it did not answer within {} s", MOVED_COPIES_WAIT.as_secs())));
            if let Err(error) = copies {
                tracing::warn!(instance = %id, target, %error, "the copy of the data a move left there is kept");
            }
        }
        Ok(())
    }

    /// Before an instance goes: refuses while domains of another owner (or
    /// an interrupted create) still serve it; returns this owner's own live
    /// domains (the instance is being replaced, and the new one takes them
    /// over), which answer with an "unavailable" page meanwhile, never a
    /// removed container.
    async fn domains_to_release(
        &self,
        record: &AppInstanceRecord,
    ) -> Result<Vec<crate::model::domain::DomainRecord>, AppApplyError> {
        use crate::model::ownership::{Dependent, ObjectKind};
        let id = &record.spec.id;
        let domains = self.registry.domains_of_instance(id).await.map_err(self.registry_error(id))?;
        let mut dependents = Vec::new();
        let mut own = Vec::new();
        for domain in domains {
            let key = domain.spec.hostname.to_string();
            let claim = self.registry.get_claim(ObjectKind::Domain, &key).await.map_err(self.registry_error(id))?;
            match claim {
                Some(claim) if &claim.owner == self.owner && claim.confirmed => own.push(domain),
                Some(claim) => dependents.push(Dependent {
                    kind: ObjectKind::Domain,
                    key,
                    owner: claim.owner,
                    confirmed: claim.confirmed,
                }),
                None => dependents.push(Dependent {
                    kind: ObjectKind::Domain,
                    key,
                    owner: crate::model::ownership::Owner::from_stored(&domain.owner),
                    confirmed: true,
                }),
            }
        }
        if !dependents.is_empty() {
            return Err(AppApplyError::HasDependents { id: id.clone(), dependents });
        }
        own.retain(|domain| domain.status == crate::model::domain::DomainStatus::Active);
        Ok(own)
    }
}

/// The instance's own live domains answer with an "unavailable" page while
/// it goes; the undo points them back at it.
struct ReplacedPage {
    domains: Vec<crate::model::domain::DomainRecord>,
    record: AppInstanceRecord,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for ReplacedPage {
    fn name(&self) -> String {
        "routes of the instance's domains to the unavailable page".to_owned()
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        use crate::backends::ingress::{RouteHandler, RouteSpec};
        for domain in &self.domains {
            let ingress = context.app.targets.ingress(&domain.target).await.map_err(StepError::permanent)?;
            let route = RouteSpec {
                hostname: domain.spec.hostname.to_string(),
                tls: domain.spec.tls == crate::model::domain::TlsMode::Acme,
                handler: RouteHandler::Suspended {
                    message: "This service is being replaced and is back in a moment.".to_owned(),
                },
            };
            ingress.put_route(&route, context.app.deadline).await.map_err(StepError::from_backend)?;
        }
        Ok(())
    }
    async fn undo(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        if self.domains.is_empty() {
            return Ok(());
        }
        context.app.repoint_routes(&self.record).await.map_err(StepError::from_backend)
    }
}

/// Every container of the instance goes; the undo starts the rendered ones
/// again (sidecars first).
struct InstanceContainers {
    instance: AppInstanceId,
    rendered: Vec<ContainerSpec>,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for InstanceContainers {
    fn name(&self) -> String {
        format!("containers of {}", self.instance)
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        remove_containers_of(context.runtime.as_ref(), &self.instance).await.map_err(StepError::from_backend)
    }
    async fn undo(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        for container in &self.rendered {
            context.runtime.ensure_container(container).await.map_err(StepError::from_backend)?;
        }
        Ok(())
    }
}

/// A data volume goes with the instance (`delete_data_on_destroy`): the
/// data cannot come back, so the destroy is past its point of no return.
struct RemoveVolume(String);

#[async_trait]
impl<'a> Step<DeployContext<'a>> for RemoveVolume {
    fn name(&self) -> String {
        format!("volume {}", self.0)
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        context.runtime.remove_volume(&self.0).await.map_err(StepError::from_backend)
    }
    async fn undo(&self, _: &DeployContext<'a>) -> Result<(), StepError> {
        Ok(())
    }
    fn forward_only(&self) -> bool {
        true
    }
}

/// The instance's row and the claim on its name go in one transaction; the
/// undo puts both back.
struct InstanceRow {
    record: AppInstanceRecord,
    claim: Option<crate::model::ownership::Claim>,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for InstanceRow {
    fn name(&self) -> String {
        "app instance row".to_owned()
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let kind = crate::model::ownership::ObjectKind::AppInstance;
        let key = self.record.spec.id.to_string();
        context.app.registry.delete_with_claim(kind, &key).await.map(drop).map_err(registry_step_error)
    }
    async fn undo(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let registry = context.app.registry;
        registry.put_app_instance(&self.record).await.map_err(registry_step_error)?;
        match &self.claim {
            Some(claim) => registry.restore_claim(claim).await.map_err(registry_step_error),
            None => Ok(()),
        }
    }
}

/// What the steps of one deployment share.
struct DeployContext<'a> {
    app: &'a AppContext<'a>,
    runtime: Arc<dyn Runtime>,
    /// The target a move leaves (its runtime), while `runtime` is the one it goes to.
    origin: Option<Arc<dyn Runtime>>,
    /// The record as the record step wrote it.
    written: std::sync::Mutex<Option<AppInstanceRecord>>,
}

/// Removes app containers of generations the registry does not record (an
/// interrupted deployment's), keeping `keep`. Nothing to undo.
struct Leftovers {
    instance: AppInstanceId,
    keep: Option<u32>,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for Leftovers {
    fn name(&self) -> String {
        "containers of unrecorded generations".to_owned()
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let id_label = self.instance.to_string();
        for container in context.runtime.list_managed().await.map_err(StepError::from_backend)? {
            let ours = container.labels.get(labels::INSTANCE) == Some(&id_label)
                && container.labels.get(labels::ROLE).map(String::as_str) == Some("app");
            let generation = container.labels.get(labels::GENERATION).and_then(|g| g.parse::<u32>().ok());
            if ours && generation != self.keep {
                tracing::info!(instance = %self.instance, container = %container.name, "removing a container left by an interrupted apply");
                context.runtime.remove_container(&container.name).await.map_err(StepError::from_backend)?;
            }
        }
        Ok(())
    }
    async fn undo(&self, _: &DeployContext<'a>) -> Result<(), StepError> {
        Ok(())
    }
}

/// The tenant's network (present: it exists).
struct Network {
    name: String,
    labels: BTreeMap<String, String>,
}

#[async_trait]
impl<'a> Part<DeployContext<'a>> for Network {
    type Value = ();
    fn name(&self) -> String {
        format!("network {}", self.name)
    }
    async fn make(&self, context: &DeployContext<'a>, exists: Option<&()>) -> Result<(), StepError> {
        match exists {
            Some(()) => context.runtime.ensure_network(&self.name, &self.labels).await,
            None => context.runtime.remove_network_if_unused(&self.name).await,
        }
        .map_err(StepError::from_backend)
    }
}

/// A data volume; its undo removes it only if this step created it, so a
/// volume that existed before (kept data) is never removed by an undo.
struct Volume {
    spec: VolumeSpec,
    created: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for Volume {
    fn name(&self) -> String {
        format!("volume {}", self.spec.name)
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let created = context.runtime.ensure_volume(&self.spec).await.map_err(StepError::from_backend)?;
        self.created.fetch_or(created, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
    async fn undo(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        if !self.created.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        context.runtime.remove_volume(&self.spec.name).await.map_err(StepError::from_backend)
    }
}

/// How long a deployment waits for the backup container to run.
const BACKUP_STARTS_WITHIN: Duration = Duration::from_secs(30);

/// A container, started and healthy; its undo puts back the one it replaced
/// (a sidecar) or removes it (a new generation's app container).
struct Container {
    before: Option<ContainerSpec>,
    after: ContainerSpec,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for Container {
    fn name(&self) -> String {
        format!("container {}", self.after.name)
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let runtime = &context.runtime;
        runtime.ensure_container(&self.after).await.map_err(StepError::from_backend)?;
        // The backup container's health says whether the last scheduled
        // backup failed, checked once a minute: there is no readiness to
        // wait for (Docker would say `starting` for that first minute), only
        // its start (a swarm's task starts a moment after its service, and
        // is `starting` until its first check).
        if self.after.role == ContainerRole::Sidecar(crate::catalog::BACKUP_ROLE.to_owned()) {
            let started = tokio::time::Instant::now();
            loop {
                let observed = runtime.inspect(&self.after.name).await.map_err(StepError::from_backend)?;
                if observed.is_some_and(|container| container.is_up()) {
                    return Ok(());
                }
                if started.elapsed() >= BACKUP_STARTS_WITHIN
                    || crate::backends::retry::remaining(context.app.deadline).is_zero()
                {
                    return Err(StepError::permanent(format!(
                        "the backup container {} stopped (it did not run within {BACKUP_STARTS_WITHIN:?})",
                        self.after.name
                    )));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        let remaining = crate::backends::retry::remaining(context.app.deadline);
        runtime.wait_healthy(&self.after.name, remaining).await.map_err(StepError::from_backend)
    }
    async fn undo(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        match &self.before {
            Some(before) => context.runtime.ensure_container(before).await,
            None => context.runtime.remove_container(&self.after.name).await,
        }
        .map_err(StepError::from_backend)
    }
}

/// The instance's registry row, with the port its app container publishes.
struct Record {
    before: Option<AppInstanceRecord>,
    after: AppInstanceRecord,
    app_container: String,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for Record {
    fn name(&self) -> String {
        "app instance row".to_owned()
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let observed = context.runtime.inspect(&self.app_container).await.map_err(StepError::from_backend)?;
        let record = observed
            .and_then(|observed| {
                // Of several copies, the one recorded before, while it runs.
                let host = match &self.after.published_host {
                    Some(recorded) if observed.published_hosts.contains(recorded) => Some(recorded.clone()),
                    _ => observed.published_host,
                };
                self.after.with_address(observed.published_port, host)
            })
            .unwrap_or_else(|| self.after.clone());
        context.app.registry.put_app_instance(&record).await.map_err(registry_step_error)?;
        *context.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(record);
        Ok(())
    }
    async fn undo(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let registry = context.app.registry;
        match &self.before {
            Some(before) => registry.put_app_instance(before).await,
            None => registry.delete_app_instance(&self.after.spec.id).await.map(drop),
        }
        .map_err(registry_step_error)
    }
}

/// The instance's domains' routes, switched to the new container; the undo
/// points them back at the old one (which is still there).
struct Routes {
    before: Option<AppInstanceRecord>,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for Routes {
    fn name(&self) -> String {
        "routes of the instance's domains".to_owned()
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let written = context.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match written {
            Some(record) => context.app.repoint_routes(&record).await.map_err(StepError::from_backend),
            None => Err(StepError::permanent("the instance's row was not written before its routes")),
        }
    }
    async fn undo(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        match &self.before {
            Some(before) => context.app.repoint_routes(before).await.map_err(StepError::from_backend),
            None => Ok(()),
        }
    }
}

/// The old generation's app container goes, once nothing points at it:
/// the deployment's point of no return (the new generation stays).
struct RemoveContainer(String);

#[async_trait]
impl<'a> Step<DeployContext<'a>> for RemoveContainer {
    fn name(&self) -> String {
        format!("old container {}", self.0)
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        context.runtime.remove_container(&self.0).await.map_err(StepError::from_backend)
    }
    async fn undo(&self, _: &DeployContext<'a>) -> Result<(), StepError> {
        Ok(())
    }
    fn forward_only(&self) -> bool {
        true
    }
}

/// The old generation's app container stops before an upgrade that changes
/// its data (nothing may write while the backup and the migration run); the
/// undo starts it again and waits for it to be healthy.
/// A restarted container publishes its port anew: the record and the
/// domains' routes follow it.
struct StopOld {
    container: String,
    /// The old version's backup container, stopped first and started again
    /// by the undo.
    backups: Option<ContainerSpec>,
    record: AppInstanceRecord,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for StopOld {
    fn name(&self) -> String {
        format!("stop {} for the upgrade", self.container)
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        if let Some(backups) = &self.backups {
            context.runtime.stop_container(&backups.name).await.map_err(StepError::from_backend)?;
        }
        context.runtime.stop_container(&self.container).await.map_err(StepError::from_backend)
    }
    async fn undo(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let runtime = &context.runtime;
        if let Some(backups) = &self.backups {
            runtime.ensure_container(backups).await.map_err(StepError::from_backend)?;
        }
        runtime.start_container(&self.container).await.map_err(StepError::from_backend)?;
        serve_again(context, runtime.as_ref(), &self.container, &self.record).await
    }
    fn undo_grace(&self) -> Duration {
        crate::apply::runner::DATA_UNDO_GRACE
    }
}

/// How long a destroy that deletes an instance's data waits for each other
/// target to remove the copy a move may have left there.
const MOVED_COPIES_WAIT: Duration = Duration::from_secs(10);

/// A move's steps: the network on the new target; the app stops on the old
/// one (its data holds still); its volumes are copied; its containers start
/// on the new target, each healthy; the record and the domains' routes
/// switch; then the old containers go (the point of no return), and the old
/// target keeps its copy of the data. Undo, from any step before that: the
/// copies and containers on the new target go, the app starts again on the
/// old one, and its routes point there.
fn move_steps<'s>(
    old: &AppInstanceRecord,
    leaving: &RenderedApp,
    rendered: &RenderedApp,
    record: AppInstanceRecord,
) -> Vec<Box<dyn Step<DeployContext<'s>>>> {
    let mut steps: Vec<Box<dyn Step<DeployContext<'s>>>> =
        vec![Box::new(Leftovers { instance: old.spec.id.clone(), keep: None })];
    let network = Network { name: rendered.network.clone(), labels: rendered.network_labels.clone() };
    steps.push(Box::new(Transition::new(network, None, Some(()))));
    steps.push(Box::new(StopOrigin { containers: leaving.containers.clone(), record: old.clone() }));
    steps.push(Box::new(CopyData {
        volumes: rendered.volumes.clone(),
        from_image: leaving.app_container().image.clone(),
        to_image: rendered.app_container().image.clone(),
        destination: record.spec.target.clone(),
    }));
    for container in &rendered.containers {
        steps.push(Box::new(Container { before: None, after: container.clone() }));
    }
    let app_container = rendered.app_container().name.clone();
    steps.push(Box::new(Record { before: Some(old.clone()), after: record, app_container }));
    steps.push(Box::new(Routes { before: Some(old.clone()) }));
    steps.push(Box::new(LeaveOrigin { instance: old.spec.id.clone(), network: leaving.network.clone() }));
    steps
}

/// Removes every container of `instance` on a target (a move left it), and
/// the tenant's network there when nothing else uses it.
async fn remove_instance_containers(
    runtime: &dyn Runtime,
    instance: &AppInstanceId,
    network: &str,
) -> Result<(), RuntimeError> {
    remove_containers_of(runtime, instance).await?;
    runtime.remove_network_if_unused(network).await
}

/// Removes every container of `instance` on a target, whatever its generation.
async fn remove_containers_of(runtime: &dyn Runtime, instance: &AppInstanceId) -> Result<(), RuntimeError> {
    let id = instance.to_string();
    for container in runtime.list_managed().await? {
        if container.labels.get(labels::INSTANCE) == Some(&id) {
            runtime.remove_container(&container.name).await?;
        }
    }
    Ok(())
}

/// The move's origin, which only a move's context has.
fn origin<'c>(context: &'c DeployContext<'_>) -> Result<&'c Arc<dyn Runtime>, StepError> {
    context.origin.as_ref().ok_or_else(|| StepError::permanent("a move's step ran without the target it leaves"))
}

/// The instance's containers stop on the target it leaves (the backup
/// container first, the app, then its other sidecars), so that its data
/// holds still while it is copied. The undo starts them again (the app
/// healthy), and the record and the routes follow the app's new port.
struct StopOrigin {
    /// As rendered from the record: sidecars first, the app last.
    containers: Vec<ContainerSpec>,
    record: AppInstanceRecord,
}

impl StopOrigin {
    /// The order they stop in: the backup container, the app, then the rest.
    fn stopping(&self) -> Vec<&ContainerSpec> {
        let backup = ContainerRole::Sidecar(crate::catalog::BACKUP_ROLE.to_owned());
        let rank = |c: &ContainerSpec| match &c.role {
            role if *role == backup => 0,
            ContainerRole::App => 1,
            _ => 2,
        };
        let mut ordered: Vec<&ContainerSpec> = self.containers.iter().collect();
        ordered.sort_by_key(|c| rank(c));
        ordered
    }
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for StopOrigin {
    fn name(&self) -> String {
        format!("stop the app on target {} for the move", self.record.spec.target)
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let origin = origin(context)?;
        for container in self.stopping() {
            origin.stop_container(&container.name).await.map_err(StepError::from_backend)?;
        }
        Ok(())
    }
    async fn undo(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let origin = origin(context)?;
        for container in self.stopping().into_iter().rev() {
            origin.start_container(&container.name).await.map_err(StepError::from_backend)?;
        }
        let app = self.containers.iter().find(|c| c.role == ContainerRole::App).map(|c| c.name.clone());
        let Some(app) = app else { return Ok(()) };
        serve_again(context, origin.as_ref(), &app, &self.record).await
    }
    fn undo_grace(&self) -> Duration {
        crate::apply::runner::DATA_UNDO_GRACE
    }
}

/// The instance's volumes, copied from the target it leaves to the one it
/// goes to (made anew there); a volume the old target does not have (a
/// backup repository never written) is made empty. The undo removes the
/// copies: the old target's volumes were only read.
struct CopyData {
    volumes: Vec<VolumeSpec>,
    from_image: String,
    to_image: String,
    destination: String,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for CopyData {
    fn name(&self) -> String {
        format!("copy the data to target {}", self.destination)
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let origin = origin(context)?;
        let present: Vec<String> = origin
            .list_managed_volumes()
            .await
            .map_err(StepError::from_backend)?
            .into_iter()
            .map(|volume| volume.name)
            .collect();
        for volume in &self.volumes {
            if !present.contains(&volume.name) {
                context.runtime.ensure_volume(volume).await.map_err(StepError::from_backend)?;
                continue;
            }
            let started = tokio::time::Instant::now();
            let bytes = crate::backends::copy_volume(
                volume,
                (origin.as_ref(), &self.from_image),
                (context.runtime.as_ref(), &self.to_image, &self.destination),
            )
            .await
            .map_err(StepError::from_backend)?;
            tracing::info!(volume = %volume.name, bytes, elapsed_ms = started.elapsed().as_millis() as u64, "volume copied");
        }
        Ok(())
    }
    async fn undo(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        for volume in &self.volumes {
            context.runtime.remove_volume(&volume.name).await.map_err(StepError::from_backend)?;
        }
        Ok(())
    }
}

/// The containers on the target the instance left go, once its routes
/// point at the new one: the move's point of no return. The old target's
/// volumes stay (its copy of the data), as does its network for the
/// tenant's other instances there.
struct LeaveOrigin {
    instance: AppInstanceId,
    network: String,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for LeaveOrigin {
    fn name(&self) -> String {
        "the containers on the target the instance left".to_owned()
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        let origin = origin(context)?;
        remove_instance_containers(origin.as_ref(), &self.instance, &self.network)
            .await
            .map_err(StepError::from_backend)?;
        let written = context.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let Some(record) = written else {
            return Err(StepError::permanent("the instance's row was not written before the move finished"));
        };
        let left = AppInstanceRecord { moved_from: None, ..record };
        context.app.registry.put_app_instance(&left).await.map_err(registry_step_error)?;
        *context.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(left);
        Ok(())
    }
    async fn undo(&self, _: &DeployContext<'a>) -> Result<(), StepError> {
        Ok(())
    }
    fn forward_only(&self) -> bool {
        true
    }
}

/// An app container started again by an undo: once it is healthy, the
/// record and the domains' routes follow the port it publishes anew.
async fn serve_again(
    context: &DeployContext<'_>,
    runtime: &dyn Runtime,
    app: &str,
    record: &AppInstanceRecord,
) -> Result<(), StepError> {
    let remaining = crate::backends::retry::remaining(crate::apply::runner::DATA_UNDO_GRACE);
    runtime.wait_healthy(app, remaining).await.map_err(StepError::from_backend)?;
    let observed = runtime.inspect(app).await.map_err(StepError::from_backend)?;
    if let Some(refreshed) =
        observed.and_then(|observed| record.with_address(observed.published_port, observed.published_host))
    {
        context.app.registry.put_app_instance(&refreshed).await.map_err(registry_step_error)?;
        context.app.repoint_routes(&refreshed).await.map_err(StepError::from_backend)?;
    }
    Ok(())
}

/// Runs an upgrade's one-shot job within the operation's deadline: `None`
/// when it succeeded, else how it failed (for `release`, with `kept` saying
/// what serves once the failure is undone).
async fn run_job(
    context: &DeployContext<'_>,
    job: &ContainerSpec,
    release: &str,
    kept: &str,
) -> Result<Option<Box<JobFailure>>, StepError> {
    let remaining = crate::backends::retry::remaining(context.app.deadline);
    let ran = context.runtime.run_once(job, remaining).await.map_err(StepError::from_backend)?;
    Ok((ran.exit_code != Some(0)).then(|| {
        Box::new(JobFailure {
            release: release.to_owned(),
            exit_code: ran.exit_code,
            kept: kept.to_owned(),
            output: ran.output,
        })
    }))
}

/// The backup taken before an upgrade's migration (a one-shot job); its
/// undo puts it back, so the old version starts again on its own data.
struct Backup {
    id: AppInstanceId,
    release: String,
    kept: String,
    backup: ContainerSpec,
    restore: ContainerSpec,
    /// Whether the backup is complete: only a complete one is put back.
    taken: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for Backup {
    fn name(&self) -> String {
        "backup before the upgrade".to_owned()
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        match run_job(context, &self.backup, &self.release, &self.kept).await? {
            None => {
                self.taken.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
            Some(failure) => Err(StepError::permanent(AppApplyError::Backup { id: self.id.clone(), failure })),
        }
    }
    async fn undo(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        if !self.taken.load(std::sync::atomic::Ordering::SeqCst) {
            // Nothing was changed yet, and an incomplete backup is no backup.
            return Ok(());
        }
        let remaining = crate::backends::retry::remaining(crate::apply::runner::DATA_UNDO_GRACE);
        let ran = context.runtime.run_once(&self.restore, remaining).await.map_err(StepError::from_backend)?;
        if ran.exit_code == Some(0) {
            return Ok(());
        }
        Err(StepError::permanent(format!(
            "putting back the backup taken before the upgrade failed (exit code {:?}); the backup stays in volume {} for the next apply. Its output: {}",
            ran.exit_code,
            self.restore.mounts.first().map_or("", |(volume, _)| volume.as_str()),
            ran.output
        )))
    }
    fn undo_grace(&self) -> Duration {
        crate::apply::runner::DATA_UNDO_GRACE
    }
}

/// The upgrade's migration: a one-shot container of the new version. The
/// data it changed is put back by the backup's undo.
struct Migrate {
    id: AppInstanceId,
    release: String,
    kept: String,
    job: ContainerSpec,
}

#[async_trait]
impl<'a> Step<DeployContext<'a>> for Migrate {
    fn name(&self) -> String {
        format!("migration to {}", self.release)
    }
    async fn apply(&self, context: &DeployContext<'a>) -> Result<(), StepError> {
        match run_job(context, &self.job, &self.release, &self.kept).await? {
            None => Ok(()),
            Some(failure) => Err(StepError::permanent(AppApplyError::Migration { id: self.id.clone(), failure })),
        }
    }
    async fn undo(&self, _: &DeployContext<'a>) -> Result<(), StepError> {
        // The job removed its container; the backup's undo puts the data back.
        Ok(())
    }
}
