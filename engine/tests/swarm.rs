//! Integration tests: app instances on the three-node Docker Swarm that
//! `scripts/services.sh` starts, with the locally built `hello` app.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use atrium_engine::apply::app_instance::AppContext;
use atrium_engine::backends::error_chain;
use atrium_engine::backends::targets::Targets;
use atrium_engine::catalog::Catalog;
use atrium_engine::config::Orchestrator;
use atrium_engine::model::app_instance::{AppInstanceRecord, AppInstanceSpec, InstanceHealth};
use atrium_engine::observe::AppObservations;
use atrium_engine::registry::Registry;
use atrium_engine::test_services::{
    app_context, docker_in_cleanup, hello_spec, hello_stateless, registry_with_tenant, service_variable,
    swarm_nodes_running, test_target,
};

/// `docker ARGUMENTS` on `host`; its output lines. Panics with docker's error when it fails.
fn docker(host: &str, arguments: &[&str]) -> Vec<String> {
    let output = std::process::Command::new("docker").args(["-H", host]).args(arguments).output().expect("run docker");
    assert!(output.status.success(), "docker {arguments:?} on {host}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

fn manager() -> String {
    service_variable("ATRIUM_TEST_SWARM_HOST")
}

fn nodes() -> Vec<String> {
    service_variable("ATRIUM_TEST_SWARM_NODES").split(',').map(str::to_owned).collect()
}

struct SwarmFixture {
    _directory: tempfile::TempDir,
    observations: AppObservations,
    registry: Registry,
    catalog: Catalog,
    targets: Targets,
    tenant: String,
}

/// The tenant's services, configs and network on the swarm, and its volumes
/// on every node, are removed when the fixture goes, even after a panic.
impl Drop for SwarmFixture {
    fn drop(&mut self) {
        let filter = format!("label=atrium.tenant={}", self.tenant);
        let manager = manager();
        for (list, remove) in [
            (["service", "ls", "-q", "--filter"], ["service", "rm"]),
            (["config", "ls", "-q", "--filter"], ["config", "rm"]),
        ] {
            let found = docker_in_cleanup(&manager, &[&list[..], &[filter.as_str()]].concat());
            if !found.is_empty() {
                let found: Vec<&str> = found.iter().map(String::as_str).collect();
                docker_in_cleanup(&manager, &[&remove[..], &found].concat());
            }
        }
        // Removed services' containers stop within seconds; their volumes are in use until then.
        for _ in 0..20 {
            let mut left = 0;
            for node in nodes() {
                for volume in docker_in_cleanup(&node, &["volume", "ls", "-q", "--filter", &filter]) {
                    left += usize::from(docker_in_cleanup(&node, &["volume", "rm", &volume]).is_empty());
                }
            }
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        for network in docker_in_cleanup(&manager, &["network", "ls", "-q", "--filter", &filter]) {
            docker_in_cleanup(&manager, &["network", "rm", &network]);
        }
        // What a move to the engine target made there.
        let engine = service_variable("ATRIUM_TEST_DOCKER_HOST");
        for container in docker_in_cleanup(&engine, &["ps", "-aq", "--filter", &filter]) {
            docker_in_cleanup(&engine, &["rm", "-f", &container]);
        }
        for kind in ["volume", "network"] {
            for found in docker_in_cleanup(&engine, &[kind, "ls", "-q", "--filter", &filter]) {
                docker_in_cleanup(&engine, &[kind, "rm", &found]);
            }
        }
    }
}

/// The tests of this file take turns: one drains a node, which would strand
/// the other's instances.
static SWARM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A drained node, made active again when this goes (even after a panic).
struct Drained(String);

impl Drained {
    /// Drains `node` (its id or hostname).
    fn node(node: &str) -> Drained {
        let node_id = docker(&manager(), &["node", "inspect", node, "--format", "{{.ID}}"]).concat();
        docker(&manager(), &["node", "update", "--availability", "drain", &node_id]);
        Drained(node_id)
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        docker_in_cleanup(&manager(), &["node", "update", "--availability", "active", &self.0]);
    }
}

impl SwarmFixture {
    async fn new(short_name: &str) -> SwarmFixture {
        SwarmFixture::with_catalog(short_name, |_| Catalog::built_in()).await
    }

    /// A fixture whose catalog `catalog` makes in the fixture's own directory.
    async fn with_catalog(short_name: &str, catalog: fn(&std::path::Path) -> Catalog) -> SwarmFixture {
        let directory = tempfile::tempdir().unwrap();
        let tenant = format!("{short_name}-{}", std::process::id() % 100_000);
        let registry = registry_with_tenant(directory.path(), &tenant).await;
        let mut target = test_target("ATRIUM_TEST_SWARM_HOST");
        target.orchestrator = Some(Orchestrator::Swarm);
        // This machine's kernel has no IPsec for Swarm's encrypted overlay networks.
        target.encrypted_networks = Some(false);
        let targets = Targets::new(BTreeMap::from([
            ("local".to_owned(), target),
            ("engine".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST")),
        ]));
        SwarmFixture {
            observations: AppObservations::default(),
            registry,
            catalog: catalog(directory.path()),
            targets,
            tenant,
            _directory: directory,
        }
    }

    fn context(&self, deadline: Duration) -> AppContext<'_> {
        app_context(&self.registry, &self.observations, &self.catalog, &self.targets, deadline)
    }

    fn spec(&self, version: &str) -> AppInstanceSpec {
        hello_spec(&self.tenant, version)
    }

    fn service(&self) -> String {
        format!("atrium-{}-web", self.tenant)
    }

    /// The tenant's services on the swarm.
    fn services(&self) -> Vec<String> {
        docker(
            &manager(),
            &["service", "ls", "--filter", &format!("label=atrium.tenant={}", self.tenant), "--format", "{{.Name}}"],
        )
    }

    /// A route for `host` on the swarm's Caddy to the instance of `record`, as its domain's would be.
    async fn put_route(&self, record: &AppInstanceRecord, host: &str) {
        let handler = atrium_engine::apply::domain::proxy_to(&self.targets, record).await.unwrap().unwrap();
        let route = atrium_engine::backends::ingress::RouteSpec { hostname: host.to_owned(), tls: false, handler };
        let ingress = self.targets.ingress("local").await.unwrap();
        ingress.put_route(&route, Duration::from_secs(30)).await.unwrap();
    }

    /// A Go template of the app's service, as `docker service inspect` renders it.
    fn inspect(&self, template: &str) -> String {
        docker(&manager(), &["service", "inspect", &self.service(), "--format", template]).concat()
    }
}

/// The page at `path` of the app, at the address its record says.
fn page(record: &AppInstanceRecord, path: &str) -> Result<String, String> {
    let host = record.published_host.clone().ok_or("a swarm instance records the node it runs on")?;
    let port = record.published_port.ok_or("a published port")?;
    let failed = |e: std::io::Error| format!("GET {path} from {host}:{port}: {e}");
    let mut stream = std::net::TcpStream::connect((host.as_str(), port)).map_err(failed)?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(failed)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").map_err(failed)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(failed)?;
    Ok(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_on_a_swarm_rolls_forward_is_rolled_back_by_swarm_and_drift_is_repaired() {
    let _turn = SWARM.lock().await;
    let fixture = SwarmFixture::new("swarm").await;
    let context = fixture.context(Duration::from_secs(90));

    // Created: one service, pinned to the node that holds its data, serving
    // on the port published on that node.
    let first = context.deploy(&fixture.spec("1.0"), None, None).await.unwrap().record;
    assert_eq!(fixture.services(), [fixture.service()]);
    let volume = format!("atrium-{}-web-data", fixture.tenant);
    let holding: Vec<String> =
        nodes().into_iter().filter(|node| docker(node, &["volume", "ls", "-q"]).contains(&volume)).collect();
    assert_eq!(holding.len(), 1, "{volume} is on one node: {holding:?}");
    let node_address = holding[0].trim_start_matches("tcp://").split(':').next().unwrap().to_owned();
    assert_eq!(first.published_host.as_deref(), Some(node_address.as_str()), "it runs where its data is");
    assert!(fixture.inspect("{{json .Spec.TaskTemplate.Placement}}").contains("node.labels.atrium.node=="));
    assert!(page(&first, "/").unwrap().contains("hello 1.0"));

    // Upgraded: the same service, rolled by Swarm to the new generation.
    let upgraded = context.deploy(&fixture.spec("1.1"), None, None).await.unwrap().record;
    assert_eq!(upgraded.generation, first.generation + 1);
    assert_eq!(fixture.services(), [fixture.service()]);
    assert_eq!(
        fixture.inspect("{{index .Spec.Labels \"atrium.container\"}}"),
        format!("{}-g{}", fixture.service(), upgraded.generation)
    );
    assert_eq!(fixture.inspect("{{index .Spec.Labels \"atrium.replaces\"}}"), "", "the upgrade is over");
    assert!(page(&upgraded, "/").unwrap().contains("hello 1.1"));

    // A version that never turns healthy: Swarm rolls the service back by
    // itself, Atrium says so, and the version before serves on.
    let error = context.deploy(&fixture.spec("2.0"), None, None).await.unwrap_err().to_string();
    assert!(error.contains("Swarm"), "the error says Swarm rolled it back: {error}");
    let kept = fixture.registry.get_app_instance(&upgraded.spec.id).await.unwrap().unwrap();
    assert_eq!((kept.spec.version.as_str(), kept.generation), ("1.1", upgraded.generation));
    assert_eq!(
        fixture.inspect("{{index .Spec.Labels \"atrium.container\"}}"),
        format!("{}-g{}", fixture.service(), upgraded.generation)
    );
    assert!(page(&kept, "/").unwrap().contains("hello 1.1"));
    assert_eq!(context.observe(&kept.spec.id).await.unwrap().unwrap().1, InstanceHealth::Running);

    // Scaled to nothing out of band: stopped, and the next deploy repairs it.
    docker(&manager(), &["service", "scale", "--detach", &format!("{}=0", fixture.service())]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(context.observe(&kept.spec.id).await.unwrap().unwrap().1, InstanceHealth::Stopped);
    let repaired = context.deploy(&fixture.spec("1.1"), None, None).await.unwrap().record;
    assert!(page(&repaired, "/").unwrap().contains("hello 1.1"));

    // Its image changed out of band: drift, repaired the same way.
    docker(
        &manager(),
        &["service", "update", "--detach", "--no-resolve-image", "--image", "atrium/hello:1.0", &fixture.service()],
    );
    assert_eq!(context.observe(&kept.spec.id).await.unwrap().unwrap().1, InstanceHealth::Drifted);
    let repaired = context.deploy(&fixture.spec("1.1"), None, None).await.unwrap().record;
    assert!(page(&repaired, "/").unwrap().contains("hello 1.1"));

    // Removed out of band: missing, and made again on the node with the data.
    docker(&manager(), &["service", "rm", &fixture.service()]);
    assert_eq!(context.observe(&kept.spec.id).await.unwrap().unwrap().1, InstanceHealth::Missing);
    let again = context.deploy(&fixture.spec("1.1"), None, None).await.unwrap().record;
    assert_eq!(again.published_host.as_deref(), Some(node_address.as_str()));
    assert!(page(&again, "/").unwrap().contains("hello 1.1"));

    // Destroyed: nothing is left on the swarm but the data, on its node.
    context.destroy(&again.spec.id).await.unwrap();
    assert!(fixture.services().is_empty());
    let filter = format!("label=atrium.tenant={}", fixture.tenant);
    assert!(docker(&manager(), &["config", "ls", "-q", "--filter", &filter]).is_empty());
    assert!(docker(&manager(), &["network", "ls", "-q", "--filter", &filter]).is_empty());
    assert!(docker(&holding[0], &["volume", "ls", "-q"]).contains(&volume));
}

/// The node holding an instance's data is drained: the instance shows as
/// stranded, a deployment fails at once naming the node (never a new empty
/// volume on another node), and a move to the engine target takes it off
/// the swarm with its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_data_node_strands_the_instance_and_a_move_takes_it_off_with_its_data() {
    let _turn = SWARM.lock().await;
    let fixture = SwarmFixture::new("strand").await;
    let context = fixture.context(Duration::from_secs(60));
    let spec = fixture.spec("1.1");
    let deployed = context.deploy(&spec, None, None).await.unwrap().record;
    let app = format!("{}-g{}", fixture.service(), deployed.generation);
    let swarm = fixture.targets.runtime("local").await.unwrap();
    let write = ["sh", "-c", "echo 'kept through the drain' > /www/data/moved.txt"].map(String::from);
    assert_eq!(swarm.exec(&app, &write).await.unwrap().exit_code, Some(0));

    let volume = format!("atrium-{}-web-data", fixture.tenant);
    let holding: Vec<String> =
        nodes().into_iter().filter(|node| docker(node, &["volume", "ls", "-q"]).contains(&volume)).collect();
    assert_eq!(holding.len(), 1, "{volume} is on one node: {holding:?}");
    let node_id = docker(&holding[0], &["info", "--format", "{{.Swarm.NodeID}}"]).concat();
    let hostname = docker(&holding[0], &["info", "--format", "{{.Name}}"]).concat();
    let drained = Drained::node(&node_id);

    let mut health = InstanceHealth::Running;
    for _ in 0..60 {
        health = context.observe(&deployed.spec.id).await.unwrap().unwrap().1;
        if health == InstanceHealth::Stranded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(health, InstanceHealth::Stranded, "the instance whose data node is drained shows as stranded");
    let started = std::time::Instant::now();
    let error = context.deploy(&spec, None, None).await.unwrap_err();
    let error = atrium_engine::backends::error_chain(&error);
    assert!(error.contains(&hostname) && error.contains("drain"), "the error names the node and why: {error}");
    assert!(started.elapsed() < Duration::from_secs(20), "it fails at once, not at the deadline: {error}");
    for node in nodes().iter().filter(|node| **node != holding[0]) {
        assert!(!docker(node, &["volume", "ls", "-q"]).contains(&volume), "no empty volume was made on {node}");
    }

    // A move that would also change the version is refused before anything is touched.
    let both = AppInstanceSpec { target: "engine".into(), ..fixture.spec("1.0") };
    let refused = atrium_engine::backends::error_chain(&context.deploy(&both, None, None).await.unwrap_err());
    assert!(refused.contains("changes nothing else"), "{refused}");
    assert_eq!(fixture.registry.get_app_instance(&spec.id).await.unwrap().unwrap().spec.target, "local");

    // The way out without the node: a move, its data read through the node's engine.
    let moved = context.deploy(&AppInstanceSpec { target: "engine".into(), ..spec.clone() }, None, None).await;
    let moved = moved.unwrap_or_else(|error| panic!("{}", atrium_engine::backends::error_chain(&error))).record;
    assert_eq!(moved.spec.target, "engine");
    let engine = fixture.targets.runtime("engine").await.unwrap();
    let app = format!("{}-g{}", fixture.service(), moved.generation);
    let read = engine.exec(&app, &["cat", "/www/data/moved.txt"].map(String::from)).await.unwrap();
    assert_eq!(read.output.trim(), "kept through the drain");
    assert!(fixture.services().is_empty(), "nothing of it is left on the swarm: {:?}", fixture.services());
    assert_eq!(context.observe(&moved.spec.id).await.unwrap().unwrap().1, InstanceHealth::Running);
    drop(drained);

    // Destroyed with its data: the swarm's copy goes too.
    let destroy = AppInstanceSpec { delete_data_on_destroy: true, target: "engine".into(), ..spec.clone() };
    context.deploy(&destroy, None, None).await.unwrap();
    context.destroy(&moved.spec.id).await.unwrap();
    for node in nodes() {
        assert!(!docker(&node, &["volume", "ls", "-q"]).contains(&volume), "the copy on {node} is gone");
    }
}

/// The node holding an instance's data (hello with a PostgreSQL sidecar and
/// backups) is drained, after a backup was copied to the off-site store on
/// another engine: a restore of that copy, asked with `offsite_of`, brings
/// the instance back on another node with its file and its row. The old
/// node's copy stays until the node is back and the instance is destroyed
/// with its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_data_node_is_left_by_a_restore_of_the_off_site_copy_onto_another_node() {
    use atrium_engine::model::backup::RestoreRequest;
    use atrium_engine::test_services::{SecondEngineCleanup, hello_with_database};
    let _turn = SWARM.lock().await;
    let mut fixture = SwarmFixture::with_catalog("offnode", hello_with_database).await;
    let _store = SecondEngineCleanup { tenant: fixture.tenant.clone() };
    // The store runs on the second engine; the swarm's tasks reach the host
    // at the swarm bridge's address, where the store publishes its port.
    let port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let mut swarm = test_target("ATRIUM_TEST_SWARM_HOST");
    swarm.orchestrator = Some(Orchestrator::Swarm);
    swarm.encrypted_networks = Some(false);
    swarm.offsite_backups = Some(atrium_engine::config::OffsiteBackupsDocument {
        target: "cloud".into(),
        address: format!("{}:{port}", service_variable("ATRIUM_TEST_SWARM_GATEWAY")),
        password: Some(format!("offnode-{}-{port}-store", std::process::id())),
    });
    fixture.targets = Targets::new(BTreeMap::from([
        ("local".to_owned(), swarm),
        ("cloud".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST_2")),
    ]));
    let context = fixture.context(Duration::from_secs(120));
    let spec = fixture.spec("1.1");
    let deployed = context.deploy(&spec, None, None).await.unwrap_or_else(|e| panic!("{}", error_chain(&e))).record;
    let runtime = fixture.targets.runtime("local").await.unwrap();
    let app = format!("{}-g{}", fixture.service(), deployed.generation);
    let write = ["sh", "-c", "echo 'kept off-site' > /www/data/kept.txt"].map(String::from);
    assert_eq!(runtime.exec(&app, &write).await.unwrap().exit_code, Some(0));
    let database = format!("atrium-{}-web-postgres", fixture.tenant);
    let sql = |statement: &str| {
        let script = format!("psql -h /run/postgresql -U hello -d hello -Atc \"{statement}\"");
        ["sh".to_owned(), "-c".to_owned(), script]
    };
    let create = sql("create table notes (note text); insert into notes values ('a row')");
    assert_eq!(runtime.exec(&database, &create).await.unwrap().exit_code, Some(0));
    let backup = context.backup_now(&spec.id).await.unwrap_or_else(|e| panic!("{}", error_chain(&e)));

    let volume = format!("atrium-{}-web-data", fixture.tenant);
    let holding = |volume: &str| -> Vec<String> {
        nodes().into_iter().filter(|node| docker(node, &["volume", "ls", "-q"]).iter().any(|v| v == volume)).collect()
    };
    let old = holding(&volume);
    assert_eq!(old.len(), 1, "{volume} is on one node: {old:?}");
    let node_id = docker(&old[0], &["info", "--format", "{{.Swarm.NodeID}}"]).concat();
    let drained = Drained::node(&node_id);
    let mut health = InstanceHealth::Running;
    for _ in 0..60 {
        health = context.observe(&spec.id).await.unwrap().unwrap().1;
        if health == InstanceHealth::Stranded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(health, InstanceHealth::Stranded);

    // From a target that keeps no off-site copy: refused before anything moves.
    let nowhere = RestoreRequest { snapshot: "latest".into(), from: None, offsite_of: Some("cloud".into()) };
    let refused = context.deploy(&AppInstanceSpec { restore: Some(nowhere), ..spec.clone() }, None, None).await;
    let refused = error_chain(&refused.unwrap_err());
    assert!(
        refused.contains("nothing was changed") && refused.contains("target cloud sends its backups to no"),
        "{refused}"
    );
    assert_eq!(holding(&volume), old, "no volume was made on another node");

    // The restore of the off-site copy: the instance comes back on another
    // node, with the file of its volume and the row of its database.
    let restore = RestoreRequest { snapshot: "latest".into(), from: None, offsite_of: Some("local".into()) };
    let restoring = AppInstanceSpec { restore: Some(restore), ..spec.clone() };
    let restored = context.deploy(&restoring, None, None).await;
    let restored = restored.unwrap_or_else(|e| panic!("{}", error_chain(&e))).record;
    let now = holding(&volume);
    assert_eq!(now.len(), 2, "a new copy on another node, the old one left: {now:?}");
    let new_node = now.iter().find(|node| **node != old[0]).unwrap();
    let new_address = new_node.trim_start_matches("tcp://").split(':').next().unwrap();
    assert_eq!(restored.published_host.as_deref(), Some(new_address), "it runs on the new node");
    let served = page(&restored, "/data/kept.txt").unwrap();
    assert!(served.contains("kept off-site"), "the file is back: {served}");
    let rows = runtime.exec(&database, &sql("select note from notes")).await.unwrap();
    assert_eq!(rows.output.trim(), "a row", "the row is back");
    assert_eq!(context.observe(&spec.id).await.unwrap().unwrap().1, InstanceHealth::Running);
    let snapshots = context.snapshots(&spec.id).await.unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert!(!snapshots.iter().any(|s| s.id == backup.id), "the new node's repository starts anew: {snapshots:?}");

    // The node is back: the instance stays where its data now is.
    drop(drained);
    let again = context.deploy(&restoring, None, None).await.unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert_eq!(again.record.published_host.as_deref(), Some(new_address));
    assert!(page(&again.record, "/data/kept.txt").unwrap().contains("kept off-site"));

    // Destroyed with its data: both copies go.
    let destroy = AppInstanceSpec { delete_data_on_destroy: true, ..restoring.clone() };
    context.deploy(&destroy, None, None).await.unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    context.destroy(&spec.id).await.unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert_eq!(holding(&volume), Vec::<String>::new(), "no copy is left");
}

/// `GET /` through the test Caddy's plain HTTP server, for `host`: (status, body).
fn through_caddy(host: &str) -> (u16, String) {
    let port = service_variable("ATRIUM_TEST_CADDY_HTTP_PORT");
    let output = std::process::Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}", "-H", &format!("Host: {host}")])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// A stateless role (an app without volumes) is not pinned: when the node
/// running its task is drained, Swarm starts it on another node, and the
/// route written before (every node an upstream) reaches it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_task_moves_off_a_drained_node_and_its_route_follows() {
    let _turn = SWARM.lock().await;
    let fixture = SwarmFixture::with_catalog("stateless", hello_stateless).await;
    let context = fixture.context(Duration::from_secs(60));
    let deployed = context.deploy(&fixture.spec("1.1"), None, None).await.unwrap().record;
    assert!(!fixture.inspect("{{json .Spec.TaskTemplate.Placement}}").contains("atrium.node"), "not pinned");
    let host = format!("{}.stateless.test", fixture.tenant);
    fixture.put_route(&deployed, &host).await;
    let (status, page) = through_caddy(&host);
    assert!(status == 200 && page.contains("hello 1.1"), "before the drain: {status} {page}");

    let running_on = || {
        docker(
            &manager(),
            &["service", "ps", &fixture.service(), "--filter", "desired-state=running", "--format", "{{.Node}}"],
        )
    };
    let before = running_on();
    assert_eq!(before.len(), 1, "one task: {before:?}");
    let _drained = Drained::node(&before[0]);
    let mut after = Vec::new();
    for _ in 0..60 {
        after = running_on();
        if after.len() == 1
            && after != before
            && context.observe(&deployed.spec.id).await.unwrap().unwrap().1 == InstanceHealth::Running
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(after.len() == 1 && after != before, "the task moved off {before:?}: now on {after:?}");
    let (status, page) = through_caddy(&host);
    assert!(status == 200 && page.contains("hello 1.1"), "after the drain, through the same route: {status} {page}");
    fixture.targets.ingress("local").await.unwrap().remove_route(&host, Duration::from_secs(30)).await.unwrap();
    context.destroy(&deployed.spec.id).await.unwrap();
    assert!(fixture.services().is_empty());
}

/// The overlay address of the running task of `service` (without its prefix length).
/// A stateless app with two copies: each on its own node, both answering
/// on the published port and behind one route; the manager's login file is
/// in both; a copy on a drained node starts on the third; a count scaled
/// out of band is drift, repaired; more copies than nodes are refused; one
/// copy again at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_app_runs_several_copies_one_per_node() {
    let _turn = SWARM.lock().await;
    let fixture = SwarmFixture::with_catalog("copies", hello_stateless).await;
    let context = fixture.context(Duration::from_secs(90));
    let two = AppInstanceSpec { replicas: 2, ..fixture.spec("1.1") };
    let deployed = context.deploy(&two, None, None).await.unwrap_or_else(|e| panic!("{}", error_chain(&e))).record;
    let running_on = || swarm_nodes_running(&fixture.service());
    let on = running_on();
    assert!(on.len() == 2 && on[0] != on[1], "two copies on two nodes: {on:?}");
    let port = deployed.published_port.expect("a published port");
    let answering = |version: &str| {
        service_variable("ATRIUM_TEST_SWARM_ADDRESSES")
            .split(',')
            .filter(|address| {
                let record = AppInstanceRecord { published_host: Some((*address).to_owned()), ..deployed.clone() };
                page(&record, "/").is_ok_and(|page| page.contains(&format!("hello {version}")))
            })
            .count()
    };
    assert_eq!(answering("1.1"), 2, "each copy answers on its node's port {port}");
    let host = format!("{}.copies.test", fixture.tenant);
    fixture.put_route(&deployed, &host).await;
    let (status, body) = through_caddy(&host);
    assert!(status == 200 && body.contains("hello 1.1"), "through the route: {status} {body}");

    // The manager's login file (its password's hash) is in every copy.
    let hash = &deployed.manager_password_hash;
    let filter = format!("label=atrium.instance={}", deployed.spec.id);
    let mut copies = 0;
    for node in nodes() {
        for container in docker(&node, &["ps", "-q", "--filter", &filter]) {
            let conf = docker(&node, &["exec", &container, "cat", "/etc/httpd.conf"]).concat();
            assert!(conf.contains(hash.as_str()), "the login file on {node}: {conf}");
            copies += 1;
        }
    }
    assert_eq!(copies, 2);

    // Scaled out of band: drift, and the next deployment scales it back
    // (the same generation).
    docker(&manager(), &["service", "scale", "--detach", &format!("{}=3", fixture.service())]);
    assert_eq!(context.observe(&deployed.spec.id).await.unwrap().unwrap().1, InstanceHealth::Drifted);
    let repaired = context.deploy(&two, None, None).await.unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert_eq!(repaired.record.generation, deployed.generation);
    assert_eq!(fixture.inspect("{{.Spec.Mode.Replicated.Replicas}}"), "2");

    // A node running a copy is drained: the copy starts on the third node.
    let mut on = Vec::new();
    for _ in 0..60 {
        on = running_on();
        if on.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained = Drained::node(&on[0]);
    let mut moved = Vec::new();
    for _ in 0..60 {
        moved = running_on();
        if moved.len() == 2 && !moved.contains(&on[0]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(moved.len() == 2 && !moved.contains(&on[0]), "off {}: {moved:?}", on[0]);
    let (status, body) = through_caddy(&host);
    assert!(status == 200 && body.contains("hello 1.1"), "after the drain: {status} {body}");

    // Three copies with two nodes that run tasks: refused, naming why.
    let three = AppInstanceSpec { replicas: 3, ..two.clone() };
    let refused = error_chain(&context.deploy(&three, None, None).await.unwrap_err());
    assert!(refused.contains("2 of the swarm's 3 nodes can run tasks"), "{refused}");
    assert_eq!(fixture.inspect("{{.Spec.Mode.Replicated.Replicas}}"), "2", "left as it was");
    drop(drained);

    // An upgrade rolls the copies to the new version one at a time.
    let upgrade = AppInstanceSpec { version: "1.0".into(), ..two.clone() };
    let upgraded = context.deploy(&upgrade, None, None).await.unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert_eq!(upgraded.record.generation, deployed.generation + 1);
    assert_eq!(answering("1.0"), 2, "both copies run the new version");

    // One copy again: scaled down where it runs.
    let single = AppInstanceSpec { replicas: 1, ..upgrade.clone() };
    let one = context.deploy(&single, None, None).await.unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert_eq!((one.record.spec.replicas, one.record.generation), (1, upgraded.record.generation));
    assert_eq!(fixture.inspect("{{.Spec.Mode.Replicated.Replicas}}"), "1");
    assert_eq!(context.observe(&deployed.spec.id).await.unwrap().unwrap().1, InstanceHealth::Running);
    fixture.targets.ingress("local").await.unwrap().remove_route(&host, Duration::from_secs(30)).await.unwrap();
    context.destroy(&deployed.spec.id).await.unwrap();
    assert!(fixture.services().is_empty());
}

fn task_address(service: &str) -> String {
    let tasks = docker(&manager(), &["service", "ps", service, "--filter", "desired-state=running", "-q"]);
    let task = tasks.first().unwrap_or_else(|| panic!("{service} has a running task"));
    let addresses =
        docker(&manager(), &["inspect", task, "--format", "{{range .NetworksAttachments}}{{.Addresses}}{{end}}"]);
    let address = addresses.concat().trim_matches(|c| c == '[' || c == ']').to_owned();
    address.split('/').next().unwrap_or_default().to_owned()
}

/// Two tenants on the swarm, each on its own overlay network: a tenant's
/// container reaches its own app by address, and neither the other
/// tenant's address nor its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_on_a_swarm_cannot_reach_each_other() {
    let _turn = SWARM.lock().await;
    let (one, two) = (SwarmFixture::new("isola").await, SwarmFixture::new("isolb").await);
    let first = one.context(Duration::from_secs(60)).deploy(&one.spec("1.1"), None, None).await.unwrap().record;
    let second = two.context(Duration::from_secs(60)).deploy(&two.spec("1.1"), None, None).await.unwrap().record;
    let runtime = one.targets.runtime("local").await.unwrap();
    let app = format!("{}-g{}", one.service(), first.generation);
    let get = |address: String| {
        let runtime = runtime.clone();
        let app = app.clone();
        async move {
            let command = ["timeout", "3", "wget", "-q", "-O", "-", &format!("http://{address}/")].map(String::from);
            runtime.exec(&app, &command).await.unwrap()
        }
    };
    let own = get(task_address(&one.service())).await;
    assert!(own.exit_code == Some(0) && own.output.contains("hello 1.1"), "its own app: {own:?}");
    let other = get(task_address(&two.service())).await;
    assert_ne!(other.exit_code, Some(0), "the other tenant's app by address: {other:?}");
    let other_app = format!("{}-g{}", two.service(), second.generation);
    let by_name = get(other_app).await;
    assert_ne!(by_name.exit_code, Some(0), "the other tenant's app by name: {by_name:?}");
    one.context(Duration::from_secs(60)).destroy(&first.spec.id).await.unwrap();
    two.context(Duration::from_secs(60)).destroy(&second.spec.id).await.unwrap();
}
