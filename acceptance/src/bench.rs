//! What the benchmarks' baselines do by hand, shared by them: the Docker CLI
//! making the containers Atrium's catalog renders, and curl writing records
//! to PowerDNS and routes to Caddy the way Atrium does, then waiting for
//! HTTPS. Every failure fails the benchmark with what the tool said.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atrium_engine::apply::app_instance::render_instance;
use atrium_engine::catalog::{Catalog, ContainerSpec, RenderedApp};
use atrium_engine::model::TenantId;
use atrium_engine::model::tenant::{Manager, TenantRecord, TenantSpec, TenantStatus, Tier};
use atrium_engine::test_services::{hello_spec, service_variable};

/// Runs the docker CLI; a failing command fails the benchmark, with what
/// docker said (the cleanup guard still removes what was made).
pub fn docker(host: &str, arguments: &[&str]) {
    let output = Command::new("docker").arg("-H").arg(host).args(arguments).output().expect("run docker");
    assert!(
        output.status.success(),
        "docker {}: {}",
        arguments.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `hello` instance `name` of `tenant` (version 1.1, one user) as
/// Atrium's catalog renders it: network, volumes and containers.
pub fn render_hello(catalog: &Catalog, tenant: &str, name: &str) -> RenderedApp {
    let entry = catalog.get("hello").expect("the hello entry");
    let tenant_record = TenantRecord {
        spec: TenantSpec {
            name: TenantId::parse(tenant).unwrap(),
            display_name: "Benchmark".into(),
            tier: Tier::Enterprise,
            user_quota: 1000,
            expires_on: None,
            manager: Manager { email: "bench@bench.example".into(), name: "Bench".into() },
            welcome_email: false,
        },
        status: TenantStatus::Active,
        created_at: String::new(),
        owner: "bench".into(),
    };
    let hash = atrium_engine::model::password::Password::generate().hash();
    let mut spec = hello_spec(tenant, "1.1");
    spec.id.name = name.to_owned();
    spec.users = 1;
    render_instance(entry, &spec, &tenant_record, "bench", 1, &Default::default(), &hash, None).unwrap()
}

/// Creates a tenant's network, labelled as Atrium labels it.
pub fn create_network(host: &str, app: &RenderedApp, tenant: &str) {
    docker(host, &["network", "create", "--label", &format!("atrium.tenant={tenant}"), &app.network]);
}

/// What Atrium does to deploy one rendered instance, with the Docker CLI:
/// its volumes, its app container (created stopped, its files copied in,
/// started), and a wait until Docker reports it healthy.
pub fn deploy_rendered(host: &str, app: &RenderedApp) {
    for volume in &app.volumes {
        let labels: Vec<String> =
            volume.labels.iter().flat_map(|(k, v)| ["--label".to_owned(), format!("{k}={v}")]).collect();
        let mut arguments = vec!["volume".to_owned(), "create".to_owned()];
        arguments.extend(labels);
        arguments.push(volume.name.clone());
        docker(host, &arguments.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let container = app.app_container();
    let arguments = create_arguments(container);
    docker(host, &arguments.iter().map(String::as_str).collect::<Vec<_>>());
    let staging = tempfile::tempdir().unwrap();
    for (path, content) in &container.files {
        let file = staging.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    docker(host, &["cp", &format!("{}/.", staging.path().display()), &format!("{}:/", container.name)]);
    docker(host, &["start", &container.name]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let output = Command::new("docker")
            .args(["-H", host, "inspect", "-f", "{{.State.Health.Status}}", &container.name])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&output.stdout).trim() == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "{} never turned healthy", container.name);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The loopback port Docker published for a container's `port`.
pub fn published_port(host: &str, container: &str, port: u16) -> u16 {
    let output = Command::new("docker").args(["-H", host, "port", container, &port.to_string()]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "docker port {container}: {}", String::from_utf8_lossy(&output.stderr));
    text.lines()
        .find_map(|line| line.rsplit_once(':').and_then(|(_, port)| port.trim().parse().ok()))
        .unwrap_or_else(|| panic!("docker port {container} printed no port: {text}"))
}

/// The docker CLI's words for a container the engine rendered: the same
/// image, command, environment, labels, mounts, limits, health check,
/// hardening and network alias as Atrium's (so the baseline does the same
/// work), created stopped so that its files can be written first.
pub fn create_arguments(spec: &ContainerSpec) -> Vec<String> {
    let mut arguments: Vec<String> =
        ["create", "--name", &spec.name, "--init", "--restart", "unless-stopped"].map(String::from).to_vec();
    let mut add = |flag: &str, value: String| arguments.extend([flag.to_owned(), value]);
    add("--network", spec.network.clone());
    add("--network-alias", spec.network_alias.clone());
    if let Some(port) = spec.port {
        add("-p", format!("127.0.0.1::{port}"));
    }
    add("--cpus", format!("{}", spec.nano_cpus as f64 / 1e9));
    add("--memory", format!("{}b", spec.memory_bytes));
    for (key, value) in &spec.environment {
        add("-e", format!("{key}={value}"));
    }
    for (key, value) in &spec.labels {
        add("--label", format!("{key}={value}"));
    }
    for (volume, path) in &spec.mounts {
        add("-v", format!("{volume}:{path}"));
    }
    if let Some(health) = &spec.health {
        add("--health-cmd", health.test.iter().skip(1).cloned().collect::<Vec<_>>().join(" "));
        add("--health-interval", format!("{}ms", health.interval_nanoseconds / 1_000_000));
        add("--health-timeout", format!("{}ms", health.timeout_nanoseconds / 1_000_000));
        add("--health-retries", health.retries.to_string());
    }
    add("--security-opt", "no-new-privileges:true".to_owned());
    add("--cap-drop", "ALL".to_owned());
    for capability in &spec.capabilities {
        add("--cap-add", capability.clone());
    }
    add("--pids-limit", "1024".to_owned());
    add("--log-opt", "max-size=10m".to_owned());
    add("--log-opt", "max-file=3".to_owned());
    arguments.push(spec.image.clone());
    arguments.extend(spec.command.iter().flatten().cloned());
    arguments
}

/// Removes everything labelled as one tenant's on the engine (containers,
/// then volumes, then networks), on every exit of the benchmark, a panic
/// included, so that an aborted run never leaves load behind.
pub struct Cleanup {
    pub host: String,
    pub tenants: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for tenant in &self.tenants {
            let filter = format!("label=atrium.tenant={tenant}");
            for what in [["ps", "-aq"], ["volume", "ls"], ["network", "ls"]] {
                let mut listing = vec![what[0], what[1], "--filter", &filter];
                if what[0] != "ps" {
                    listing.extend(["-q"]);
                }
                let Ok(output) = Command::new("docker").arg("-H").arg(&self.host).args(&listing).output() else {
                    continue;
                };
                let ids: Vec<String> =
                    String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_owned).collect();
                if ids.is_empty() {
                    continue;
                }
                let remove = match what[0] {
                    "ps" => vec!["rm", "-f"],
                    other => vec![other, "rm"],
                };
                let _ = Command::new("docker").arg("-H").arg(&self.host).args(&remove).args(&ids).output();
            }
        }
    }
}

/// Runs `work(index)` for `0..count` on `workers` threads.
pub fn in_parallel(workers: usize, count: usize, work: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    work(index);
                }
            });
        }
    });
}

/// At most `limit` holders at once (the target's deployment slots in a baseline).
pub struct Gate {
    free: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

impl Gate {
    pub fn new(limit: usize) -> Gate {
        Gate { free: std::sync::Mutex::new(limit), freed: std::sync::Condvar::new() }
    }

    /// Runs `work` holding one place.
    pub fn hold<T>(&self, work: impl FnOnce() -> T) -> T {
        let mut free = self.free.lock().unwrap();
        while *free == 0 {
            free = self.freed.wait(free).unwrap();
        }
        *free -= 1;
        drop(free);
        let result = work();
        *self.free.lock().unwrap() += 1;
        self.freed.notify_one();
        result
    }
}

/// Caddy resets its admin connections on every config change, so a script
/// driving it in parallel must retry requests that got no answer (status 0),
/// as this one does.
pub fn curl_until_answered(arguments: &[&str]) -> (u16, String) {
    for _ in 0..50 {
        let answer = curl(arguments);
        if answer.0 != 0 {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    curl(arguments)
}

/// One curl call: (HTTP status, 0 when nothing answered; body).
pub fn curl(arguments: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(arguments)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// Routes waiting to be written, and the hosts already written, shared by
/// the baseline's workers.
#[derive(Default)]
pub struct RouteBatch {
    pending: std::sync::Mutex<Vec<serde_json::Value>>,
    written: std::sync::Mutex<std::collections::HashSet<String>>,
    writing: std::sync::Mutex<()>,
}

/// Writes `route` the way Atrium does: routes that wait together go in one
/// write of the server's route list (one Caddy reload, which cancels the
/// certificate orders in flight, for all of them), before its catch-all,
/// under If-Match; a refused or cut-off write is read and tried again.
pub fn write_routes_batched(admin: &str, batch: &RouteBatch, route: serde_json::Value, host: &str) {
    batch.pending.lock().unwrap().push(route);
    let _writing = batch.writing.lock().unwrap();
    if batch.written.lock().unwrap().contains(host) {
        return;
    }
    let routes_path = format!("{admin}/config/apps/http/servers/atrium/routes");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the baseline could not write its routes to Caddy in 2 minutes");
        let output =
            Command::new("curl").args(["-s", "--max-time", "10", "-D", "-", &routes_path]).output().expect("run curl");
        // Caddy sends the Etag as a trailer, after the body.
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let Some((_, rest)) = text.split_once("\r\n\r\n") else { continue };
        let Some(trailer) = rest.to_ascii_lowercase().rfind("etag:") else { continue };
        let (body, etag) = (&rest[..trailer], rest[trailer + 5..].trim().to_owned());
        let Ok(serde_json::Value::Array(mut routes)) = serde_json::from_str::<serde_json::Value>(body.trim()) else {
            continue;
        };
        let pending: Vec<serde_json::Value> = batch.pending.lock().unwrap().clone();
        let catch_all = routes.iter().position(|r| r["@id"] == "atrium-catch-all").unwrap_or(routes.len());
        for (offset, route) in pending.iter().enumerate() {
            routes.insert(catch_all + offset, route.clone());
        }
        let data = serde_json::Value::Array(routes).to_string();
        let (status, _) = curl(&[
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/json",
            "-H",
            &format!("If-Match: {etag}"),
            "--data",
            &data,
            &routes_path,
        ]);
        if status == 200 {
            let mut written = batch.written.lock().unwrap();
            for route in &pending {
                if let Some(host) = route["match"][0]["host"][0].as_str() {
                    written.insert(host.to_owned());
                }
            }
            batch.pending.lock().unwrap().retain(|route| !pending.contains(route));
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A platform subdomain by hand, as Atrium makes one: its A record
/// (PowerDNS API), its route before the catch-all (Caddy admin API, writes
/// batched as Atrium batches them), then polling until the app answers over
/// HTTPS with a certificate the test CA's root verifies.
pub fn serve_by_hand(zone: &str, host: &str, upstream: &str, routes: &RouteBatch) {
    let pdns = format!("{}/api/v1/servers/localhost/zones/{zone}.", service_variable("ATRIUM_TEST_PDNS_URL"));
    let key = format!("X-API-Key: {}", service_variable("ATRIUM_TEST_PDNS_API_KEY"));
    let record = format!(
        r#"{{"rrsets":[{{"name":"{host}.","type":"A","ttl":300,"changetype":"REPLACE","records":[{{"content":"127.0.0.1","disabled":false}}]}}]}}"#
    );
    let (status, body) = curl_until_answered(&["-X", "PATCH", "-H", &key, "--data", &record, &pdns]);
    assert_eq!(status, 204, "record {host}: {body}");
    let route = serde_json::json!({
        "@id": format!("bench-{host}"),
        "match": [{"host": [host]}],
        "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": upstream}]}],
        "terminal": true
    });
    write_routes_batched(&service_variable("ATRIUM_TEST_CADDY_ADMIN_URL"), routes, route, host);
    let https_port = service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT");
    let root = service_variable("ATRIUM_TEST_ACME_ROOT_FILE");
    let resolve = format!("{host}:{https_port}:127.0.0.1");
    let url = format!("https://{host}:{https_port}/");
    let deadline = Instant::now() + Duration::from_secs(180);
    while curl(&["--resolve", &resolve, "--cacert", &root, &url]).0 != 200 {
        assert!(Instant::now() < deadline, "{host} never answered over HTTPS");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Removes what `serve_by_hand` made for `host`.
pub fn unserve_by_hand(zone: &str, host: &str) {
    let pdns = format!("{}/api/v1/servers/localhost/zones/{zone}.", service_variable("ATRIUM_TEST_PDNS_URL"));
    let key = format!("X-API-Key: {}", service_variable("ATRIUM_TEST_PDNS_API_KEY"));
    let admin = service_variable("ATRIUM_TEST_CADDY_ADMIN_URL");
    // A retried PUT may have inserted a second copy: delete until there is none.
    while curl_until_answered(&["-X", "DELETE", &format!("{admin}/id/bench-{host}")]).0 == 200 {}
    let delete = format!(r#"{{"rrsets":[{{"name":"{host}.","type":"A","changetype":"DELETE"}}]}}"#);
    curl_until_answered(&["-X", "PATCH", "-H", &key, "--data", &delete, &pdns]);
}

/// An engine context for benchmarks: the test owner, no mailer, nothing cancels it.
pub use atrium_engine::test_services::app_context;

/// The wall time of one terraform command in `workspace`, which must exit 0
/// or 2 (a plan with changes); terraform init (first command only) stays out
/// of the measurement.
pub fn timed_terraform(workspace: &crate::Workspace, arguments: &[&str]) -> f64 {
    workspace.init();
    let started = Instant::now();
    let run = workspace.terraform(arguments);
    assert!(run.code == 0 || run.code == 2, "terraform {arguments:?}\n{}\n{}", run.stdout, run.stderr);
    started.elapsed().as_secs_f64()
}

/// The Docker API calls and registry statements the provider processes
/// reported since the last call (the file is emptied).
pub fn take_stats(file: &std::path::Path) -> (u64, u64) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    std::fs::write(file, "").expect("empty the stats file");
    let sum = |key: &str| -> u64 {
        text.lines()
            .filter(|line| line.starts_with(key))
            .map(|line| {
                let count = line.split_whitespace().last().and_then(|n| n.parse::<u64>().ok());
                count.unwrap_or_else(|| panic!("a stats line without a count: {line:?}"))
            })
            .sum()
    };
    (sum("docker_api_calls "), sum("registry_statements "))
}

/// Whether an HTTP server answers `GET /` on `host:port` (any status below 500).
async fn answers(host: &str, port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        let status: u16 = std::str::from_utf8(&head[9..12]).ok()?.parse().ok()?;
        Some(head.starts_with(b"HTTP/1.") && status < 500)
    };
    tokio::time::timeout(Duration::from_secs(2), ask).await.ok().flatten().unwrap_or(false)
}

/// Which app container answered (`TARGET/CONTAINER`), and when.
type Answers = std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>>;

/// The runtimes a downtime is watched on, by target name.
pub type Watched = [(String, std::sync::Arc<dyn atrium_engine::backends::Runtime>)];

/// Asks every published app container of `tenant` on every watched target
/// every 50 ms until `stop`.
async fn poll(
    watched: Vec<(String, std::sync::Arc<dyn atrium_engine::backends::Runtime>)>,
    tenant: String,
    answered: Answers,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use atrium_engine::model::container::labels;
    while !stop.load(Ordering::SeqCst) {
        let round = Instant::now();
        for (target, runtime) in &watched {
            let listed = runtime.list_managed().await.unwrap_or_else(|error| panic!("listing containers: {error}"));
            for container in listed {
                let ours = container.labels.get(labels::TENANT) == Some(&tenant)
                    && container.labels.get(labels::ROLE).map(String::as_str) == Some("app");
                let host = container.published_host.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
                if let (true, Some(port)) = (ours, container.published_port)
                    && answers(&host, port).await
                {
                    answered.lock().unwrap().push((Instant::now(), format!("{target}/{}", container.name)));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50).saturating_sub(round.elapsed())).await;
    }
}

/// The downtime in `answered` around a change that started at `started`:
/// from the last answer of `old` (before a gap of more than half a second,
/// or before another container answers) to the first answer after it;
/// `None` while nothing answered after the gap.
fn gap(answered: &[(Instant, String)], old: &str, started: Instant) -> Option<f64> {
    let before = answered.iter().rfind(|(at, _)| *at < started);
    assert!(before.is_some_and(|(_, name)| name == old), "{old} did not answer before the change");
    let mut last_old = before.map(|(at, _)| *at)?;
    for (at, name) in answered.iter().filter(|(at, _)| *at >= started) {
        if name == old && at.duration_since(last_old) <= Duration::from_millis(500) {
            last_old = *at;
        } else {
            return Some(at.duration_since(last_old).as_secs_f64());
        }
    }
    None
}

/// Runs `change` while polling the app containers of `tenant` on the
/// `watched` targets, and returns the downtime it caused: from the last
/// answer of `old` (`TARGET/CONTAINER`) to the first answer after it,
/// waiting up to a minute after the change for that answer.
pub async fn downtime<F: std::future::Future<Output = ()>>(
    watched: &Watched,
    tenant: &str,
    old: &str,
    change: F,
) -> f64 {
    let answered = Answers::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = tokio::spawn(poll(watched.to_vec(), tenant.to_owned(), answered.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    change.await;
    let changed = Instant::now();
    let found = loop {
        if let Some(found) = gap(&answered.lock().unwrap(), old, started) {
            break found;
        }
        assert!(changed.elapsed() < Duration::from_secs(60), "nothing answers a minute after the change");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::SeqCst);
    poller.await.unwrap_or_else(|error| panic!("the poller failed: {error}"));
    found
}
