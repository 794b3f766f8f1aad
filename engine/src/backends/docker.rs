//! The runtime on a single Docker engine, through bollard.
//!
//! Every object carries `atrium.*` labels, and every destructive call first
//! checks that the object is managed: a container, volume or network that
//! someone else made is never touched, even if it has one of our names.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig, HostConfigLogConfig,
    NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptions, UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::{ArchiveReceiver, ArchiveSender, CommandOutput, ObservedContainer, ObservedVolume, Runtime, RuntimeError};
use crate::model::container::{ContainerRole, ContainerSpec, VolumeSpec, labels};

/// A Docker engine reached at `endpoint` (`unix:///path` or `tcp://host:port`).
pub struct DockerRuntime {
    target: String,
    /// The endpoint as configured (`unix:///…` or `tcp://…`), for messages.
    endpoint: String,
    docker: Docker,
    /// Docker API requests made, for tests and benchmarks of batched observation.
    api_calls: AtomicU64,
    /// Docker accepts two networks of the same name when they are created at
    /// once (API 1.41 has no reliable duplicate check), so this process
    /// creates networks one at a time.
    network_creation: tokio::sync::Mutex<()>,
}

pub(crate) fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(error, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

pub(crate) fn is_conflict(error: &bollard::errors::Error) -> bool {
    matches!(error, bollard::errors::Error::DockerResponseServerError { status_code: 409, .. })
}

/// Where a volume being copied is mounted in its holder container.
const VOLUME_MOUNT: &str = "/atrium-volume";

/// The container through which a volume's content is read or written.
fn volume_holder_name(volume: &str) -> String {
    format!("{volume}-copy")
}

/// A tar archive of files at absolute paths, for Docker's archive upload to `/`.
fn files_archive(files: &BTreeMap<String, String>) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        archive.append_data(&mut header, path.trim_start_matches('/'), content.as_bytes())?;
    }
    archive.into_inner()
}

impl DockerRuntime {
    /// Writes files into a container. Docker creates missing parent
    /// directories; writing again is harmless.
    async fn upload_files(&self, name: &str, files: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
        if files.is_empty() {
            return Ok(());
        }
        let archive = files_archive(files).map_err(|error| RuntimeError::Api {
            target: self.target.clone(),
            operation: "write files into",
            object: name.to_owned(),
            source: Box::new(bollard::errors::Error::IOError { err: error }),
        })?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        self.api()
            .upload_to_container(name, Some(options), bollard::body_full(archive.into()))
            .await
            .map_err(self.api_error("write files into", name))
    }

    /// A container that never starts, with `volume` mounted at
    /// [`VOLUME_MOUNT`]: Docker reads and writes a volume's content only
    /// through a container's archive API. One left by an interrupted copy is
    /// replaced.
    async fn volume_holder(&self, volume: &VolumeSpec, image: &str) -> Result<String, RuntimeError> {
        let name = volume_holder_name(&volume.name);
        self.remove_container(&name).await?;
        let mut labels = volume.labels.clone();
        labels.insert(labels::MANAGED.to_owned(), "true".to_owned());
        labels.insert(labels::ROLE.to_owned(), "copy".to_owned());
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(vec!["true".to_owned()]),
            cmd: Some(Vec::new()),
            labels: Some(labels.into_iter().collect()),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{}:{VOLUME_MOUNT}", volume.name)]),
                network_mode: Some("none".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        self.api().create_container(Some(options), body).await.map_err(self.api_error("create container", &name))?;
        Ok(name)
    }

    fn copy_error(&self, volume: &str, reason: impl Into<String>) -> RuntimeError {
        RuntimeError::Copy { target: self.target.clone(), volume: volume.to_owned(), reason: reason.into() }
    }

    /// The last lines a container wrote (standard output and error), for
    /// messages; what cannot be read is said as such.
    async fn output_tail(&self, name: &str) -> String {
        let options =
            bollard::query_parameters::LogsOptionsBuilder::default().stdout(true).stderr(true).tail("40").build();
        let mut logs = self.api().logs(name, Some(options));
        let mut output = String::new();
        while let Some(chunk) = logs.next().await {
            match chunk {
                Ok(chunk) => output.push_str(&chunk.to_string()),
                Err(error) => {
                    output.push_str(&format!("(its output could not be read: {error})"));
                    break;
                }
            }
        }
        output.trim().to_owned()
    }

    /// Attaches a running container to its network again, under its alias.
    async fn attach(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        let request = bollard::models::NetworkConnectRequest {
            container: spec.name.clone(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(vec![spec.network_alias.clone()]),
                ..Default::default()
            }),
        };
        self.api()
            .connect_network(&spec.network, request)
            .await
            .map_err(self.api_error("attach to its network", &spec.name))
    }

    /// Connects and negotiates the API version with the engine; `cert_path`
    /// (ca.pem, cert.pem, key.pem) turns a `tcp://` endpoint into mutual TLS.
    pub async fn connect(target: &str, endpoint: &str, cert_path: Option<&str>) -> Result<DockerRuntime, RuntimeError> {
        let connect_error = |source| RuntimeError::Connect {
            target: target.to_owned(),
            endpoint: endpoint.to_owned(),
            source: Box::new(source),
        };
        let docker = if let Some(directory) = cert_path {
            let directory = std::path::Path::new(directory);
            Docker::connect_with_ssl(
                endpoint,
                &directory.join("key.pem"),
                &directory.join("cert.pem"),
                &directory.join("ca.pem"),
                120,
                bollard::API_DEFAULT_VERSION,
            )
            .map_err(connect_error)?
        } else if endpoint.starts_with("unix://") {
            Docker::connect_with_unix(endpoint, 120, bollard::API_DEFAULT_VERSION).map_err(connect_error)?
        } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            Docker::connect_with_http(endpoint, 120, bollard::API_DEFAULT_VERSION).map_err(connect_error)?
        } else {
            return Err(connect_error(bollard::errors::Error::UnsupportedURISchemeError { uri: endpoint.to_owned() }));
        };
        let docker = docker.negotiate_version().await.map_err(connect_error)?;
        Ok(DockerRuntime {
            target: target.to_owned(),
            endpoint: endpoint.to_owned(),
            docker,
            api_calls: AtomicU64::new(1),
            network_creation: tokio::sync::Mutex::new(()),
        })
    }

    /// The client, for a runtime built on this engine's connection (Swarm's manager).
    pub(crate) fn client(&self) -> &Docker {
        &self.docker
    }

    /// The client, counting one API request.
    fn api(&self) -> &Docker {
        self.api_calls.fetch_add(1, Ordering::Relaxed);
        &self.docker
    }

    /// The error of one API call: the engine's own answer is `Api`; a call
    /// that never got an answer (nothing listens, the connection broke) is
    /// `Connect`, which names the endpoint to check.
    fn api_error(&self, operation: &'static str, object: &str) -> impl FnOnce(bollard::errors::Error) -> RuntimeError {
        api_error(&self.target, &self.endpoint, operation, object)
    }

    fn not_managed(&self, object: String) -> RuntimeError {
        RuntimeError::NotManaged { target: self.target.clone(), object }
    }

    fn is_managed(labels: Option<&HashMap<String, String>>) -> bool {
        labels.and_then(|l| l.get(labels::MANAGED)).is_some_and(|v| v == "true")
    }

    fn to_btree(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
        labels.unwrap_or_default().into_iter().collect()
    }
}

/// The error of one API call to the engine at `endpoint`: the engine's own
/// answer is `Api`; a call that never got an answer (nothing listens, the
/// connection broke) is `Connect`, which names the endpoint to check.
pub(crate) fn api_error(
    target: &str,
    endpoint: &str,
    operation: &'static str,
    object: &str,
) -> impl FnOnce(bollard::errors::Error) -> RuntimeError {
    let (target, endpoint, object) = (target.to_owned(), endpoint.to_owned(), object.to_owned());
    move |source| match source {
        bollard::errors::Error::DockerResponseServerError { .. } => {
            RuntimeError::Api { target, operation, object, source: Box::new(source) }
        }
        _ => RuntimeError::Connect { target, endpoint, source: Box::new(source) },
    }
}

/// The most processes (and threads) one container may run.
pub(crate) const PIDS_LIMIT: i64 = 1024;

fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let port_key = spec.port.map(|port| format!("{port}/tcp"));
    let port_bindings = port_key.as_ref().map(|key| {
        HashMap::from([(
            key.clone(),
            Some(vec![match spec.host_port {
                Some(port) => PortBinding { host_ip: Some("0.0.0.0".into()), host_port: Some(port.to_string()) },
                None => PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) },
            }]),
        )])
    });
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        env: Some(spec.environment.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        exposed_ports: port_key.map(|key| vec![key]),
        healthcheck: spec.health.as_ref().map(|health| HealthConfig {
            test: Some(health.test.clone()),
            interval: Some(health.interval_nanoseconds),
            timeout: Some(health.timeout_nanoseconds),
            retries: Some(health.retries),
            start_period: Some(health.start_period_nanoseconds),
            start_interval: None,
        }),
        host_config: Some(HostConfig {
            binds: Some(spec.mounts.iter().map(|(volume, path)| format!("{volume}:{path}")).collect()),
            port_bindings,
            nano_cpus: Some(spec.nano_cpus),
            memory: Some(spec.memory_bytes),
            // Busybox httpd (and many app entrypoints) ignore SIGTERM as PID 1.
            init: Some(true),
            // A one-shot job runs once; everything else comes back after a
            // crash or a restart of the engine.
            restart_policy: Some(RestartPolicy {
                name: Some(match spec.role {
                    ContainerRole::Job(_) => RestartPolicyNameEnum::NO,
                    _ => RestartPolicyNameEnum::UNLESS_STOPPED,
                }),
                maximum_retry_count: None,
            }),
            network_mode: Some(spec.network.clone()),
            // Hardening: no process can gain privileges (setuid binaries,
            // file capabilities), every capability the catalog entry does not
            // name is dropped, a fork bomb stops at the pids limit, and logs
            // rotate instead of filling the target's disk.
            security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
            cap_drop: Some(vec!["ALL".to_owned()]),
            cap_add: Some(spec.capabilities.clone()),
            pids_limit: Some(PIDS_LIMIT),
            readonly_rootfs: Some(spec.read_only),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_owned()),
                config: Some(HashMap::from([
                    ("max-size".to_owned(), "10m".to_owned()),
                    ("max-file".to_owned(), "3".to_owned()),
                ])),
            }),
            ..Default::default()
        }),
        user: spec.user.clone(),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                spec.network.clone(),
                EndpointSettings { aliases: Some(vec![spec.network_alias.clone()]), ..Default::default() },
            )])),
        }),
        ..Default::default()
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
        let _one_at_a_time = self.network_creation.lock().await;
        match self.api().inspect_network(name, None).await {
            Ok(network) if Self::is_managed(network.labels.as_ref()) => return Ok(()),
            Ok(_) => return Err(self.not_managed(format!("network {name}"))),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(self.api_error("inspect network", name)(error)),
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        match self.api().create_network(request).await {
            Ok(_) => Ok(()),
            // Created concurrently by another instance of the same tenant.
            Err(error) if is_conflict(&error) => Ok(()),
            Err(error) => Err(self.api_error("create network", name)(error)),
        }
    }

    async fn remove_network_if_unused(&self, name: &str) -> Result<(), RuntimeError> {
        let network = match self.api().inspect_network(name, None).await {
            Ok(network) => network,
            Err(error) if is_not_found(&error) => return Ok(()),
            Err(error) => return Err(self.api_error("inspect network", name)(error)),
        };
        if !Self::is_managed(network.labels.as_ref()) {
            return Err(self.not_managed(format!("network {name}")));
        }
        if network.containers.is_some_and(|c| !c.is_empty()) {
            return Ok(());
        }
        match self.api().remove_network(name).await {
            Ok(()) => Ok(()),
            // Gone, or a container joined meanwhile: both leave nothing to do.
            Err(error) if is_not_found(&error) || is_conflict(&error) => Ok(()),
            Err(error)
                if matches!(&error, bollard::errors::Error::DockerResponseServerError { status_code: 403, .. }) =>
            {
                Ok(())
            }
            Err(error) => Err(self.api_error("remove network", name)(error)),
        }
    }

    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<bool, RuntimeError> {
        match self.api().inspect_volume(&spec.name).await {
            Ok(volume) if volume.labels.get(labels::MANAGED).is_some_and(|v| v == "true") => return Ok(false),
            Ok(_) => return Err(self.not_managed(format!("volume {}", spec.name))),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(self.api_error("inspect volume", &spec.name)(error)),
        }
        let request = VolumeCreateRequest {
            name: Some(spec.name.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.api().create_volume(request).await.map_err(self.api_error("create volume", &spec.name))?;
        Ok(true)
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        match self.api().inspect_volume(name).await {
            Ok(volume) if volume.labels.get(labels::MANAGED).is_some_and(|v| v == "true") => {}
            Ok(_) => return Err(self.not_managed(format!("volume {name}"))),
            Err(error) if is_not_found(&error) => return Ok(()),
            Err(error) => return Err(self.api_error("inspect volume", name)(error)),
        }
        match self.api().remove_volume(name, Some(RemoveVolumeOptionsBuilder::default().force(false).build())).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(self.api_error("remove volume", name)(error)),
        }
    }

    async fn ensure_container(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        if spec.replicas != 1 {
            return Err(RuntimeError::Replicas {
                target: self.target.clone(),
                container: spec.name.clone(),
                replicas: spec.replicas,
                reason: "a Docker engine runs one copy of a container; several run on a swarm target".to_owned(),
            });
        }
        match self.api().inspect_container(&spec.name, None::<InspectContainerOptions>).await {
            Ok(existing) => {
                let existing_labels = existing.config.as_ref().and_then(|c| c.labels.as_ref());
                let same_instance =
                    existing_labels.and_then(|l| l.get(labels::INSTANCE)) == spec.labels.get(labels::INSTANCE);
                if !Self::is_managed(existing_labels) || !same_instance {
                    return Err(self.not_managed(format!("container {}", spec.name)));
                }
                let running = existing.state.as_ref().and_then(|s| s.running).unwrap_or(false);
                let same_image = existing.config.as_ref().and_then(|c| c.image.as_deref()) == Some(spec.image.as_str());
                let same_files = existing_labels.and_then(|l| l.get(labels::FILES)) == spec.labels.get(labels::FILES)
                    && existing_labels.and_then(|l| l.get(labels::SPEC)) == spec.labels.get(labels::SPEC);
                let attached = existing
                    .network_settings
                    .as_ref()
                    .and_then(|settings| settings.networks.as_ref())
                    .is_some_and(|networks| networks.contains_key(&spec.network));
                if !same_image || !same_files {
                    // Changed out of band: replace it with the planned one.
                    self.remove_container(&spec.name).await?;
                } else if running && !attached {
                    // Its network was taken away (deleted and made again): attach it again.
                    return self.attach(spec).await;
                } else if running {
                    return Ok(());
                } else {
                    // Made by a run that stopped before starting it: its files may be missing.
                    self.upload_files(&spec.name, &spec.files).await?;
                    return self
                        .api()
                        .start_container(&spec.name, None)
                        .await
                        .map_err(self.api_error("start container", &spec.name));
                }
            }
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(self.api_error("inspect container", &spec.name)(error)),
        }
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        match self.api().create_container(Some(options), create_body(spec)).await {
            Ok(_) => {}
            Err(error) if is_conflict(&error) => {}
            Err(error) => return Err(self.api_error("create container", &spec.name)(error)),
        }
        self.upload_files(&spec.name, &spec.files).await?;
        self.api().start_container(&spec.name, None).await.map_err(self.api_error("start container", &spec.name))
    }

    async fn remove_container(&self, name: &str) -> Result<(), RuntimeError> {
        match self.api().inspect_container(name, None::<InspectContainerOptions>).await {
            Ok(existing) if Self::is_managed(existing.config.as_ref().and_then(|c| c.labels.as_ref())) => {}
            Ok(_) => return Err(self.not_managed(format!("container {name}"))),
            Err(error) if is_not_found(&error) => return Ok(()),
            Err(error) => return Err(self.api_error("inspect container", name)(error)),
        }
        let options = RemoveContainerOptionsBuilder::default().force(true).v(false).build();
        match self.api().remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(self.api_error("remove container", name)(error)),
        }
    }

    async fn stop_container(&self, name: &str) -> Result<(), RuntimeError> {
        match self.api().inspect_container(name, None::<InspectContainerOptions>).await {
            Ok(existing) if Self::is_managed(existing.config.as_ref().and_then(|c| c.labels.as_ref())) => {}
            Ok(_) => return Err(self.not_managed(format!("container {name}"))),
            Err(error) if is_not_found(&error) => return Ok(()),
            Err(error) => return Err(self.api_error("inspect container", name)(error)),
        }
        // Docker answers 304 for a container that is already stopped, which bollard reports as success.
        match self.api().stop_container(name, None::<StopContainerOptions>).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(self.api_error("stop container", name)(error)),
        }
    }

    async fn start_container(&self, name: &str) -> Result<(), RuntimeError> {
        match self.api().inspect_container(name, None::<InspectContainerOptions>).await {
            Ok(existing) if Self::is_managed(existing.config.as_ref().and_then(|c| c.labels.as_ref())) => {}
            Ok(_) => return Err(self.not_managed(format!("container {name}"))),
            Err(error) => return Err(self.api_error("inspect container", name)(error)),
        }
        self.api().start_container(name, None).await.map_err(self.api_error("start container", name))
    }

    async fn list_managed(&self) -> Result<Vec<ObservedContainer>, RuntimeError> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{}=true", labels::MANAGED)])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let summaries =
            self.api().list_containers(Some(options)).await.map_err(self.api_error("list", "containers"))?;
        Ok(summaries
            .into_iter()
            .map(|summary| {
                let name = summary
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default();
                let running = summary.state.map(|s| s.to_string() == "running").unwrap_or(false);
                let health = summary.status.as_deref().map(status_health).unwrap_or("none").to_owned();
                let published_port = summary.ports.unwrap_or_default().into_iter().find_map(|p| p.public_port);
                let mut networks: Vec<String> = summary
                    .network_settings
                    .and_then(|settings| settings.networks)
                    .map(|networks| networks.into_keys().collect())
                    .unwrap_or_default();
                networks.sort();
                ObservedContainer {
                    name,
                    image: summary.image.unwrap_or_default(),
                    labels: Self::to_btree(summary.labels),
                    running,
                    health,
                    environment: BTreeMap::new(),
                    nano_cpus: 0,
                    memory_bytes: 0,
                    published_port,
                    published_host: None,
                    networks,
                    replicas: 1,
                    published_hosts: Vec::new(),
                }
            })
            .collect())
    }

    async fn list_managed_volumes(&self) -> Result<Vec<ObservedVolume>, RuntimeError> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{}=true", labels::MANAGED)])]);
        let options = ListVolumesOptionsBuilder::default().filters(&filters).build();
        let listed = self.api().list_volumes(Some(options)).await.map_err(self.api_error("list", "volumes"))?;
        let mut volumes: Vec<ObservedVolume> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|volume| ObservedVolume {
                name: volume.name,
                labels: volume.labels.into_iter().collect(),
                created_at: volume.created_at,
            })
            .collect();
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(volumes)
    }

    async fn inspect(&self, name: &str) -> Result<Option<ObservedContainer>, RuntimeError> {
        let container = match self.api().inspect_container(name, None::<InspectContainerOptions>).await {
            Ok(container) => container,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(self.api_error("inspect container", name)(error)),
        };
        let config = container.config.unwrap_or_default();
        let state = container.state.unwrap_or_default();
        let host = container.host_config.unwrap_or_default();
        let environment = config
            .env
            .unwrap_or_default()
            .into_iter()
            .filter_map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let health = state
            .health
            .and_then(|h| h.status)
            .map(|status| match status {
                HealthStatusEnum::HEALTHY => "healthy",
                HealthStatusEnum::UNHEALTHY => "unhealthy",
                HealthStatusEnum::STARTING => "starting",
                _ => "none",
            })
            .unwrap_or("none");
        let network_settings = container.network_settings.unwrap_or_default();
        let mut networks: Vec<String> =
            network_settings.networks.map(|networks| networks.into_keys().collect()).unwrap_or_default();
        networks.sort();
        let published_port = network_settings
            .ports
            .and_then(|ports| ports.into_values().flatten().flatten().find_map(|b| b.host_port))
            .and_then(|port| port.parse().ok());
        Ok(Some(ObservedContainer {
            name: name.to_owned(),
            image: config.image.unwrap_or_default(),
            labels: Self::to_btree(config.labels),
            running: state.running.unwrap_or(false),
            health: health.to_owned(),
            environment,
            nano_cpus: host.nano_cpus.unwrap_or(0),
            memory_bytes: host.memory.unwrap_or(0),
            published_port,
            published_host: None,
            networks,
            replicas: 1,
            published_hosts: Vec::new(),
        }))
    }

    async fn wait_healthy(&self, name: &str, deadline: Duration) -> Result<(), RuntimeError> {
        let started = tokio::time::Instant::now();
        loop {
            let container = self
                .api()
                .inspect_container(name, None::<InspectContainerOptions>)
                .await
                .map_err(self.api_error("inspect container", name))?;
            let state = container.state.unwrap_or_default();
            let health = state.health.clone().unwrap_or_default();
            let last_output = || {
                health
                    .log
                    .clone()
                    .unwrap_or_default()
                    .last()
                    .and_then(|r| r.output.clone())
                    .map(|o| o.trim().to_owned())
                    .filter(|o| !o.is_empty())
                    .unwrap_or_else(|| {
                        format!(
                            "health check exit code {:?}",
                            health.log.as_ref().and_then(|l| l.last()).and_then(|r| r.exit_code)
                        )
                    })
            };
            match health.status {
                Some(HealthStatusEnum::HEALTHY) => return Ok(()),
                None | Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) if state.running == Some(true) => {
                    return Ok(());
                }
                Some(HealthStatusEnum::UNHEALTHY) => {
                    return Err(RuntimeError::Unhealthy {
                        target: self.target.clone(),
                        container: name.to_owned(),
                        waited: started.elapsed(),
                        output: last_output(),
                    });
                }
                _ => {}
            }
            if state.running == Some(false)
                && state.restarting != Some(true)
                && started.elapsed() > Duration::from_secs(2)
            {
                return Err(RuntimeError::Unhealthy {
                    target: self.target.clone(),
                    container: name.to_owned(),
                    waited: started.elapsed(),
                    output: format!(
                        "the container exited (code {:?}) {}",
                        state.exit_code,
                        state.error.unwrap_or_default()
                    ),
                });
            }
            if started.elapsed() >= deadline {
                return Err(RuntimeError::HealthDeadline {
                    target: self.target.clone(),
                    container: name.to_owned(),
                    waited: started.elapsed(),
                    output: last_output(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn api_calls(&self) -> u64 {
        self.api_calls.load(Ordering::Relaxed)
    }

    async fn write_files(&self, name: &str, files: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
        match self.api().inspect_container(name, None::<InspectContainerOptions>).await {
            Ok(existing) if Self::is_managed(existing.config.as_ref().and_then(|c| c.labels.as_ref())) => {}
            Ok(_) => return Err(self.not_managed(format!("container {name}"))),
            Err(error) => return Err(self.api_error("inspect container", name)(error)),
        }
        self.upload_files(name, files).await
    }

    async fn run_once(&self, spec: &ContainerSpec, deadline: Duration) -> Result<CommandOutput, RuntimeError> {
        let started = tokio::time::Instant::now();
        self.remove_container(&spec.name).await?;
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        self.api()
            .create_container(Some(options), create_body(spec))
            .await
            .map_err(self.api_error("create container", &spec.name))?;
        self.upload_files(&spec.name, &spec.files).await?;
        self.api().start_container(&spec.name, None).await.map_err(self.api_error("start container", &spec.name))?;
        let exit_code = loop {
            let state = self
                .api()
                .inspect_container(&spec.name, None::<InspectContainerOptions>)
                .await
                .map_err(self.api_error("inspect container", &spec.name))?
                .state
                .unwrap_or_default();
            if state.running != Some(true) && state.finished_at.as_deref().is_some_and(|at| !at.starts_with("0001-")) {
                break state.exit_code;
            }
            if started.elapsed() >= deadline {
                let output = self.output_tail(&spec.name).await;
                self.remove_container(&spec.name).await?;
                return Err(RuntimeError::JobDeadline {
                    target: self.target.clone(),
                    container: spec.name.clone(),
                    waited: started.elapsed(),
                    output,
                });
            }
            tokio::time::sleep(Duration::from_millis(500).min(deadline.saturating_sub(started.elapsed()))).await;
        };
        let output = self.output_tail(&spec.name).await;
        self.remove_container(&spec.name).await?;
        Ok(CommandOutput { exit_code, output })
    }

    async fn export_volume(&self, volume: &VolumeSpec, image: &str, sink: ArchiveSender) -> Result<u64, RuntimeError> {
        let holder = self.volume_holder(volume, image).await?;
        let sent = async {
            let options = DownloadFromContainerOptionsBuilder::default().path(VOLUME_MOUNT).build();
            let mut archive = self.api().download_from_container(&holder, Some(options));
            let mut sent = 0;
            while let Some(chunk) = archive.next().await {
                let chunk = chunk.map_err(self.api_error("read the content of volume", &volume.name))?;
                sent += chunk.len() as u64;
                if sink.send(chunk.to_vec()).await.is_err() {
                    return Err(self.copy_error(&volume.name, "the receiving target stopped reading"));
                }
            }
            Ok(sent)
        }
        .await;
        let removed = self.remove_container(&holder).await;
        let sent = sent?;
        removed?;
        Ok(sent)
    }

    async fn import_volume(
        &self,
        volume: &VolumeSpec,
        image: &str,
        mut source: ArchiveReceiver,
    ) -> Result<u64, RuntimeError> {
        self.remove_container(&volume_holder_name(&volume.name)).await?;
        self.remove_volume(&volume.name).await?;
        self.ensure_volume(volume).await?;
        let holder = self.volume_holder(volume, image).await?;
        let received = std::sync::Arc::new(AtomicU64::new(0));
        let counted = std::sync::Arc::clone(&received);
        let archive = futures_util::stream::poll_fn(move |context| source.poll_recv(context)).map(move |chunk| {
            counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            Ok::<_, std::io::Error>(chunk.into())
        });
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        let written = self
            .api()
            .upload_to_container(&holder, Some(options), bollard::body_try_stream(archive))
            .await
            .map_err(self.api_error("write the content of volume", &volume.name));
        let removed = self.remove_container(&holder).await;
        written?;
        removed?;
        Ok(received.load(Ordering::Relaxed))
    }

    async fn exec(&self, name: &str, command: &[String]) -> Result<CommandOutput, RuntimeError> {
        let options = bollard::exec::CreateExecOptions {
            cmd: Some(command.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self.api().create_exec(name, options).await.map_err(self.api_error("exec in", name))?;
        let started = self.api().start_exec(&exec.id, None).await.map_err(self.api_error("exec in", name))?;
        let mut output = String::new();
        if let bollard::exec::StartExecResults::Attached { output: mut stream, .. } = started {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(self.api_error("read exec output of", name))?;
                output.push_str(&chunk.to_string());
            }
        }
        let inspected = self.api().inspect_exec(&exec.id).await.map_err(self.api_error("exec in", name))?;
        Ok(CommandOutput { exit_code: inspected.exit_code, output })
    }
}

/// The health word in a list call's status text, e.g. `Up 3 seconds (healthy)`.
fn status_health(status: &str) -> &'static str {
    if status.contains("(healthy)") {
        "healthy"
    } else if status.contains("(unhealthy)") {
        "unhealthy"
    } else if status.contains("starting") {
        "starting"
    } else {
        "none"
    }
}
