//! The runtime on a Docker Swarm cluster, through the manager's services API.
//!
//! Each container role of an instance (the app, its sidecars) is one Swarm
//! service, on the tenant's overlay network
//! (attachable, so one-shot jobs can join it), with the same limits, health
//! check, capabilities and labels as on a single engine. A service is
//! published in host mode on a port Atrium chooses, the same on every node
//! (this kernel has no IPVS: Swarm's routing mesh and virtual IPs do not
//! work), and reached by DNS round robin on its network.
//!
//! A sidecar's service has the container's name. An app's generations
//! (`atrium-acme-erp-g3`) share one service named without the generation
//! (`atrium-acme-erp`): deploying generation 4 updates it, and Swarm rolls
//! the update and rolls it back by itself when the new task fails. A task
//! with data stops before its new one starts: a host-mode port takes one task
//! per node, and the data is on one node. Removing
//! generation 4 while the update is in flight (an undo) rolls back to 3;
//! removing generation 3 once 4 runs ends the upgrade.
//!
//! Data stays where it is: a role with volumes runs on the node that holds
//! them, by a placement constraint on the node label `atrium.node`, which
//! Atrium gives every node that lacks it (its host name). An operator whose
//! node is replaced with the same disks moves the label to the new node.
//!
//! What only a node's own engine can do (volumes, exec in a task's
//! container, one-shot jobs beside the data) goes to that node's Docker API,
//! found in the node label `atrium.engine` (the manager's own endpoint for
//! the manager when it has none).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bollard::Docker;
use bollard::models::{
    ConfigSpec, EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec, EndpointSpecModeEnum,
    HealthConfig, Limit, Mount, MountType, MountVolumeOptions, NetworkAttachmentConfig, NetworkCreateRequest, NodeSpec,
    NodeSpecAvailabilityEnum, NodeState, Service, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, ServiceUpdateStatusStateEnum, Task,
    TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile1, TaskSpecPlacement,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    InspectServiceOptions, ListConfigsOptionsBuilder, ListNetworksOptionsBuilder, ListNodesOptions,
    ListServicesOptionsBuilder, ListTasksOptionsBuilder, UpdateNodeOptionsBuilder, UpdateServiceOptionsBuilder,
};
use sha2::Digest as _;
use tokio::sync::Mutex;

use super::docker::{DockerRuntime, PIDS_LIMIT, api_error, is_conflict, is_not_found};
use super::{ArchiveReceiver, ArchiveSender, CommandOutput, ObservedContainer, ObservedVolume, Runtime, RuntimeError};
use crate::model::container::{ContainerRole, ContainerSpec, VolumeSpec, labels};

/// The node label that pins an instance's data-holding roles to one node.
pub const NODE_LABEL: &str = "atrium.node";
/// The node label naming the node's own Docker endpoint.
pub const ENGINE_LABEL: &str = "atrium.engine";
/// A digest of the whole service spec Atrium wants, on the service: a
/// service whose digest differs is updated (Swarm rolls it).
const SERVICE_DIGEST_LABEL: &str = "atrium.swarm.spec";
/// On a service: the container it runs now (an app's generation, `…-gN`).
const CONTAINER_LABEL: &str = "atrium.container";
/// On an app's service while an upgrade is in flight: the generation it
/// replaced, which removing the new one rolls back to. Cleared when the old
/// generation is removed, which ends the upgrade.
const REPLACES_LABEL: &str = "atrium.replaces";
/// On a service: how many tasks it runs when started (stopping scales it to 0).
const REPLICAS_LABEL: &str = "atrium.replicas";
/// On a service's configuration files (Swarm configs): the service they belong to.
const SERVICE_LABEL: &str = "atrium.service";
/// Published ports Atrium chooses for services: below Linux's ephemeral range.
const PORTS: std::ops::Range<u16> = 20000..30000;
/// How long one listing of the nodes answers for (a node drained or lost
/// shows within this).
const NODES_FRESH_FOR: Duration = Duration::from_secs(1);
/// How long removing or stopping a service waits for its tasks to end.
const TASKS_END_WITHIN: Duration = Duration::from_secs(90);

/// A node of the swarm as one list call reports it.
#[derive(Debug, Clone)]
struct SwarmNode {
    id: String,
    hostname: String,
    /// Its `atrium.node` label (set by Atrium when missing).
    label: Option<String>,
    engine: Option<String>,
    address: Option<String>,
    /// Its engine is up, as the managers see it.
    ready: bool,
    /// Ready and active: tasks may be placed there.
    schedulable: bool,
    version: u64,
    spec: NodeSpec,
}

/// A Swarm cluster reached through a manager at `endpoint`.
pub struct SwarmRuntime {
    target: String,
    endpoint: String,
    cert_path: Option<String>,
    manager: Docker,
    /// The manager's own node id, whose engine is `endpoint`.
    manager_node: String,
    api_calls: AtomicU64,
    /// Node engines, connected on first use (by node id).
    engines: Mutex<HashMap<String, Arc<DockerRuntime>>>,
    /// The node chosen for each instance's data in this process (instance id → node label).
    placements: Mutex<HashMap<String, String>>,
    /// Network ids to names (ids never change; services report ids).
    network_names: Mutex<HashMap<String, String>>,
    network_creation: Mutex<()>,
    port_choice: Mutex<()>,
    /// The last listing of the nodes, and when it was made.
    nodes_listed: Mutex<Option<(tokio::time::Instant, Vec<SwarmNode>)>>,
    /// Whether tenant networks encrypt traffic between nodes.
    encrypted_networks: bool,
}

impl SwarmRuntime {
    /// Connects to the manager (as [`DockerRuntime::connect`]) and checks
    /// that it is a swarm manager.
    pub async fn connect(target: &str, endpoint: &str, cert_path: Option<&str>) -> Result<SwarmRuntime, RuntimeError> {
        let manager = DockerRuntime::connect(target, endpoint, cert_path).await?;
        let docker = manager.client().clone();
        let info = docker.info().await.map_err(|source| RuntimeError::Connect {
            target: target.to_owned(),
            endpoint: endpoint.to_owned(),
            source: Box::new(source),
        })?;
        let swarm = info.swarm.unwrap_or_default();
        let manager_node = swarm.node_id.filter(|id| !id.is_empty() && swarm.control_available == Some(true));
        let Some(manager_node) = manager_node else {
            return Err(RuntimeError::NotSwarmManager { target: target.to_owned(), endpoint: endpoint.to_owned() });
        };
        Ok(SwarmRuntime {
            target: target.to_owned(),
            endpoint: endpoint.to_owned(),
            cert_path: cert_path.map(str::to_owned),
            manager: docker,
            engines: Mutex::new(HashMap::from([(manager_node.clone(), Arc::new(manager))])),
            manager_node,
            api_calls: AtomicU64::new(1),
            placements: Mutex::new(HashMap::new()),
            network_names: Mutex::new(HashMap::new()),
            network_creation: Mutex::new(()),
            port_choice: Mutex::new(()),
            nodes_listed: Mutex::new(None),
            encrypted_networks: true,
        })
    }

    /// Whether tenant networks encrypt the traffic between nodes (the default).
    pub fn with_encrypted_networks(self, encrypted_networks: bool) -> SwarmRuntime {
        SwarmRuntime { encrypted_networks, ..self }
    }

    /// The manager's client, counting one API request.
    fn api(&self) -> &Docker {
        self.api_calls.fetch_add(1, Ordering::Relaxed);
        &self.manager
    }

    fn api_error(&self, operation: &'static str, object: &str) -> impl FnOnce(bollard::errors::Error) -> RuntimeError {
        api_error(&self.target, &self.endpoint, operation, object)
    }

    fn not_managed(&self, object: String) -> RuntimeError {
        RuntimeError::NotManaged { target: self.target.clone(), object }
    }

    /// Every node, from one list call shared by the calls of the next
    /// [`NODES_FRESH_FOR`] (a refresh of many instances lists them once);
    /// nodes without an `atrium.node` label get one.
    async fn nodes(&self) -> Result<Vec<SwarmNode>, RuntimeError> {
        let mut cached = self.nodes_listed.lock().await;
        if let Some((at, nodes)) = cached.as_ref()
            && at.elapsed() < NODES_FRESH_FOR
        {
            return Ok(nodes.clone());
        }
        let nodes = self.list_nodes().await?;
        *cached = Some((tokio::time::Instant::now(), nodes.clone()));
        Ok(nodes)
    }

    async fn list_nodes(&self) -> Result<Vec<SwarmNode>, RuntimeError> {
        let listed = self.api().list_nodes(None::<ListNodesOptions>).await.map_err(self.api_error("list", "nodes"))?;
        let mut nodes: Vec<SwarmNode> = listed
            .into_iter()
            .map(|node| {
                let spec = node.spec.unwrap_or_default();
                let status = node.status.unwrap_or_default();
                let node_labels = spec.labels.clone().unwrap_or_default();
                SwarmNode {
                    id: node.id.unwrap_or_default(),
                    hostname: node.description.and_then(|d| d.hostname).unwrap_or_default(),
                    label: node_labels.get(NODE_LABEL).cloned(),
                    engine: node_labels.get(ENGINE_LABEL).cloned(),
                    address: status.addr.filter(|a| !a.is_empty() && a != "0.0.0.0"),
                    ready: status.state == Some(NodeState::READY),
                    schedulable: status.state == Some(NodeState::READY)
                        && matches!(spec.availability, Some(NodeSpecAvailabilityEnum::ACTIVE) | None),
                    version: node.version.and_then(|v| v.index).unwrap_or(0),
                    spec,
                }
            })
            .collect();
        for node in nodes.iter_mut().filter(|node| node.label.is_none()) {
            let mut spec = node.spec.clone();
            spec.labels.get_or_insert_with(HashMap::new).insert(NODE_LABEL.to_owned(), node.hostname.clone());
            let options = UpdateNodeOptionsBuilder::default().version(node.version as i64).build();
            self.api().update_node(&node.id, spec, options).await.map_err(self.api_error("label node", &node.id))?;
            node.label = Some(node.hostname.clone());
        }
        nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(nodes)
    }

    /// The Docker engine of one node.
    async fn engine(&self, node: &SwarmNode) -> Result<Arc<DockerRuntime>, RuntimeError> {
        let mut engines = self.engines.lock().await;
        if let Some(engine) = engines.get(&node.id) {
            return Ok(Arc::clone(engine));
        }
        let Some(endpoint) = &node.engine else {
            return Err(RuntimeError::NodeUnreachable {
                target: self.target.clone(),
                node: node.hostname.clone(),
                reason: format!(
                    "it has no {ENGINE_LABEL} label; set it to the node's Docker endpoint (docker node update --label-add {ENGINE_LABEL}=tcp://ADDRESS:2375 {})",
                    node.hostname
                ),
            });
        };
        let engine = Arc::new(DockerRuntime::connect(&self.target, endpoint, self.cert_path.as_deref()).await?);
        engines.insert(node.id.clone(), Arc::clone(&engine));
        Ok(engine)
    }

    /// The node that holds (or will hold) an instance's data: the one this
    /// process chose, else the one its services are pinned to, else the one
    /// its volumes are on, else the schedulable node with the fewest pinned
    /// services.
    async fn data_node(&self, instance: &str) -> Result<SwarmNode, RuntimeError> {
        let nodes = self.nodes().await?;
        let by_label = |label: &str| nodes.iter().find(|node| node.label.as_deref() == Some(label)).cloned();
        let mut placements = self.placements.lock().await;
        if let Some(node) = placements.get(instance).and_then(|label| by_label(label)) {
            return Ok(node);
        }
        let services = self.managed_services().await?;
        let pinned = pinned_services(&services);
        if let Some((_, label)) = pinned.iter().find(|(owner, _)| owner.as_deref() == Some(instance)) {
            if let Some(node) = by_label(label) {
                placements.insert(instance.to_owned(), label.clone());
                return Ok(node);
            }
            return Err(RuntimeError::NodeUnreachable {
                target: self.target.clone(),
                node: label.clone(),
                reason: format!(
                    "no node has the label {NODE_LABEL}={label} that instance {instance}'s data is pinned to"
                ),
            });
        }
        // Volumes of the instance on several nodes: the ones made last are
        // its data (the others were left on a node it was restored away from).
        let mut newest: Option<(String, &SwarmNode)> = None;
        for node in &nodes {
            let Ok(engine) = self.engine(node).await else { continue };
            let volumes = engine.list_managed_volumes().await?;
            let made = volumes
                .iter()
                .filter(|volume| volume.labels.get(labels::INSTANCE).map(String::as_str) == Some(instance))
                .map(|volume| volume.created_at.clone().unwrap_or_default())
                .max();
            if let Some(made) = made
                && newest.as_ref().is_none_or(|(newest, _)| made > *newest)
            {
                newest = Some((made, node));
            }
        }
        if let Some((_, node)) = newest {
            let label = node.label.clone().unwrap_or_else(|| node.hostname.clone());
            placements.insert(instance.to_owned(), label);
            return Ok(node.clone());
        }
        let placed = pinned.iter().map(|(_, label)| label.as_str()).chain(placements.values().map(String::as_str));
        let chosen = least_loaded(instance, &nodes, placed).ok_or_else(|| self.no_node_ready())?.clone();
        placements.insert(instance.to_owned(), chosen.label.clone().unwrap_or_default());
        Ok(chosen)
    }

    /// Several copies need a container without volumes (data is on one
    /// node) and as many nodes that can run tasks (one copy per node).
    async fn check_replicas(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        let refused = |reason: String| RuntimeError::Replicas {
            target: self.target.clone(),
            container: spec.name.clone(),
            replicas: spec.replicas,
            reason,
        };
        if !spec.mounts.is_empty() {
            return Err(refused("it has volumes, and a container with data runs once, where its data is".to_owned()));
        }
        let nodes = self.nodes().await?;
        let schedulable = nodes.iter().filter(|node| node.schedulable).count();
        if usize::try_from(spec.replicas).unwrap_or(usize::MAX) > schedulable {
            return Err(refused(format!(
                "each copy runs on its own node (they publish the same port), and {schedulable} of the swarm's {} nodes can run tasks now",
                nodes.len()
            )));
        }
        Ok(())
    }

    fn no_node_ready(&self) -> RuntimeError {
        RuntimeError::NodeUnreachable {
            target: self.target.clone(),
            node: "(any)".to_owned(),
            reason: "no node of the swarm is ready and active".to_owned(),
        }
    }

    /// The node holding an instance's data, when tasks may run there; else
    /// why not, with the ways out. The instance never starts on another
    /// node, where its volumes would be new and empty.
    async fn runnable_data_node(&self, instance: &str) -> Result<SwarmNode, RuntimeError> {
        let node = self.data_node(instance).await?;
        if node.schedulable {
            return Ok(node);
        }
        let availability = node.spec.availability.map_or_else(|| "active".to_owned(), |a| a.to_string());
        Err(RuntimeError::NodeUnreachable {
            target: self.target.clone(),
            node: node.hostname.clone(),
            reason: format!(
                "it holds the data of instance {instance} and cannot run tasks (availability {availability}, or down); Atrium does not start the instance on another node with empty volumes. Make the node active again (docker node update --availability active {}), or move the instance to another target (its data is copied from the node while the node's engine answers), or restore its off-site backup onto another node (restore with offsite_of)",
                node.hostname
            ),
        })
    }

    /// Every managed service, from one list call.
    async fn managed_services(&self) -> Result<Vec<Service>, RuntimeError> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{}=true", labels::MANAGED)])]);
        let options = ListServicesOptionsBuilder::default().filters(&filters).build();
        self.api().list_services(Some(options)).await.map_err(self.api_error("list", "services"))
    }

    /// A service by name; `None` when it does not exist.
    async fn service(&self, name: &str) -> Result<Option<Service>, RuntimeError> {
        match self.api().inspect_service(name, None::<InspectServiceOptions>).await {
            Ok(service) => Ok(Some(service)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(self.api_error("inspect service", name)(error)),
        }
    }

    /// A managed service by name, refusing one Atrium did not make.
    async fn managed_service(&self, name: &str) -> Result<Option<Service>, RuntimeError> {
        let Some(service) = self.service(name).await? else { return Ok(None) };
        if !is_managed(service.spec.as_ref().and_then(|spec| spec.labels.as_ref())) {
            return Err(self.not_managed(format!("service {name}")));
        }
        Ok(Some(service))
    }

    /// The service that runs container `name` now: a sidecar's of that
    /// name, or the app's service when `name` is the generation it runs.
    /// `Err(Some(service))`: the app's service runs another generation.
    async fn resolve(&self, name: &str) -> Result<Result<Service, Option<Service>>, RuntimeError> {
        // An app generation's name: its shared service first (one lookup
        // per inspection in a refresh), then a service of that very name.
        if let Some(stem) = generation_stem(name)
            && let Some(service) = self.managed_service(stem).await?
        {
            return Ok(if container_of(&service) == name { Ok(service) } else { Err(Some(service)) });
        }
        Ok(self.managed_service(name).await?.ok_or(None))
    }

    /// Rewrites one label of a service (no task restarts: service labels are not the tasks').
    async fn set_service_label(&self, service: Service, key: &str, value: Option<&str>) -> Result<(), RuntimeError> {
        let name = service.spec.as_ref().and_then(|s| s.name.clone()).unwrap_or_default();
        let version = service.version.and_then(|v| v.index).unwrap_or(0);
        let mut spec = service.spec.unwrap_or_default();
        let service_labels = spec.labels.get_or_insert_with(HashMap::new);
        match value {
            Some(value) => service_labels.insert(key.to_owned(), value.to_owned()),
            None => service_labels.remove(key),
        };
        let options = UpdateServiceOptionsBuilder::default().version(version as i32).build();
        self.api().update_service(&name, spec, options, None).await.map_err(self.api_error("label service", &name))?;
        Ok(())
    }

    /// The tasks of one service (every state), from one list call.
    async fn tasks_of(&self, name: &str) -> Result<Vec<Task>, RuntimeError> {
        let filters = HashMap::from([("service".to_owned(), vec![name.to_owned()])]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        // Swarm resolves the service filter to one service: by exact name
        // first; a service that is gone has no tasks.
        match self.api().list_tasks(Some(options)).await {
            Ok(tasks) => Ok(tasks),
            Err(error) if is_not_found(&error) => Ok(Vec::new()),
            Err(error) => Err(self.api_error("list tasks of", name)(error)),
        }
    }

    /// Waits until the containers of `tasks` are gone from their nodes (a
    /// removed service's tasks leave the swarm before their containers have
    /// stopped, and a volume is in use until they have).
    async fn wait_containers_gone(&self, tasks: &[Task]) -> Result<(), RuntimeError> {
        let started = tokio::time::Instant::now();
        let nodes = self.nodes().await?;
        for task in tasks {
            let container =
                task.status.as_ref().and_then(|s| s.container_status.as_ref()).and_then(|c| c.container_id.as_deref());
            let node = nodes.iter().find(|node| Some(node.id.as_str()) == task.node_id.as_deref());
            let (Some(container), Some(node)) = (container, node) else { continue };
            let engine = self.engine(node).await?;
            while engine.inspect(container).await?.is_some() {
                if started.elapsed() >= TASKS_END_WITHIN {
                    return Err(RuntimeError::HealthDeadline {
                        target: self.target.clone(),
                        container: container.to_owned(),
                        waited: started.elapsed(),
                        output: format!("the container of a removed task did not stop on node {}", node.hostname),
                    });
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }

    /// The running task of a service, its node and container.
    async fn running_container(&self, name: &str) -> Result<(Arc<DockerRuntime>, String), RuntimeError> {
        let mut running = self.running_containers(name).await?;
        Ok(running.swap_remove(0))
    }

    /// The container of every running task of a container's service (one
    /// per copy), each with its node's engine; at least one.
    async fn running_containers(&self, name: &str) -> Result<Vec<(Arc<DockerRuntime>, String)>, RuntimeError> {
        let Ok(service) = self.resolve(name).await? else {
            return Err(RuntimeError::NoRunningTask { target: self.target.clone(), service: name.to_owned() });
        };
        let tasks = self.tasks_of(&service_id(&service)).await?;
        let nodes = self.nodes().await?;
        let mut running = Vec::new();
        for task in tasks.iter().filter(|task| {
            task.desired_state == Some(TaskState::RUNNING)
                && task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
        }) {
            let container = task
                .status
                .as_ref()
                .and_then(|s| s.container_status.as_ref())
                .and_then(|c| c.container_id.clone())
                .unwrap_or_default();
            let node_id = task.node_id.clone().unwrap_or_default();
            let node = nodes.iter().find(|node| node.id == node_id).ok_or_else(|| RuntimeError::NodeUnreachable {
                target: self.target.clone(),
                node: node_id.clone(),
                reason: "the node running its task is no longer in the swarm".to_owned(),
            })?;
            running.push((self.engine(node).await?, container));
        }
        if running.is_empty() {
            return Err(RuntimeError::NoRunningTask { target: self.target.clone(), service: name.to_owned() });
        }
        Ok(running)
    }

    /// The service spec for a container spec, placed on `pinned` (a node label) when it holds data.
    fn service_spec(
        &self,
        spec: &ContainerSpec,
        pinned: Option<&str>,
        port: Option<u16>,
        configs: Vec<TaskSpecContainerSpecConfigs>,
    ) -> ServiceSpec {
        let mounts = spec
            .mounts
            .iter()
            .map(|(volume, path)| Mount {
                target: Some(path.clone()),
                source: Some(volume.clone()),
                typ: Some(MountType::VOLUME),
                volume_options: Some(MountVolumeOptions {
                    labels: Some(
                        spec.labels
                            .iter()
                            .filter(|(k, _)| is_identity_label(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let health = spec.health.as_ref();
        let container = TaskSpecContainerSpec {
            image: Some(spec.image.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            args: spec.command.clone(),
            env: Some(spec.environment.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: spec.user.clone(),
            read_only: Some(spec.read_only),
            mounts: Some(mounts),
            health_check: health.map(|health| HealthConfig {
                test: Some(health.test.clone()),
                interval: Some(health.interval_nanoseconds),
                timeout: Some(health.timeout_nanoseconds),
                retries: Some(health.retries),
                start_period: Some(health.start_period_nanoseconds),
                start_interval: None,
            }),
            configs: Some(configs),
            init: Some(true),
            capability_add: Some(spec.capabilities.clone()),
            capability_drop: Some(vec!["ALL".to_owned()]),
            ..Default::default()
        };
        // A task with data stops before its new one starts: two never share
        // its files, and a host-mode port takes one task per node, the one
        // node that holds the data. Without data, the new task starts first;
        // with several copies, one per node, each stops before its new task
        // starts (the others serve meanwhile).
        let start_first = spec.mounts.is_empty() && spec.replicas == 1;
        // How long Swarm watches a new task before it counts the update a
        // success: the health check's whole first verdict.
        let monitor = health.map_or(5_000_000_000, |h| h.interval_nanoseconds * 2);
        let mut service_labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        let mut specification = ServiceSpec {
            name: Some(service_name(spec)),
            labels: None,
            task_template: Some(TaskSpec {
                container_spec: Some(container),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit {
                        nano_cpus: Some(spec.nano_cpus),
                        memory_bytes: Some(spec.memory_bytes),
                        pids: Some(PIDS_LIMIT),
                    }),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    delay: Some(1_000_000_000),
                    ..Default::default()
                }),
                // Never none: an update from a placement to none crashes the
                // swarm's manager (Docker 20.10's updater reads the new
                // placement's constraints without checking it is there).
                placement: Some(match pinned {
                    Some(label) => TaskSpecPlacement {
                        constraints: Some(vec![format!("node.labels.{NODE_LABEL}=={label}")]),
                        ..Default::default()
                    },
                    // Each copy publishes the same host-mode port: one per node.
                    None => TaskSpecPlacement { max_replicas: Some(1), ..Default::default() },
                }),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some(spec.network.clone()),
                    aliases: Some(vec![spec.network_alias.clone()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(i64::from(spec.replicas)) }),
                ..Default::default()
            }),
            // Two tasks never share one volume: a role with data stops
            // before its new task starts; one without starts first.
            update_config: Some(ServiceSpecUpdateConfig {
                parallelism: Some(1),
                failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
                monitor: Some(monitor),
                order: Some(if start_first {
                    ServiceSpecUpdateConfigOrderEnum::START_FIRST
                } else {
                    ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
                }),
                ..Default::default()
            }),
            rollback_config: Some(ServiceSpecRollbackConfig {
                parallelism: Some(1),
                monitor: Some(monitor),
                order: Some(if start_first {
                    ServiceSpecRollbackConfigOrderEnum::START_FIRST
                } else {
                    ServiceSpecRollbackConfigOrderEnum::STOP_FIRST
                }),
                ..Default::default()
            }),
            endpoint_spec: Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ports: Some(
                    spec.port
                        .zip(port)
                        .map(|(target, published)| EndpointPortConfig {
                            target_port: Some(i64::from(target)),
                            published_port: Some(i64::from(published)),
                            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                            ..Default::default()
                        })
                        .into_iter()
                        .collect(),
                ),
            }),
            ..Default::default()
        };
        let digest =
            hex(&sha2::Sha256::digest(serde_json::to_vec(&specification).unwrap_or_default()))[..16].to_owned();
        service_labels.insert(SERVICE_DIGEST_LABEL.to_owned(), digest);
        service_labels.insert(CONTAINER_LABEL.to_owned(), spec.name.clone());
        service_labels.insert(REPLICAS_LABEL.to_owned(), spec.replicas.to_string());
        specification.labels = Some(service_labels);
        specification
    }

    /// The port a container is published on: its service's if it has
    /// one, else a free one in [`PORTS`], starting from a hash of its name.
    async fn port_for(&self, spec: &ContainerSpec, existing: Option<&Service>) -> Result<Option<u16>, RuntimeError> {
        if spec.port.is_none() {
            return Ok(None);
        }
        if let Some(port) = spec.host_port {
            return Ok(Some(port));
        }
        if let Some(port) = existing.and_then(published_port) {
            return Ok(Some(port));
        }
        let used: std::collections::HashSet<u16> =
            self.managed_services().await?.iter().filter_map(published_port).collect();
        let size = PORTS.end - PORTS.start;
        let digest = sha2::Sha256::digest(service_name(spec).as_bytes());
        let start = u16::from_be_bytes([digest[0], digest[1]]) % size;
        Ok((0..size).map(|offset| PORTS.start + (start + offset) % size).find(|port| !used.contains(port)))
    }

    /// Swarm configs for the container's files, made if missing (their names carry their digest).
    async fn ensure_configs(&self, spec: &ContainerSpec) -> Result<Vec<TaskSpecContainerSpecConfigs>, RuntimeError> {
        let mut references = Vec::new();
        for (path, content) in &spec.files {
            let digest = hex(&sha2::Sha256::digest(format!("{path}\n{content}").as_bytes()));
            let name = format!("{}-{}", spec.name, &digest[..12]);
            let mut config_labels: HashMap<String, String> =
                spec.labels.iter().filter(|(k, _)| is_identity_label(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
            config_labels.insert(SERVICE_LABEL.to_owned(), service_name(spec));
            let config = ConfigSpec {
                name: Some(name.clone()),
                labels: Some(config_labels),
                data: Some(base64::engine::general_purpose::STANDARD.encode(content)),
                ..Default::default()
            };
            let id = match self.api().create_config(config).await {
                Ok(created) => created.id,
                Err(error) if is_conflict(&error) => self
                    .api()
                    .inspect_config(&name)
                    .await
                    .map_err(self.api_error("inspect config", &name))?
                    .id
                    .unwrap_or_default(),
                Err(error) => return Err(self.api_error("create config", &name)(error)),
            };
            references.push(TaskSpecContainerSpecConfigs {
                file: Some(TaskSpecContainerSpecFile1 {
                    name: Some(path.clone()),
                    uid: Some("0".to_owned()),
                    gid: Some("0".to_owned()),
                    mode: Some(0o644),
                }),
                config_id: Some(id),
                config_name: Some(name),
                ..Default::default()
            });
        }
        Ok(references)
    }

    /// Removes a service's configs that no service uses any more.
    async fn remove_configs(&self, service: &str) -> Result<(), RuntimeError> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{SERVICE_LABEL}={service}")])]);
        let options = ListConfigsOptionsBuilder::default().filters(&filters).build();
        let configs =
            self.api().list_configs(Some(options)).await.map_err(self.api_error("list configs of", service))?;
        for config in configs {
            let id = config.id.unwrap_or_default();
            match self.api().delete_config(&id).await {
                // Still in use by a task shutting down: the next removal takes it.
                Ok(()) => {}
                Err(error) if is_not_found(&error) || is_conflict(&error) || is_in_use(&error) => {}
                Err(error) => return Err(self.api_error("remove config of", service)(error)),
            }
        }
        Ok(())
    }

    /// Sets a service's replica count.
    async fn scale(&self, service: Service, replicas: i64) -> Result<(), RuntimeError> {
        let name = service.spec.as_ref().and_then(|s| s.name.clone()).unwrap_or_default();
        let version = service.version.and_then(|v| v.index).unwrap_or(0);
        let mut spec = service.spec.unwrap_or_default();
        if replicas_of(&spec) == Some(replicas) {
            return Ok(());
        }
        spec.mode = Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(replicas) }),
            ..Default::default()
        });
        let options = UpdateServiceOptionsBuilder::default().version(version as i32).build();
        self.api().update_service(&name, spec, options, None).await.map_err(self.api_error("scale service", &name))?;
        Ok(())
    }

    /// Waits until no task of the service runs (nor is about to).
    async fn wait_tasks_ended(&self, name: &str) -> Result<(), RuntimeError> {
        let started = tokio::time::Instant::now();
        loop {
            let tasks = self.tasks_of(name).await?;
            if tasks.iter().all(|task| !task_is_live(task)) {
                return Ok(());
            }
            if started.elapsed() >= TASKS_END_WITHIN {
                return Err(RuntimeError::HealthDeadline {
                    target: self.target.clone(),
                    container: name.to_owned(),
                    waited: started.elapsed(),
                    output: "its tasks did not stop".to_owned(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Whether the newest task of the service's current spec runs; `None`
    /// when it has no task of that spec.
    async fn newest_task_runs(&self, service: &Service) -> Result<Option<bool>, RuntimeError> {
        let tasks = self.tasks_of(&service_id(service)).await?;
        Ok(newest_of_spec(service, &tasks).map(|task| {
            task.desired_state == Some(TaskState::RUNNING)
                && task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
        }))
    }

    /// Network ids to names for the ids given, listing the networks when one is unknown.
    async fn network_names(&self, ids: &[String]) -> Result<HashMap<String, String>, RuntimeError> {
        let mut names = self.network_names.lock().await;
        if ids.iter().any(|id| !names.contains_key(id)) {
            let options = ListNetworksOptionsBuilder::default().build();
            let networks = self.api().list_networks(Some(options)).await.map_err(self.api_error("list", "networks"))?;
            for network in networks {
                if let (Some(id), Some(name)) = (network.id, network.name) {
                    names.insert(id, name);
                }
            }
        }
        Ok(names.clone())
    }

    /// A service as an observed container; `tasks` are its own.
    fn observe(
        &self,
        service: &Service,
        tasks: &[&Task],
        networks: &HashMap<String, String>,
        nodes: &[SwarmNode],
        detailed: bool,
    ) -> ObservedContainer {
        let addresses: HashMap<&str, &str> =
            nodes.iter().filter_map(|node| Some((node.id.as_str(), node.address.as_deref()?))).collect();
        let spec = service.spec.clone().unwrap_or_default();
        // Pinned to a node that cannot run it: its data is there.
        let stranded = pinned_label(&spec)
            .is_some_and(|label| !nodes.iter().any(|node| node.label.as_deref() == Some(&label) && node.schedulable));
        let template = spec.task_template.clone().unwrap_or_default();
        let container = template.container_spec.clone().unwrap_or_default();
        let state = tasks
            .iter()
            .filter(|task| task.desired_state == Some(TaskState::RUNNING))
            .filter_map(|task| task.status.as_ref().and_then(|s| s.state))
            .max_by_key(|state| matches!(state, TaskState::RUNNING));
        let running = state == Some(TaskState::RUNNING);
        let mut published_hosts: Vec<String> = tasks
            .iter()
            .filter(|task| {
                task.desired_state == Some(TaskState::RUNNING)
                    && task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
            })
            .filter_map(|task| task.node_id.as_deref())
            .filter_map(|node| addresses.get(node))
            .map(|address| (*address).to_owned())
            .collect();
        published_hosts.sort();
        published_hosts.dedup();
        let running_on = published_hosts.first().cloned();
        // A task with a health check turns `running` only once it is
        // healthy: until then it is `starting`. (Which services have a check
        // cannot be read back: Docker names the field `Healthcheck`, bollard
        // `HealthCheck`. A task without one is `starting` only for the
        // moment its container starts.)
        let health = match (state, container.health_check.is_some()) {
            _ if !running && stranded => super::STRANDED,
            (Some(TaskState::RUNNING), true) => "healthy",
            (Some(TaskState::STARTING), _) => "starting",
            _ => "none",
        };
        let mut service_labels: BTreeMap<String, String> =
            spec.labels.clone().unwrap_or_default().into_iter().collect();
        for internal in [SERVICE_DIGEST_LABEL, CONTAINER_LABEL, REPLACES_LABEL, REPLICAS_LABEL] {
            service_labels.remove(internal);
        }
        let mut attached: Vec<String> = template
            .networks
            .unwrap_or_default()
            .into_iter()
            .filter_map(|network| network.target)
            .map(|target| networks.get(&target).cloned().unwrap_or(target))
            .collect();
        attached.sort();
        let limits = template.resources.and_then(|r| r.limits).unwrap_or_default();
        ObservedContainer {
            name: container_of(service),
            image: container.image.clone().unwrap_or_default(),
            labels: service_labels,
            running,
            health: health.to_owned(),
            environment: if detailed {
                container
                    .env
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                    .collect()
            } else {
                BTreeMap::new()
            },
            nano_cpus: if detailed { limits.nano_cpus.unwrap_or(0) } else { 0 },
            memory_bytes: if detailed { limits.memory_bytes.unwrap_or(0) } else { 0 },
            published_port: published_port(service),
            published_host: running_on,
            networks: attached,
            replicas: replicas_of(&spec).and_then(|n| u32::try_from(n).ok()).unwrap_or(1),
            published_hosts,
        }
    }
}

fn is_managed(object_labels: Option<&HashMap<String, String>>) -> bool {
    object_labels.and_then(|l| l.get(labels::MANAGED)).is_some_and(|value| value == "true")
}

/// Every node's `host:port` for an app published on `port` of the node it
/// runs on: the node it was seen on first, then the others.
fn node_upstreams(hosts: &[String], port: u16, seen_on: Option<&str>) -> Vec<String> {
    let ordered: Vec<&String> = hosts
        .iter()
        .filter(|host| Some(host.as_str()) == seen_on)
        .chain(hosts.iter().filter(|host| Some(host.as_str()) != seen_on))
        .collect();
    let address =
        |host: &str, port: u16| if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    ordered.into_iter().map(|host| address(host, port)).collect()
}

/// The app service a generation's container name belongs to (`…-gN` → `…`).
fn generation_stem(name: &str) -> Option<&str> {
    let (stem, generation) = name.rsplit_once("-g")?;
    (!generation.is_empty() && generation.bytes().all(|b| b.is_ascii_digit())).then_some(stem)
}

/// The service that runs a container: an app's generations share one.
fn service_name(spec: &ContainerSpec) -> String {
    match (&spec.role, spec.labels.get(labels::GENERATION)) {
        (ContainerRole::App, Some(generation)) => {
            spec.name.strip_suffix(&format!("-g{generation}")).unwrap_or(&spec.name).to_owned()
        }
        _ => spec.name.clone(),
    }
}

fn service_label<'a>(service: &'a Service, key: &str) -> Option<&'a str> {
    service.spec.as_ref()?.labels.as_ref()?.get(key).map(String::as_str)
}

/// The container a service runs now.
fn container_of(service: &Service) -> String {
    service_label(service, CONTAINER_LABEL)
        .map(str::to_owned)
        .or_else(|| service.spec.as_ref().and_then(|s| s.name.clone()))
        .unwrap_or_default()
}

fn service_id(service: &Service) -> String {
    service.id.clone().unwrap_or_default()
}

/// Labels that say whose an object is (copied onto configs and volumes).
fn is_identity_label(key: &str) -> bool {
    [labels::MANAGED, labels::TENANT, labels::INSTANCE, labels::OWNER].contains(&key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn is_in_use(error: &bollard::errors::Error) -> bool {
    matches!(error, bollard::errors::Error::DockerResponseServerError { status_code: 400 | 403 | 500, message } if message.contains("in use"))
}

/// The node label a service is pinned to, from its placement constraint.
fn pinned_label(spec: &ServiceSpec) -> Option<String> {
    let prefix = format!("node.labels.{NODE_LABEL}==");
    spec.task_template
        .as_ref()?
        .placement
        .as_ref()?
        .constraints
        .as_ref()?
        .iter()
        .find_map(|constraint| constraint.replace(' ', "").strip_prefix(&prefix).map(str::to_owned))
}

/// The instance (its `atrium.instance` label) and node label of every pinned service.
fn pinned_services(services: &[Service]) -> Vec<(Option<String>, String)> {
    services
        .iter()
        .filter_map(|service| {
            let spec = service.spec.as_ref()?;
            let labels = spec.labels.as_ref()?;
            Some((labels.get(labels::INSTANCE).cloned(), pinned_label(spec)?))
        })
        .collect()
}

/// The schedulable node where the fewest of `placed` (node labels, one per
/// pinned service or placement) are; among the least loaded, a hash of the
/// instance decides, so that instances placed at once by several processes
/// still spread.
fn least_loaded<'n, 'p>(
    instance: &str,
    nodes: &'n [SwarmNode],
    placed: impl Iterator<Item = &'p str>,
) -> Option<&'n SwarmNode> {
    let mut load: HashMap<&str, usize> = HashMap::new();
    for label in placed {
        *load.entry(label).or_default() += 1;
    }
    let candidates: Vec<&SwarmNode> = nodes.iter().filter(|node| node.schedulable && node.label.is_some()).collect();
    let rotation = usize::from(sha2::Sha256::digest(instance.as_bytes())[0]);
    candidates
        .iter()
        .enumerate()
        .min_by_key(|(index, node)| {
            let pinned_there = load.get(node.label.as_deref().unwrap_or_default()).copied().unwrap_or(0);
            (pinned_there, (index + rotation) % candidates.len())
        })
        .map(|(_, node)| *node)
}

fn published_port(service: &Service) -> Option<u16> {
    let ports = service.spec.as_ref()?.endpoint_spec.as_ref()?.ports.as_ref()?;
    ports.iter().find_map(|port| port.published_port).and_then(|port| u16::try_from(port).ok())
}

fn image_of(spec: Option<&ServiceSpec>) -> Option<&str> {
    spec?.task_template.as_ref()?.container_spec.as_ref()?.image.as_deref()
}

/// The newest task of the service's current spec: right after an update,
/// the old spec's task still runs.
fn newest_of_spec<'a>(service: &Service, tasks: &'a [Task]) -> Option<&'a Task> {
    let current = service.spec.as_ref().and_then(|s| s.task_template.as_ref());
    // A task Swarm still wants running comes first: one that it shut down
    // (on a drained node, say) may have changed since.
    tasks.iter().filter(|task| runs_spec(task, current)).max_by_key(|task| {
        (task.desired_state == Some(TaskState::RUNNING), task.version.as_ref().and_then(|v| v.index).unwrap_or(0))
    })
}

/// Whether a task runs the given task template's container (image, environment, labels).
fn runs_spec(task: &Task, template: Option<&TaskSpec>) -> bool {
    let theirs = task.spec.as_ref().and_then(|spec| spec.container_spec.as_ref());
    let ours = template.and_then(|template| template.container_spec.as_ref());
    match (theirs, ours) {
        (Some(theirs), Some(ours)) => {
            (&theirs.image, &theirs.env, &theirs.labels, &theirs.args)
                == (&ours.image, &ours.env, &ours.labels, &ours.args)
        }
        _ => false,
    }
}

fn update_state(service: &Service) -> Option<ServiceUpdateStatusStateEnum> {
    service.update_status.as_ref().and_then(|status| status.state)
}

/// What Swarm says of a service's last update.
fn update_message(service: &Service) -> String {
    service.update_status.as_ref().and_then(|status| status.message.clone()).unwrap_or_else(|| "no message".to_owned())
}

fn replicas_of(spec: &ServiceSpec) -> Option<i64> {
    spec.mode.as_ref()?.replicated.as_ref()?.replicas
}

/// Whether a task runs, or is on its way to.
fn task_is_live(task: &Task) -> bool {
    let state = task.status.as_ref().and_then(|s| s.state);
    let on_its_way = matches!(
        state,
        Some(
            TaskState::NEW
                | TaskState::ALLOCATED
                | TaskState::PENDING
                | TaskState::ASSIGNED
                | TaskState::ACCEPTED
                | TaskState::PREPARING
                | TaskState::READY
                | TaskState::STARTING
        )
    );
    state == Some(TaskState::RUNNING) || (on_its_way && task.desired_state == Some(TaskState::RUNNING))
}

/// What a task that did not come up said.
fn task_failure(task: &Task) -> String {
    let status = task.status.clone().unwrap_or_default();
    let state = status.state.map(|s| s.to_string()).unwrap_or_default();
    let err = status.err.unwrap_or_default();
    let message = status.message.unwrap_or_default();
    format!("task {state}: {}", if err.is_empty() { message } else { err })
}

#[async_trait]
impl Runtime for SwarmRuntime {
    async fn ensure_network(&self, name: &str, network_labels: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
        let _one_at_a_time = self.network_creation.lock().await;
        match self.api().inspect_network(name, None).await {
            Ok(network) if is_managed(network.labels.as_ref()) => return Ok(()),
            Ok(_) => return Err(self.not_managed(format!("network {name}"))),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(self.api_error("inspect network", name)(error)),
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("overlay".into()),
            // One-shot jobs (migrations, backups) join it as plain containers on the data's node.
            attachable: Some(true),
            // Traffic between a tenant's containers on different nodes is encrypted.
            options: self.encrypted_networks.then(|| HashMap::from([("encrypted".to_owned(), String::new())])),
            labels: Some(network_labels.clone().into_iter().collect()),
            ..Default::default()
        };
        match self.api().create_network(request).await {
            Ok(_) => Ok(()),
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
        if !is_managed(network.labels.as_ref()) {
            return Err(self.not_managed(format!("network {name}")));
        }
        let id = network.id.unwrap_or_default();
        let used = self.managed_services().await?.iter().any(|service| {
            service
                .spec
                .as_ref()
                .and_then(|spec| spec.task_template.as_ref())
                .and_then(|template| template.networks.as_ref())
                .is_some_and(|networks| {
                    networks.iter().any(|n| n.target.as_deref().is_some_and(|t| t == id || t == name))
                })
        });
        if used {
            return Ok(());
        }
        match self.api().remove_network(name).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) || is_conflict(&error) || is_in_use(&error) => Ok(()),
            Err(error)
                if matches!(&error, bollard::errors::Error::DockerResponseServerError { status_code: 403, .. }) =>
            {
                Ok(())
            }
            Err(error) => Err(self.api_error("remove network", name)(error)),
        }
    }

    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<bool, RuntimeError> {
        let instance = spec.labels.get(labels::INSTANCE).cloned().unwrap_or_default();
        let node = self.data_node(&instance).await?;
        self.engine(&node).await?.ensure_volume(spec).await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        for node in self.nodes().await? {
            if !node.ready {
                // A copy left on a node that is down stays there (its engine cannot be asked).
                tracing::warn!(target = %self.target, node = %node.hostname, volume = name, "the node is down: a copy of the volume there is left");
                continue;
            }
            self.engine(&node).await?.remove_volume(name).await?;
        }
        Ok(())
    }

    async fn place_data_elsewhere(&self, instance: &str) -> Result<Option<(String, String)>, RuntimeError> {
        let from = match self.data_node(instance).await {
            Ok(node) if node.schedulable => return Ok(None),
            Ok(node) => node.hostname,
            Err(RuntimeError::NodeUnreachable { node, .. }) => node,
            Err(error) => return Err(error),
        };
        let nodes = self.nodes().await?;
        let services = self.managed_services().await?;
        let pinned = pinned_services(&services);
        let mut placements = self.placements.lock().await;
        let placed = pinned.iter().map(|(_, label)| label.as_str()).chain(placements.values().map(String::as_str));
        let chosen = least_loaded(instance, &nodes, placed).ok_or_else(|| self.no_node_ready())?.clone();
        placements.insert(instance.to_owned(), chosen.label.clone().unwrap_or_default());
        tracing::warn!(target = %self.target, %instance, from = %from, to = %chosen.hostname, "the instance's data node cannot run it: its data goes onto another node, empty until a restore fills it");
        Ok(Some((from, chosen.hostname)))
    }

    async fn ensure_container(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        if spec.replicas > 1 {
            self.check_replicas(spec).await?;
        }
        let pinned = if spec.mounts.is_empty() {
            None
        } else {
            let instance = spec.labels.get(labels::INSTANCE).cloned().unwrap_or_default();
            let node = self.runnable_data_node(&instance).await?;
            node.label.clone()
        };
        let name = service_name(spec);
        let existing = self.managed_service(&name).await?;
        if let Some(existing) = &existing
            && service_label(existing, labels::INSTANCE) != spec.labels.get(labels::INSTANCE).map(String::as_str)
        {
            return Err(self.not_managed(format!("service {name}")));
        }
        let configs = self.ensure_configs(spec).await?;
        let _one_choice_at_a_time = self.port_choice.lock().await;
        let port = self.port_for(spec, existing.as_ref()).await?;
        let mut wanted = self.service_spec(spec, pinned.as_deref(), port, configs);
        let Some(existing) = existing else {
            return match self.api().create_service(wanted, None).await {
                Ok(_) => Ok(()),
                Err(error) if is_conflict(&error) => Ok(()),
                Err(error) => Err(self.api_error("create service", &name)(error)),
            };
        };
        let running = container_of(&existing);
        let unchanged = service_label(&existing, SERVICE_DIGEST_LABEL)
            == wanted.labels.as_ref().and_then(|l| l.get(SERVICE_DIGEST_LABEL)).map(String::as_str)
            && existing.spec.as_ref().and_then(pinned_label) == pinned
            && running == spec.name
            && image_of(existing.spec.as_ref()) == Some(spec.image.as_str());
        if unchanged {
            return self.scale(existing, i64::from(spec.replicas)).await;
        }
        if running != spec.name {
            // A new generation of the app: Swarm rolls the service to it,
            // and an undo before the old one is removed rolls it back.
            wanted.labels.get_or_insert_with(HashMap::new).insert(REPLACES_LABEL.to_owned(), running);
        } else if let Some(replaced) = service_label(&existing, REPLACES_LABEL) {
            wanted.labels.get_or_insert_with(HashMap::new).insert(REPLACES_LABEL.to_owned(), replaced.to_owned());
        }
        // Changed out of band, or a new spec: Swarm rolls the service to it.
        let version = existing.version.and_then(|v| v.index).unwrap_or(0);
        let options = UpdateServiceOptionsBuilder::default().version(version as i32).build();
        self.api()
            .update_service(&name, wanted, options, None)
            .await
            .map_err(self.api_error("update service", &name))?;
        Ok(())
    }

    async fn remove_container(&self, name: &str) -> Result<(), RuntimeError> {
        let service = match self.resolve(name).await? {
            Ok(service) => service,
            // The app's service runs a newer generation: this one's upgrade is over.
            Err(Some(newer)) => {
                let service = newer.spec.as_ref().and_then(|s| s.name.clone()).unwrap_or_default();
                if service_label(&newer, REPLACES_LABEL) == Some(name) {
                    self.set_service_label(newer, REPLACES_LABEL, None).await?;
                }
                // The old generation's files, now unused (those in use stay).
                return self.remove_configs(&service).await;
            }
            Err(None) => return self.remove_configs(generation_stem(name).unwrap_or(name)).await,
        };
        let service_name = service.spec.as_ref().and_then(|s| s.name.clone()).unwrap_or_default();
        if let Some(replaced) = service_label(&service, REPLACES_LABEL).map(str::to_owned) {
            // An upgrade in flight is undone: back to the generation it replaced.
            let version = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
            let options = UpdateServiceOptionsBuilder::default().version(version as i32).rollback("previous").build();
            let spec = service.spec.clone().unwrap_or_default();
            self.api()
                .update_service(&service_name, spec, options, None)
                .await
                .map_err(self.api_error("roll back service", &service_name))?;
            tracing::info!(target = %self.target, service = %service_name, to = %replaced, "rolled back");
            return Ok(());
        }
        let tasks = self.tasks_of(&service_id(&service)).await?;
        match self.api().delete_service(&service_name).await {
            Ok(()) => {}
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(self.api_error("remove service", &service_name)(error)),
        }
        self.wait_containers_gone(&tasks).await?;
        self.remove_configs(&service_name).await
    }

    async fn stop_container(&self, name: &str) -> Result<(), RuntimeError> {
        let Ok(service) = self.resolve(name).await? else { return Ok(()) };
        let id = service_id(&service);
        self.scale(service, 0).await?;
        self.wait_tasks_ended(&id).await
    }

    async fn start_container(&self, name: &str) -> Result<(), RuntimeError> {
        let Ok(service) = self.resolve(name).await? else {
            return Err(RuntimeError::NoRunningTask { target: self.target.clone(), service: name.to_owned() });
        };
        let replicas = service_label(&service, REPLICAS_LABEL).and_then(|n| n.parse().ok()).unwrap_or(1);
        self.scale(service, replicas).await
    }

    async fn list_managed(&self) -> Result<Vec<ObservedContainer>, RuntimeError> {
        let services = self.managed_services().await?;
        let filters = HashMap::from([("desired-state".to_owned(), vec!["running".to_owned()])]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        let tasks = self.api().list_tasks(Some(options)).await.map_err(self.api_error("list", "tasks"))?;
        let ids: Vec<String> = services
            .iter()
            .flat_map(|service| {
                service
                    .spec
                    .as_ref()
                    .and_then(|s| s.task_template.as_ref())
                    .and_then(|t| t.networks.clone())
                    .unwrap_or_default()
            })
            .filter_map(|network| network.target)
            .collect();
        let networks = self.network_names(&ids).await?;
        let nodes = self.nodes().await?;
        Ok(services
            .iter()
            .map(|service| {
                let own: Vec<&Task> = tasks.iter().filter(|task| task.service_id == service.id).collect();
                self.observe(service, &own, &networks, &nodes, false)
            })
            .collect())
    }

    async fn list_managed_volumes(&self) -> Result<Vec<ObservedVolume>, RuntimeError> {
        let mut volumes = Vec::new();
        for node in self.nodes().await? {
            volumes.extend(self.engine(&node).await?.list_managed_volumes().await?);
        }
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        volumes.dedup_by(|a, b| a.name == b.name);
        Ok(volumes)
    }

    async fn inspect(&self, name: &str) -> Result<Option<ObservedContainer>, RuntimeError> {
        let Ok(service) = self.resolve(name).await? else { return Ok(None) };
        let tasks = self.tasks_of(&service_id(&service)).await?;
        let ids: Vec<String> = service
            .spec
            .as_ref()
            .and_then(|s| s.task_template.as_ref())
            .and_then(|t| t.networks.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|network| network.target)
            .collect();
        let networks = self.network_names(&ids).await?;
        let own: Vec<&Task> = tasks.iter().collect();
        Ok(Some(self.observe(&service, &own, &networks, &self.nodes().await?, true)))
    }

    async fn wait_healthy(&self, name: &str, deadline: Duration) -> Result<(), RuntimeError> {
        let started = tokio::time::Instant::now();
        let mut last = String::from("no task yet");
        let unhealthy = |output: String| RuntimeError::Unhealthy {
            target: self.target.clone(),
            container: name.to_owned(),
            waited: started.elapsed(),
            output,
        };
        loop {
            let service = match self.resolve(name).await? {
                Ok(service) => service,
                // Rolled back by Swarm: reported once the version before serves again.
                Err(Some(other)) => {
                    let rolled_back = format!(
                        "Swarm rolled the service back to {}: {}",
                        container_of(&other),
                        update_message(&other)
                    );
                    let settled = update_state(&other) != Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
                        && self.newest_task_runs(&other).await?.unwrap_or(true);
                    if settled || started.elapsed() >= deadline {
                        return Err(unhealthy(rolled_back));
                    }
                    last = rolled_back;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                Err(None) => return Err(unhealthy("its service is gone".to_owned())),
            };
            match update_state(&service) {
                Some(
                    ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                    | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
                    | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
                    | ServiceUpdateStatusStateEnum::PAUSED,
                ) => {
                    return Err(unhealthy(format!("Swarm stopped the update: {}", update_message(&service))));
                }
                Some(ServiceUpdateStatusStateEnum::UPDATING) => last = update_message(&service),
                _ => {
                    let tasks = self.tasks_of(&service_id(&service)).await?;
                    // Every copy of the spec runs (healthy: Swarm says
                    // `running` only then), not only the newest.
                    let template = service.spec.as_ref().and_then(|s| s.task_template.as_ref());
                    let wanted = service.spec.as_ref().and_then(replicas_of).unwrap_or(1);
                    let running = tasks
                        .iter()
                        .filter(|task| runs_spec(task, template) && task.desired_state == Some(TaskState::RUNNING))
                        .filter(|task| task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
                        .count();
                    if let Some(task) = newest_of_spec(&service, &tasks) {
                        match task.status.as_ref().and_then(|s| s.state) {
                            Some(TaskState::RUNNING)
                                if task.desired_state == Some(TaskState::RUNNING)
                                    && i64::try_from(running).unwrap_or(i64::MAX) >= wanted =>
                            {
                                return Ok(());
                            }
                            Some(TaskState::FAILED | TaskState::REJECTED) => return Err(unhealthy(task_failure(task))),
                            _ => last = task_failure(task),
                        }
                    }
                }
            }
            if started.elapsed() >= deadline {
                return Err(RuntimeError::HealthDeadline {
                    target: self.target.clone(),
                    container: name.to_owned(),
                    waited: started.elapsed(),
                    output: last,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn export_volume(&self, volume: &VolumeSpec, image: &str, sink: ArchiveSender) -> Result<u64, RuntimeError> {
        let node = self.data_node(volume.labels.get(labels::INSTANCE).map_or("", String::as_str)).await?;
        self.engine(&node).await?.export_volume(volume, image, sink).await
    }

    async fn import_volume(
        &self,
        volume: &VolumeSpec,
        image: &str,
        source: ArchiveReceiver,
    ) -> Result<u64, RuntimeError> {
        let node = self.data_node(volume.labels.get(labels::INSTANCE).map_or("", String::as_str)).await?;
        self.engine(&node).await?.import_volume(volume, image, source).await
    }

    async fn exec(&self, name: &str, command: &[String]) -> Result<CommandOutput, RuntimeError> {
        let (engine, container) = self.running_container(name).await?;
        engine.exec(&container, command).await
    }

    async fn run_once(&self, spec: &ContainerSpec, deadline: Duration) -> Result<CommandOutput, RuntimeError> {
        let engine = if spec.mounts.is_empty() {
            Arc::clone(
                self.engines.lock().await.get(&self.manager_node).expect("the manager's engine is connected first"),
            )
        } else {
            let instance = spec.labels.get(labels::INSTANCE).cloned().unwrap_or_default();
            let node = self.runnable_data_node(&instance).await?;
            self.engine(&node).await?
        };
        debug_assert!(matches!(spec.role, ContainerRole::Job(_)));
        engine.run_once(spec, deadline).await
    }

    async fn write_files(&self, name: &str, files: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
        for (engine, container) in self.running_containers(name).await? {
            engine.write_files(&container, files).await?;
        }
        Ok(())
    }

    async fn exec_each(&self, name: &str, command: &[String]) -> Result<Vec<CommandOutput>, RuntimeError> {
        let mut outputs = Vec::new();
        for (engine, container) in self.running_containers(name).await? {
            outputs.push(engine.exec(&container, command).await?);
        }
        Ok(outputs)
    }

    /// The manager's requests and every node engine's (the manager's own
    /// engine counts only what went through it as a node).
    fn api_calls(&self) -> u64 {
        let nodes: u64 =
            self.engines.try_lock().map(|engines| engines.values().map(|e| e.api_calls()).sum()).unwrap_or(0);
        self.api_calls.load(Ordering::Relaxed) + nodes
    }

    async fn upstreams(&self, port: u16, seen_on: Option<&str>) -> Result<Vec<String>, RuntimeError> {
        let hosts: Vec<String> =
            self.nodes().await?.into_iter().filter(|node| node.schedulable).filter_map(|node| node.address).collect();
        Ok(node_upstreams(&hosts, port, seen_on))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_tries_the_node_it_runs_on_then_the_others() {
        let hosts = ["10.77.0.11", "10.77.0.12", "10.77.0.13"].map(String::from);
        assert_eq!(
            node_upstreams(&hosts, 20003, Some("10.77.0.12")),
            ["10.77.0.12:20003", "10.77.0.11:20003", "10.77.0.13:20003"]
        );
        assert_eq!(node_upstreams(&hosts, 20003, None), ["10.77.0.11:20003", "10.77.0.12:20003", "10.77.0.13:20003"]);
        assert_eq!(node_upstreams(&["fd00::1".to_owned()], 20002, None), ["[fd00::1]:20002"]);
    }

    #[test]
    fn an_apps_generations_share_one_service_and_sidecars_keep_their_names() {
        assert_eq!(generation_stem("atrium-acme-erp-g12"), Some("atrium-acme-erp"));
        for name in ["atrium-acme-erp-postgres", "atrium-acme-erp-g", "atrium-acme-erp-gx1", "erp"] {
            assert_eq!(generation_stem(name), None, "{name}");
        }
    }
}
