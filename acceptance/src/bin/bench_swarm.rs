//! Benchmark: `terraform apply` of N `hello` app instances on the three-node
//! swarm target against making the same N services directly with the Docker
//! CLI at the same parallelism (8 at a time, as a target's deployment slots
//! allow), in the same run; then the Docker API calls and wall time of a
//! refresh (`terraform plan`) of the N.
//!
//! The baseline does per instance what Atrium's swarm runtime does: the
//! data volume on a node (round robin; Atrium picks the least loaded), the
//! catalog's file as a Swarm config, one service with the same image,
//! command, environment, labels, limits, health check, hardening, network
//! alias, host-mode port and placement on the volume's node, and a wait
//! until its task runs (healthy). What Atrium does besides: the registry's
//! rows and claims, the manager's login file written into the task's
//! container and a reload (two calls to the node's engine), the tenant row,
//! and Terraform itself. Everything the run made is removed on every exit, a
//! panic included.
//!
//!     scripts/bench.sh swarm         # N=30
//!     scripts/bench.sh swarm 10      # N=10
//!
//! Target (issue 13): apply ratio <= 1.3.

use std::process::Command;
use std::time::{Duration, Instant};

use atrium_acceptance::bench::{docker, in_parallel, render_hello, take_stats, timed_terraform};
use atrium_acceptance::{RegistryChoice, Workspace, provider_binary};
use atrium_engine::catalog::Catalog;
use atrium_engine::model::container::ContainerSpec;
use atrium_engine::test_services::service_variable;

const PARALLELISM: usize = atrium_engine::backends::targets::DEPLOYMENTS_PER_TARGET;
/// The baseline's published ports, apart from the range Atrium picks from (20000–29999).
const BASELINE_PORTS: u16 = 31000;

fn configuration(manager: &str, tenant: &str, count: usize) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    atrium = {{
      source  = "atrium-hosting/atrium"
      version = "~> 0.1"
    }}
  }}
}}

provider "atrium" {{
  targets = {{
    swarm = {{
      location           = "cloud"
      orchestrator       = "swarm"
      docker_host        = "{manager}"
      encrypted_networks = false
    }}
  }}
}}

resource "atrium_tenant" "bench" {{
  name         = "{tenant}"
  display_name = "Benchmark"
  tier         = "enterprise"
  user_quota   = 1000
  manager = {{
    email = "bench@bench.example"
    name  = "Bench"
  }}
  welcome_email = false
}}

resource "atrium_app_instance" "hello" {{
  count                  = {count}
  tenant_id              = atrium_tenant.bench.id
  name                   = format("app-%03d", count.index)
  app                    = "hello"
  target                 = "swarm"
  users                  = 1
  delete_data_on_destroy = true
}}
"#
    )
}

fn nodes() -> Vec<String> {
    service_variable("ATRIUM_TEST_SWARM_NODES").split(',').map(str::to_owned).collect()
}

/// `docker ARGUMENTS` on `host`, its output; panics with docker's error.
fn docker_output(host: &str, arguments: &[&str]) -> String {
    let output = Command::new("docker").arg("-H").arg(host).args(arguments).output().expect("run docker");
    assert!(output.status.success(), "docker {arguments:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The Docker CLI's words for the service Atrium makes of `spec`, on node `node_name`.
fn service_arguments(
    spec: &ContainerSpec,
    service: &str,
    node_name: &str,
    port: u16,
    configs: &[(String, String)],
) -> Vec<String> {
    let mut arguments: Vec<String> = [
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        service,
        "--init",
        "--restart-condition",
        "any",
    ]
    .map(String::from)
    .to_vec();
    let mut add = |flag: &str, value: String| arguments.extend([flag.to_owned(), value]);
    add("--network", format!("name={},alias={}", spec.network, spec.network_alias));
    add("--endpoint-mode", "dnsrr".to_owned());
    if let Some(target) = spec.port {
        add("--publish", format!("mode=host,target={target},published={port}"));
    }
    add("--constraint", format!("node.hostname=={node_name}"));
    add("--limit-cpu", format!("{}", spec.nano_cpus as f64 / 1e9));
    add("--limit-memory", format!("{}b", spec.memory_bytes));
    add("--limit-pids", "1024".to_owned());
    for (key, value) in &spec.environment {
        add("--env", format!("{key}={value}"));
    }
    for (key, value) in &spec.labels {
        add("--label", format!("{key}={value}"));
        add("--container-label", format!("{key}={value}"));
    }
    for (volume, path) in &spec.mounts {
        add("--mount", format!("type=volume,source={volume},target={path}"));
    }
    for (name, path) in configs {
        add("--config", format!("source={name},target={path},mode=0644"));
    }
    if let Some(health) = &spec.health {
        add("--health-cmd", health.test.iter().skip(1).cloned().collect::<Vec<_>>().join(" "));
        add("--health-interval", format!("{}ms", health.interval_nanoseconds / 1_000_000));
        add("--health-timeout", format!("{}ms", health.timeout_nanoseconds / 1_000_000));
        add("--health-retries", health.retries.to_string());
    }
    add("--cap-drop", "ALL".to_owned());
    for capability in &spec.capabilities {
        add("--cap-add", capability.clone());
    }
    arguments.push(spec.image.clone());
    arguments.extend(spec.command.iter().flatten().cloned());
    arguments
}

/// Removes everything of `tenant` on the swarm: services, configs, then
/// volumes on every node (once the tasks have stopped), then the network.
struct SwarmCleanup {
    tenants: Vec<String>,
}

impl Drop for SwarmCleanup {
    fn drop(&mut self) {
        let manager = service_variable("ATRIUM_TEST_SWARM_HOST");
        let quietly = |host: &str, arguments: &[&str]| -> Vec<String> {
            Command::new("docker")
                .arg("-H")
                .arg(host)
                .args(arguments)
                .output()
                .map(|output| String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        for tenant in &self.tenants {
            let filter = format!("label=atrium.tenant={tenant}");
            for (list, remove) in [("service", "rm"), ("config", "rm")] {
                let found = quietly(&manager, &[list, "ls", "-q", "--filter", &filter]);
                if !found.is_empty() {
                    let mut arguments = vec![list, remove];
                    arguments.extend(found.iter().map(String::as_str));
                    quietly(&manager, &arguments);
                }
            }
            for _ in 0..30 {
                let mut left = 0;
                for node in nodes() {
                    for volume in quietly(&node, &["volume", "ls", "-q", "--filter", &filter]) {
                        left += usize::from(quietly(&node, &["volume", "rm", &volume]).is_empty());
                    }
                }
                if left == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            for network in quietly(&manager, &["network", "ls", "-q", "--filter", &filter]) {
                quietly(&manager, &["network", "rm", &network]);
            }
        }
    }
}

/// The same services with the Docker CLI, `PARALLELISM` at a time; seconds taken.
fn docker_cli_baseline(tenant: &str, count: usize) -> f64 {
    let manager = service_variable("ATRIUM_TEST_SWARM_HOST");
    let nodes = nodes();
    let hostnames: Vec<String> =
        nodes.iter().map(|node| docker_output(node, &["info", "--format", "{{.Name}}"]).trim().to_owned()).collect();
    let catalog = Catalog::built_in();
    let rendered: Vec<_> = (0..count).map(|index| render_hello(&catalog, tenant, &format!("app-{index:03}"))).collect();
    let _cleanup = SwarmCleanup { tenants: vec![tenant.to_owned()] };
    let started = Instant::now();
    docker(
        &manager,
        &[
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            "--label",
            &format!("atrium.tenant={tenant}"),
            &rendered[0].network,
        ],
    );
    in_parallel(PARALLELISM, count, |index| {
        let app = &rendered[index];
        let node = index % nodes.len();
        for volume in &app.volumes {
            let mut arguments = vec!["volume".to_owned(), "create".to_owned()];
            arguments.extend(volume.labels.iter().flat_map(|(k, v)| ["--label".to_owned(), format!("{k}={v}")]));
            arguments.push(volume.name.clone());
            docker(&nodes[node], &arguments.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let container = app.app_container();
        let service = container.name.trim_end_matches(char::is_numeric).trim_end_matches("-g").to_owned();
        let mut configs = Vec::new();
        for (number, (path, content)) in container.files.iter().enumerate() {
            let name = format!("{service}-file{number}");
            let mut child = Command::new("docker")
                .args(["-H", &manager, "config", "create", "--label", &format!("atrium.tenant={tenant}"), &name, "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("run docker config create");
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), content.as_bytes()).unwrap();
            drop(child.stdin.take());
            assert!(child.wait().unwrap().success(), "docker config create {name}");
            configs.push((name, path.clone()));
        }
        let port = BASELINE_PORTS + index as u16;
        let arguments = service_arguments(container, &service, &hostnames[node], port, &configs);
        docker(&manager, &arguments.iter().map(String::as_str).collect::<Vec<_>>());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let states = docker_output(
                &manager,
                &["service", "ps", "--filter", "desired-state=running", "--format", "{{.CurrentState}}", &service],
            );
            if states.lines().any(|state| state.starts_with("Running")) {
                break;
            }
            assert!(Instant::now() < deadline, "{service} never ran");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(30);
    let manager = service_variable("ATRIUM_TEST_SWARM_HOST");
    println!("provider: {}", provider_binary().display());
    println!("apply of {count} hello instances on a 3-node swarm ({PARALLELISM} deployments at once on the target)\n");

    let workspace = Workspace::new("bench_swarm", RegistryChoice::Sqlite).await;
    let stats = workspace.path().join("stats.txt");
    // SAFETY: single-threaded here; child processes read the variable.
    unsafe { std::env::set_var("ATRIUM_STATS_FILE", &stats) };
    let tenant = format!("bswarm-{}", std::process::id());
    let apply = ["apply", "-auto-approve", "-input=false"];
    let destroy = ["destroy", "-auto-approve", "-input=false"];
    let cli_tenant = |round: usize| format!("bswarm-cli-{}-{round}", std::process::id());
    let _cleanup = SwarmCleanup { tenants: (0..3).map(cli_tenant).chain([tenant.clone()]).collect() };

    workspace.write("main.tf", &configuration(&manager, &tenant, count));
    let (mut terraform_times, mut docker_times) = (Vec::new(), Vec::new());
    for round in 0..3 {
        if round % 2 == 1 {
            docker_times.push(docker_cli_baseline(&cli_tenant(round), count));
        }
        terraform_times.push(timed_terraform(&workspace, &apply));
        if round < 2 {
            timed_terraform(&workspace, &destroy);
        }
        if round % 2 == 0 {
            docker_times.push(docker_cli_baseline(&cli_tenant(round), count));
        }
        println!(
            "round {}: terraform apply {:.2} s | docker CLI {:.2} s",
            round + 1,
            terraform_times[round],
            docker_times[round]
        );
    }
    let mut sorted = (terraform_times.clone(), docker_times.clone());
    sorted.0.sort_by(f64::total_cmp);
    sorted.1.sort_by(f64::total_cmp);
    let (terraform, cli) = (sorted.0[1], sorted.1[1]);
    println!(
        "\nmedian apply of {count}: terraform {terraform:.2} s, docker CLI {cli:.2} s, ratio {:.2}x (target <= 1.30x)",
        terraform / cli
    );

    // The last round's instances are still there: refresh them.
    take_stats(&stats);
    let refresh = timed_terraform(&workspace, &["plan", "-input=false", "-detailed-exitcode"]);
    let (calls, _) = take_stats(&stats);
    println!("refresh (terraform plan) of {count} instances: {refresh:.2} s wall, {calls} Docker API calls");
    timed_terraform(&workspace, &destroy);
}
