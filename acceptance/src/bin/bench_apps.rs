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

use std::time::Instant;

use atrium_acceptance::bench::{
    Cleanup, create_network, deploy_rendered, in_parallel, render_hello, take_stats, timed_terraform,
};
use atrium_acceptance::{RegistryChoice, Workspace, provider_binary, provider_example_with_test_docker};
use atrium_engine::catalog::Catalog;
use atrium_engine::test_services::service_variable;

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

/// What the provider does per instance, with the Docker CLI at the same
/// parallelism (a target's deployment slots): the tenant network, then per
/// instance its volume, the container Atrium renders (created, its files
/// written, started) and a wait until it is healthy.
fn docker_cli_baseline(host: &str, tenant: &str, count: usize) -> f64 {
    let catalog = Catalog::built_in();
    let rendered: Vec<_> = (0..count).map(|index| render_hello(&catalog, tenant, &format!("app-{index:03}"))).collect();
    let started = Instant::now();
    create_network(host, &rendered[0], tenant);
    in_parallel(PARALLELISM, count, |index| deploy_rendered(host, &rendered[index]));
    let seconds = started.elapsed().as_secs_f64();
    drop(Cleanup { host: host.to_owned(), tenants: vec![tenant.to_owned()] });
    seconds
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
        terraform_times.push(timed_terraform(&workspace, &apply));
        timed_terraform(&workspace, &destroy);
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
    let setup = timed_terraform(&workspace, &apply);
    take_stats(&stats);
    let refresh = timed_terraform(&workspace, &["plan", "-input=false", "-detailed-exitcode"]);
    let (calls, statements) = take_stats(&stats);
    println!(
        "refresh (terraform plan) of {refresh_count} instances: {refresh:.2} s wall, {calls} Docker API calls, {statements} registry statements (apply took {setup:.2} s)"
    );
    timed_terraform(&workspace, &destroy);
}
