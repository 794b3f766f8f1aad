//! Benchmark: `terraform apply` of N `hello` app instances against making
//! the same N containers directly with the Docker CLI (the specs Atrium's own
//! catalog renders: labels, environment, files, health check, limits and
//! hardening; 8 at a time, as a target's deployment slots allow), in the same
//! run; then the Docker API calls and wall time of a refresh (`terraform
//! plan`) of M instances. What Atrium does besides, and the baseline does not:
//! the registry's rows and claims, the tenant row, and Terraform itself.
//! Everything the run made is removed on every exit, a panic included.
//!
//!     scripts/bench.sh apps          # N=50, M=200
//!     scripts/bench.sh apps 20 50    # N=20, M=50
//!
//! Target (issue 3): apply ratio <= 1.3.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atrium_acceptance::{RegistryChoice, Workspace, provider_binary, provider_example_with_test_docker};
use atrium_engine::apply::app_instance::render_instance;
use atrium_engine::catalog::{Catalog, ContainerSpec};
use atrium_engine::model::TenantId;
use atrium_engine::model::tenant::{Manager, TenantRecord, TenantSpec, TenantStatus, Tier};
use atrium_engine::test_services::{hello_spec, service_variable};

/// Terraform's default parallelism; Atrium deploys at most
/// `DEPLOYMENTS_PER_TARGET` (8) of them at once on a target, and so does the
/// baseline.
const TERRAFORM_PARALLELISM: usize = 10;
const PARALLELISM: usize = atrium_engine::backends::targets::DEPLOYMENTS_PER_TARGET;

fn configuration(tenant: &str, count: usize) -> String {
    format!(
        r#"resource "atrium_tenant" "bench" {{
  name         = "{tenant}"
  display_name = "Benchmark"
  tier         = "enterprise"
  user_quota   = 1000
  manager = {{
    email = "bench@bench.example"
    name  = "Bench"
  }}
}}

resource "atrium_app_instance" "hello" {{
  count                  = {count}
  tenant_id              = atrium_tenant.bench.id
  name                   = format("app-%03d", count.index)
  app                    = "hello"
  target                 = "lyon-onprem"
  users                  = 1
  delete_data_on_destroy = true
}}
"#
    )
}

/// Runs the docker CLI; a failing command fails the benchmark, with what
/// docker said (the cleanup guard still removes what was made).
fn docker(host: &str, arguments: &[&str]) {
    let output = std::process::Command::new("docker").arg("-H").arg(host).args(arguments).output().expect("run docker");
    assert!(
        output.status.success(),
        "docker {}: {}",
        arguments.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The docker CLI's words for a container the engine rendered: the same
/// image, command, environment, labels, mounts, limits, health check,
/// hardening and network alias as Atrium's (so the baseline does the same
/// work), created stopped so that its files can be written first.
fn create_arguments(spec: &ContainerSpec) -> Vec<String> {
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
struct Cleanup {
    host: String,
    tenants: Vec<String>,
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
                let Ok(output) = std::process::Command::new("docker").arg("-H").arg(&self.host).args(&listing).output()
                else {
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
                let _ =
                    std::process::Command::new("docker").arg("-H").arg(&self.host).args(&remove).args(&ids).output();
            }
        }
    }
}

/// What the provider does per instance, with the Docker CLI at the same
/// parallelism (a target's deployment slots): the tenant network, then per
/// instance its volume, the container Atrium renders (created, its files
/// written, started) and a wait until it is healthy.
fn docker_cli_baseline(host: &str, tenant: &str, count: usize) -> f64 {
    let catalog = Catalog::built_in();
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
    let rendered: Vec<_> = (0..count)
        .map(|index| {
            let mut spec = hello_spec(tenant, "1.1");
            spec.id.name = format!("app-{index:03}");
            spec.users = 1;
            render_instance(entry, &spec, &tenant_record, "bench", 1, &Default::default(), &hash).unwrap()
        })
        .collect();
    let started = Instant::now();
    let network = &rendered[0].network;
    docker(host, &["network", "create", "--label", &format!("atrium.tenant={tenant}"), network]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..PARALLELISM {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let app = &rendered[index];
                    for volume in &app.volumes {
                        let labels: Vec<String> = volume
                            .labels
                            .iter()
                            .flat_map(|(k, v)| ["--label".to_owned(), format!("{k}={v}")])
                            .collect();
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
                        let output = std::process::Command::new("docker")
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
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    drop(Cleanup { host: host.to_owned(), tenants: vec![tenant.to_owned()] });
    seconds
}

fn timed(workspace: &Workspace, arguments: &[&str]) -> f64 {
    // terraform init (first command only) stays out of the measurement.
    workspace.init();
    let started = Instant::now();
    let run = workspace.terraform(arguments);
    assert!(run.code == 0 || run.code == 2, "terraform {arguments:?}\n{}\n{}", run.stdout, run.stderr);
    started.elapsed().as_secs_f64()
}

/// The Docker API calls and registry statements the provider processes
/// reported since the last call (the file is emptied).
fn take_stats(file: &std::path::Path) -> (u64, u64) {
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arguments: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let count = arguments.first().copied().unwrap_or(50);
    let refresh_count = arguments.get(1).copied().unwrap_or(200);
    let host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    println!("provider: {}", provider_binary().display());
    println!(
        "apply of {count} hello instances (terraform -parallelism={TERRAFORM_PARALLELISM}, {PARALLELISM} deployments at once on the target); refresh of {refresh_count}\n"
    );

    let workspace = Workspace::new("bench_apps", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_docker());
    let stats = workspace.path().join("stats.txt");
    // SAFETY: single-threaded here; child processes read the variable.
    unsafe { std::env::set_var("ATRIUM_STATS_FILE", &stats) };
    let tenant = format!("bench-{}", std::process::id());
    let apply = ["apply", "-auto-approve", "-input=false"];
    let destroy = ["destroy", "-auto-approve", "-input=false"];

    let _cleanup = Cleanup {
        host: host.clone(),
        tenants: (0..3)
            .map(|round| format!("bench-cli-{}-{round}", std::process::id()))
            .chain([tenant.clone()])
            .collect(),
    };
    let (mut terraform_times, mut docker_times) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let run_docker = |times: &mut Vec<f64>| {
            times.push(docker_cli_baseline(&host, &format!("bench-cli-{}-{round}", std::process::id()), count))
        };
        if round % 2 == 1 {
            run_docker(&mut docker_times);
        }
        workspace.write("main.tf", &configuration(&tenant, count));
        terraform_times.push(timed(&workspace, &apply));
        timed(&workspace, &destroy);
        if round % 2 == 0 {
            run_docker(&mut docker_times);
        }
        println!(
            "round {}: terraform apply {:.2} s | docker CLI {:.2} s",
            round + 1,
            terraform_times[round],
            docker_times[round]
        );
    }
    terraform_times.sort_by(f64::total_cmp);
    docker_times.sort_by(f64::total_cmp);
    let (terraform, cli) = (terraform_times[1], docker_times[1]);
    println!(
        "\nmedian apply of {count}: terraform {terraform:.2} s, docker CLI {cli:.2} s, ratio {:.2}x (target <= 1.30x)",
        terraform / cli
    );

    workspace.write("main.tf", &configuration(&tenant, refresh_count));
    let setup = timed(&workspace, &apply);
    take_stats(&stats);
    let refresh = timed(&workspace, &["plan", "-input=false", "-detailed-exitcode"]);
    let (calls, statements) = take_stats(&stats);
    println!(
        "refresh (terraform plan) of {refresh_count} instances: {refresh:.2} s wall, {calls} Docker API calls, {statements} registry statements (apply took {setup:.2} s)"
    );
    timed(&workspace, &destroy);
}
