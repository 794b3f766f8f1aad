//! Deploying and destroying app instances: ordered, idempotent steps with undo.
//!
//! A deployment renders the catalog entry, then: network → volumes →
//! sidecars (healthy) → the app container of a *new generation* beside the
//! old one → its health check → the registry records the new generation →
//! the old container goes. If the new container never turns healthy it is
//! removed and the old one keeps serving (for a first deployment, everything
//! this run made is removed, data volumes that existed before excepted).
//!
//! The registry row is the journal: a run cut off before it recorded the new
//! generation leaves a container of an unrecorded generation, and the next run
//! removes it before it starts (undo); a run cut off after recording it leaves
//! the old generation, which the next run removes too (finish).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::apply::welcome::welcome_email;
use crate::backends::mailer::Mailer;
use crate::backends::targets::{TargetError, Targets};
use crate::backends::{ObservedContainer, Runtime, RuntimeError, with_retries};
use crate::catalog::{
    Catalog, CatalogEntry, ContainerRole, RenderInput, RenderedApp, VolumeSpec, labels, render, render_manager_command,
    render_public_address_command, render_user_limit_command, required_secrets,
};
use crate::model::app_instance::{AppInstanceId, AppInstanceRecord, AppInstanceSpec, InstanceHealth, WelcomeState};
use crate::model::password::Password;
use crate::model::tenant::{TenantRecord, TenantStatus};
use crate::observe::AppObservations;
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
    #[error("tenant {tenant} of app instance {id} is suspended ({reason})")]
    Suspended { id: AppInstanceId, tenant: String, reason: String },
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
        "{}; undoing what it had made failed too ({}), so the next apply finishes or undoes it",
        crate::backends::error_chain(error.as_ref()),
        failures.join("; ")
    )]
    UndoFailed { error: Box<AppApplyError>, failures: Vec<String> },
    #[error("app instance {id} runs, but its domains' routes could not be pointed at it")]
    Routes {
        id: AppInstanceId,
        #[source]
        source: Box<crate::apply::domain::DomainApplyError>,
    },
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
            AppApplyError::Claim(error) => error.is_retryable(),
            AppApplyError::UndoFailed { error, .. } => error.is_retryable(),
            _ => false,
        }
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
    pub owner: &'a crate::model::ownership::Owner,
    pub deadline: Duration,
    pub cancelled: tokio::sync::watch::Receiver<bool>,
}

/// Renders a recorded (or planned) instance at `generation`.
pub fn render_instance(
    entry: &CatalogEntry,
    spec: &AppInstanceSpec,
    tenant: &TenantRecord,
    owner: &str,
    generation: u32,
    secrets: &BTreeMap<String, String>,
    manager_password_hash: &str,
) -> Result<RenderedApp, String> {
    let input = render_input(spec, tenant, owner, generation, secrets, manager_password_hash);
    let mut app = render(entry, &input)?;
    add_extra_volumes(&mut app, spec);
    Ok(app)
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
fn recorded_input<'a>(record: &'a AppInstanceRecord, tenant: &'a TenantRecord) -> RenderInput<'a> {
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
    if !observed.running || observed.health == "unhealthy" {
        return InstanceHealth::Stopped;
    }
    InstanceHealth::Running
}

fn generate_secret() -> String {
    crate::model::password::random_bytes::<18>().iter().map(|b| format!("{b:02x}")).collect()
}

impl AppContext<'_> {
    fn registry_error(&self, id: &AppInstanceId) -> impl FnOnce(RegistryError) -> AppApplyError {
        let id = id.clone();
        move |source| AppApplyError::Registry { id, source: Box::new(source) }
    }

    fn runtime_error(&self, id: &AppInstanceId, target: &str) -> impl FnOnce(RuntimeError) -> AppApplyError {
        let (id, target) = (id.clone(), target.to_owned());
        move |source| AppApplyError::Target { id, target, source: Box::new(TargetError::Runtime(source)) }
    }

    async fn runtime(&self, id: &AppInstanceId, target: &str) -> Result<Arc<dyn Runtime>, AppApplyError> {
        self.targets.runtime(target).await.map_err(|source| AppApplyError::Target {
            id: id.clone(),
            target: target.to_owned(),
            source: Box::new(source),
        })
    }

    fn entry(&self, spec: &AppInstanceSpec) -> Result<&CatalogEntry, AppApplyError> {
        self.catalog.get(&spec.app).ok_or_else(|| AppApplyError::Catalog {
            id: spec.id.clone(),
            reason: format!("no app {:?} in the catalog", spec.app),
        })
    }

    async fn tenant(&self, spec: &AppInstanceSpec) -> Result<TenantRecord, AppApplyError> {
        self.registry
            .get_tenant(&spec.id.tenant_id)
            .await
            .map_err(self.registry_error(&spec.id))?
            .ok_or_else(|| AppApplyError::TenantMissing { id: spec.id.clone(), tenant: spec.id.tenant_id.to_string() })
    }

    async fn repoint_routes(&self, record: &AppInstanceRecord) -> Result<(), AppApplyError> {
        crate::apply::domain::repoint_routes(self.registry, self.targets, record, self.deadline)
            .await
            .map(drop)
            .map_err(|source| AppApplyError::Routes { id: record.spec.id.clone(), source: Box::new(source) })
    }

    /// Renders a recorded instance as it was deployed: its generation, secrets and password hash.
    fn render_record(&self, record: &AppInstanceRecord, tenant: &TenantRecord) -> Result<RenderedApp, AppApplyError> {
        let entry = self.entry(&record.spec)?;
        render(entry, &recorded_input(record, tenant))
            .map(|mut app| {
                add_extra_volumes(&mut app, &record.spec);
                app
            })
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
        let health = match compare(observed.as_ref(), &rendered) {
            // A suspended tenant's containers are meant to be stopped.
            InstanceHealth::Stopped if tenant.status != TenantStatus::Active => InstanceHealth::Suspended,
            InstanceHealth::Running if tenant.status != TenantStatus::Active => InstanceHealth::Drifted,
            health => health,
        };
        Ok(Some((record, health)))
    }

    /// Removes app containers of this instance whose generation the registry does not record.
    async fn remove_unrecorded_generations(
        &self,
        runtime: &dyn Runtime,
        spec: &AppInstanceSpec,
        keep: Option<u32>,
    ) -> Result<(), AppApplyError> {
        let id_label = spec.id.to_string();
        let containers = with_retries(self.deadline, || runtime.list_managed())
            .await
            .map_err(self.runtime_error(&spec.id, &spec.target))?;
        for container in containers {
            let ours = container.labels.get(labels::INSTANCE) == Some(&id_label)
                && container.labels.get(labels::ROLE).map(String::as_str) == Some("app");
            let generation = container.labels.get(labels::GENERATION).and_then(|g| g.parse::<u32>().ok());
            if ours && generation != keep {
                tracing::info!(instance = %spec.id, container = %container.name, "removing a container left by an interrupted apply");
                with_retries(self.deadline, || runtime.remove_container(&container.name))
                    .await
                    .map_err(self.runtime_error(&spec.id, &spec.target))?;
            }
        }
        Ok(())
    }

    /// Deploys `spec`: creates the instance (`create` carries the create's
    /// token, which claims the instance's name first), or upgrades/repairs it
    /// with a health-checked switch.
    pub async fn deploy(
        &self,
        spec: &AppInstanceSpec,
        create: Option<&crate::model::ownership::CreateToken>,
    ) -> Result<Deployment, AppApplyError> {
        if *self.cancelled.borrow() {
            return Err(AppApplyError::Cancelled { id: spec.id.clone() });
        }
        self.observations.clear().await;
        let kind = crate::model::ownership::ObjectKind::AppInstance;
        let key = spec.id.to_string();
        let decision = match create {
            Some(token) => Some(
                crate::apply::claims::claim(self.registry, kind, &key, &spec.id.tenant_id, self.owner, token).await?,
            ),
            None => None,
        };
        let _slot = self.targets.deployment_slot(&spec.target).await;
        let deployed = self.deploy_steps(spec).await;
        // A new create that failed and left nothing (no row; its undo, if
        // any, complete) frees the name again. An interrupted create it was
        // resuming keeps its claim: what that one made may still be there.
        if let (Err(error), Some(token), Some(crate::model::ownership::CreateDecision::New)) =
            (&deployed, create, &decision)
            && !matches!(error, AppApplyError::UndoFailed { .. })
            && matches!(self.registry.get_app_instance(&spec.id).await, Ok(None))
            && let Err(release_error) = self.registry.release_claim_of(kind, &key, token).await
        {
            tracing::warn!(instance = %spec.id, error = %release_error, "cannot release the name of a failed create");
        }
        let result = match deployed {
            Ok(deployment) => match self.create_manager_account(deployment).await {
                Ok(deployment) => match self.apply_user_limit(&deployment).await {
                    Ok(()) => match self.announce_address(&deployment.record).await {
                        Ok(()) => self.send_welcome(deployment).await,
                        Err(error) => Err(error),
                    },
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        self.observations.clear().await;
        result
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
        let mut commands = Vec::new();
        if !rendered.login_files.is_empty() {
            with_retries(self.deadline, || runtime.write_files(&container, &rendered.login_files))
                .await
                .map_err(runtime_error())?;
            commands.extend(entry.manager_account.reload.clone());
        }
        let command = manager_command(entry, record, &tenant, password)
            .map_err(|reason| AppApplyError::Catalog { id: id.clone(), reason })?;
        commands.extend(command);
        for command in commands {
            let ran = runtime.exec(&container, &command).await.map_err(runtime_error())?;
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
        let ran = runtime.exec(&container, command).await.map_err(self.runtime_error(id, &record.spec.target))?;
        if ran.exit_code == Some(0) {
            return Ok(Ok(()));
        }
        Ok(Err((ran.exit_code, ran.output.trim().chars().take(2000).collect())))
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
    pub async fn announce_address_of(&self, id: &AppInstanceId) -> Result<(), AppApplyError> {
        match self.registry.get_app_instance(id).await.map_err(self.registry_error(id))? {
            Some(record) => self.announce_address(&record).await,
            None => Ok(()),
        }
    }

    /// Sends the welcome email of a deployment that set a new password while
    /// its welcome is due (a first deployment, a send that failed before, or
    /// one waiting for a domain). Without a live domain there is no address
    /// the customer can reach, so the email waits for the instance's first
    /// domain (`waiting_for_domain`). A failed send leaves it pending and
    /// becomes a warning: the app itself is deployed.
    async fn send_welcome(&self, mut deployment: Deployment) -> Result<Deployment, AppApplyError> {
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
        let email = welcome_email(&tenant, &deployment.record.spec, entry, &addresses, shown_password);
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
        // A given password stays (the email then says so); a generated one is new.
        let password = Password::generate();
        let mut record = record;
        if !record.password_given {
            record.manager_password_hash = password.hash();
            self.registry.put_app_instance(&record).await.map_err(self.registry_error(id))?;
        }
        self.observations.clear().await;
        let deployment = Deployment { record, new_manager_password: Some(password), welcome_warning: None };
        let deployment =
            if deployment.record.password_given { deployment } else { self.create_manager_account(deployment).await? };
        let deployment = self.send_welcome(deployment).await?;
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

    async fn deploy_steps(&self, spec: &AppInstanceSpec) -> Result<Deployment, AppApplyError> {
        let tenant = self.tenant(spec).await?;
        if tenant.status != TenantStatus::Active {
            return Err(AppApplyError::Suspended {
                id: spec.id.clone(),
                tenant: tenant.spec.name.to_string(),
                reason: tenant.spec.status_reason(tenant.status).unwrap_or_default(),
            });
        }
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
        let runtime = self.runtime(&spec.id, &spec.target).await?;
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
        let render_at = |generation: u32, secrets: &BTreeMap<String, String>| {
            render_instance(entry, spec, &tenant, self.owner.as_str(), generation, secrets, &manager_password_hash)
                .map_err(|reason| AppApplyError::Catalog { id: spec.id.clone(), reason })
        };
        let secrets = match &existing {
            Some(record) => record.secrets.clone(),
            None => required_secrets(entry).into_iter().map(|name| (name, generate_secret())).collect(),
        };

        // Nothing to deploy when the recorded container already matches the spec.
        if let Some(record) = &existing {
            let current = render_at(record.generation, &secrets)?;
            let observed = runtime
                .inspect(&current.app_container().name)
                .await
                .map_err(self.runtime_error(&spec.id, &spec.target))?;
            if compare(observed.as_ref(), &current) == InstanceHealth::Running && record.spec.target == spec.target {
                self.remove_unrecorded_generations(runtime.as_ref(), spec, Some(record.generation)).await?;
                let updated = AppInstanceRecord {
                    spec: AppInstanceSpec { admin_password: None, ..spec.clone() },
                    manager_password_hash: manager_password_hash.clone(),
                    password_given,
                    ..record.clone()
                };
                self.registry.put_app_instance(&updated).await.map_err(self.registry_error(&spec.id))?;
                self.repoint_routes(&updated).await?;
                return Ok(Deployment { record: updated, new_manager_password: new_password, welcome_warning: None });
            }
        }

        let old_generation = existing.as_ref().map(|r| r.generation);
        self.remove_unrecorded_generations(runtime.as_ref(), spec, old_generation).await?;
        let generation = old_generation.unwrap_or(0) + 1;
        let rendered = render_at(generation, &secrets)?;
        let runtime_error = || self.runtime_error(&spec.id, &spec.target);

        let mut created_volumes = Vec::new();
        let outcome = async {
            with_retries(self.deadline, || runtime.ensure_network(&rendered.network, &rendered.network_labels)).await?;
            for volume in &rendered.volumes {
                if with_retries(self.deadline, || runtime.ensure_volume(volume)).await? {
                    created_volumes.push(volume.name.clone());
                }
            }
            for container in &rendered.containers {
                with_retries(self.deadline, || runtime.ensure_container(container)).await?;
                runtime.wait_healthy(&container.name, crate::backends::retry::remaining(self.deadline)).await?;
            }
            with_retries(self.deadline, || runtime.inspect(&rendered.app_container().name)).await
        }
        .await;
        let observed = match outcome {
            Ok(observed) => observed,
            Err(error) => {
                // Undo: the new generation goes; a first deployment leaves nothing behind.
                let mut failures = Vec::new();
                let failure = crate::backends::error_chain(&error);
                let mut undo = |what: String, result: Result<(), RuntimeError>| {
                    if let Err(undo_error) = result {
                        failures.push(crate::backends::undo_failure(&what, &undo_error, &failure));
                    }
                };
                let app_container = &rendered.app_container().name;
                undo(
                    format!("remove container {app_container}"),
                    with_retries(self.deadline, || runtime.remove_container(app_container)).await,
                );
                if existing.is_none() {
                    for container in &rendered.containers {
                        undo(
                            format!("remove container {}", container.name),
                            with_retries(self.deadline, || runtime.remove_container(&container.name)).await,
                        );
                    }
                    for volume in &created_volumes {
                        undo(
                            format!("remove volume {volume}"),
                            with_retries(self.deadline, || runtime.remove_volume(volume)).await,
                        );
                    }
                    undo(
                        format!("remove network {}", rendered.network),
                        with_retries(self.deadline, || runtime.remove_network_if_unused(&rendered.network)).await,
                    );
                }
                let operation = if existing.is_none() { "create" } else { "update" };
                let error = match error {
                    RuntimeError::Unhealthy { output, .. } => AppApplyError::Unhealthy {
                        id: spec.id.clone(),
                        release: format!("{} {}", spec.app, spec.version),
                        kept: match &existing {
                            Some(record) => {
                                format!("version {} keeps serving and nothing else changed", record.spec.version)
                            }
                            None => "nothing was left behind".to_owned(),
                        },
                        output,
                    },
                    deadline @ RuntimeError::HealthDeadline { .. } => AppApplyError::DeadlineExceeded {
                        id: spec.id.clone(),
                        operation,
                        detail: format!(
                            "{}; {}. Raise timeouts.{operation} if the app needs longer to start",
                            crate::backends::error_chain(&deadline),
                            match &existing {
                                Some(record) => format!("version {} keeps serving", record.spec.version),
                                None => "nothing was left behind".to_owned(),
                            }
                        ),
                    },
                    other => runtime_error()(other),
                };
                return Err(if failures.is_empty() {
                    error
                } else {
                    AppApplyError::UndoFailed { error: Box::new(error), failures }
                });
            }
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
            published_port: observed.and_then(|o| o.published_port),
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
        self.registry.put_app_instance(&record).await.map_err(self.registry_error(&spec.id))?;
        // Switch: the instance's domains now reach the new container, before the old one goes.
        self.repoint_routes(&record).await?;
        if let Some(old) = old_generation {
            let old_name = crate::catalog::render_app_container_name(spec, old);
            with_retries(self.deadline, || runtime.remove_container(&old_name)).await.map_err(runtime_error())?;
        }
        Ok(Deployment { record, new_manager_password: new_password, welcome_warning: None })
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
        let Some(record) = self.registry.get_app_instance(id).await.map_err(self.registry_error(id))? else {
            // Already gone: its name is free.
            self.registry
                .release_claim(crate::model::ownership::ObjectKind::AppInstance, &id.to_string())
                .await
                .map_err(self.registry_error(id))?;
            return Ok(());
        };
        let spec = &record.spec;
        self.release_domains(&record).await?;
        let runtime = self.runtime(id, &spec.target).await?;
        let runtime_error = || self.runtime_error(id, &spec.target);
        let id_label = id.to_string();
        for container in with_retries(self.deadline, || runtime.list_managed()).await.map_err(runtime_error())? {
            if container.labels.get(labels::INSTANCE) == Some(&id_label) {
                with_retries(self.deadline, || runtime.remove_container(&container.name))
                    .await
                    .map_err(runtime_error())?;
            }
        }
        if spec.delete_data_on_destroy {
            let tenant = self.tenant(spec).await?;
            let rendered = self.render_record(&record, &tenant)?;
            for volume in &rendered.volumes {
                with_retries(self.deadline, || runtime.remove_volume(&volume.name)).await.map_err(runtime_error())?;
            }
        }
        runtime
            .remove_network_if_unused(&crate::catalog::network_name(id.tenant_id.as_str()))
            .await
            .map_err(runtime_error())?;
        self.registry.delete_app_instance(id).await.map_err(self.registry_error(id))?;
        self.registry
            .release_claim(crate::model::ownership::ObjectKind::AppInstance, &id.to_string())
            .await
            .map_err(self.registry_error(id))?;
        Ok(())
    }

    /// Before an instance goes: refuses while domains of another owner (or
    /// an interrupted create) still serve it; this owner's own domains (the
    /// instance is being replaced, and the new one takes them over) answer
    /// with an "unavailable" page meanwhile, never a removed container.
    async fn release_domains(&self, record: &AppInstanceRecord) -> Result<(), AppApplyError> {
        use crate::backends::ingress::{RouteHandler, RouteSpec};
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
        for domain in own.iter().filter(|domain| domain.status == crate::model::domain::DomainStatus::Active) {
            let hostname = domain.spec.hostname.to_string();
            let ingress = self.targets.ingress(&domain.target).await.map_err(|source| AppApplyError::Target {
                id: id.clone(),
                target: domain.target.clone(),
                source: Box::new(source),
            })?;
            let route = RouteSpec {
                hostname: hostname.clone(),
                tls: domain.spec.tls == crate::model::domain::TlsMode::Acme,
                handler: RouteHandler::Suspended {
                    message: "This service is being replaced and is back in a moment.".to_owned(),
                },
            };
            ingress.put_route(&route, self.deadline).await.map_err(|source| AppApplyError::Routes {
                id: id.clone(),
                source: Box::new(crate::apply::domain::DomainApplyError::Ingress {
                    hostname,
                    target: domain.target.clone(),
                    source: Box::new(source),
                }),
            })?;
        }
        Ok(())
    }
}
