//! Benchmark: `terraform apply` of N `hello` app instances against starting N
//! equivalent containers directly with the Docker CLI at the same parallelism
//! (10, Terraform's default), in the same run; then the Docker API calls and
//! wall time of a refresh (`terraform plan`) of M instances.
//!
//!     scripts/bench.sh apps          # N=50, M=200
//!     scripts/bench.sh apps 20 50    # N=20, M=50
//!
//! Target (issue 3): apply ratio <= 1.3.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atrium_acceptance::{RegistryChoice, Workspace, provider_binary, provider_example_with_test_docker};
use atrium_engine::test_services::service_variable;

const PARALLELISM: usize = 10;

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

fn docker(host: &str, arguments: &[&str]) -> bool {
    std::process::Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(arguments)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// What the provider does per instance, with the Docker CLI: a volume, a
/// container with the same limits, labels and health check, then waiting
/// until it is healthy. Ten at a time.
fn docker_cli_baseline(host: &str, prefix: &str, count: usize) -> f64 {
    let network = format!("{prefix}-net");
    let started = Instant::now();
    assert!(docker(host, &["network", "create", &network]));
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..PARALLELISM {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let name = format!("{prefix}-{index:03}");
                    let volume = format!("{name}-data");
                    assert!(docker(host, &["volume", "create", &volume]));
                    let mount = format!("{volume}:/www/data");
                    let ok = docker(
                        host,
                        &[
                            "run",
                            "-d",
                            "--name",
                            &name,
                            "--init",
                            "--network",
                            &network,
                            "--restart",
                            "unless-stopped",
                            "-p",
                            "127.0.0.1::80",
                            "--cpus",
                            "1",
                            "--memory",
                            "256m",
                            "-v",
                            &mount,
                            "--label",
                            "bench=true",
                            "--health-cmd",
                            "/bin/wget -q -O /dev/null http://127.0.0.1/health",
                            "--health-interval",
                            "1s",
                            "--health-timeout",
                            "3s",
                            "--health-retries",
                            "3",
                            "atrium/hello:1.1",
                        ],
                    );
                    assert!(ok, "docker run {name}");
                    let deadline = Instant::now() + Duration::from_secs(120);
                    loop {
                        let output = std::process::Command::new("docker")
                            .args(["-H", host, "inspect", "-f", "{{.State.Health.Status}}", &name])
                            .output()
                            .unwrap();
                        if String::from_utf8_lossy(&output.stdout).trim() == "healthy" {
                            break;
                        }
                        assert!(Instant::now() < deadline, "{name} never turned healthy");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    for index in 0..count {
        let name = format!("{prefix}-{index:03}");
        docker(host, &["rm", "-f", &name]);
        docker(host, &["volume", "rm", &format!("{name}-data")]);
    }
    docker(host, &["network", "rm", &network]);
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

fn take_docker_calls(file: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let _ = std::fs::write(file, "");
    text.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()).sum()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arguments: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let count = arguments.first().copied().unwrap_or(50);
    let refresh_count = arguments.get(1).copied().unwrap_or(200);
    let host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    println!("provider: {}", provider_binary().display());
    println!("apply of {count} hello instances, parallelism {PARALLELISM}; refresh of {refresh_count}\n");

    let workspace = Workspace::new("bench_apps", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_docker());
    let stats = workspace.path().join("stats.txt");
    // SAFETY: single-threaded here; child processes read the variable.
    unsafe { std::env::set_var("ATRIUM_STATS_FILE", &stats) };
    let tenant = format!("bench-{}", std::process::id());
    let apply = ["apply", "-auto-approve", "-input=false"];
    let destroy = ["destroy", "-auto-approve", "-input=false"];

    let (mut terraform_times, mut docker_times) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let run_docker =
            |times: &mut Vec<f64>| times.push(docker_cli_baseline(&host, &format!("bench-cli-{round}"), count));
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
    take_docker_calls(&stats);
    let refresh = timed(&workspace, &["plan", "-input=false", "-detailed-exitcode"]);
    let calls = take_docker_calls(&stats);
    println!(
        "refresh (terraform plan) of {refresh_count} instances: {refresh:.2} s wall, {calls} Docker API calls (apply took {setup:.2} s)"
    );
    timed(&workspace, &destroy);
}
