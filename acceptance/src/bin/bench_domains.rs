//! Benchmark: `terraform apply` of N `atrium_domain`s (platform subdomains:
//! a PowerDNS record and a Caddy route each, served by the platform zone's
//! wildcard certificate) against the same N changes driven directly with
//! curl at the same parallelism (10, Terraform's default), each waited for
//! until it answers over HTTPS, in the same run, alternating, median of
//! ROUNDS. The wildcard is ordered once (DNS-01, Pebble) before the timing
//! starts and serves both sides; the time that order took is printed. What
//! Atrium does besides, and the baseline does not: the registry's rows,
//! claims and journal, the plan, and telling the app its addresses (a
//! `docker exec` per batch of live domains; done by hand, one `docker exec`
//! per domain makes the baseline about three times slower, so it is left out).
//!
//!     scripts/bench.sh domains          # N=100, 3 rounds
//!     scripts/bench.sh domains 20 1     # N=20, 1 round
//!
//! Target (issues 4 and 11): ratio <= 1.5.

use std::time::Instant;

use atrium_acceptance::bench::{RouteBatch, in_parallel, serve_by_hand, timed_terraform, unserve_by_hand};
use atrium_acceptance::{RegistryChoice, TestZone, Workspace, provider_binary, provider_example_with_test_services};

const PARALLELISM: usize = 10;

/// `round` goes into the host names: a name seen before would find its
/// certificate in Caddy's storage, which no new customer's name does.
fn configuration(tenant: &str, zone: &str, count: usize, round: usize) -> String {
    format!(
        r#"resource "atrium_tenant" "bench" {{
  name         = "{tenant}"
  display_name = "Benchmark"
  tier         = "enterprise"
  manager = {{
    email = "bench@bench.example"
    name  = "Bench"
  }}
}}

resource "atrium_app_instance" "hello" {{
  tenant_id              = atrium_tenant.bench.id
  name                   = "web"
  app                    = "hello"
  target                 = "lyon-onprem"
  users                  = 1
  delete_data_on_destroy = true
}}

resource "atrium_domain" "bench" {{
  count           = {count}
  app_instance_id = atrium_app_instance.hello.id
  hostname        = format("r{round}-d%03d-{tenant}.{zone}", count.index)
}}

output "upstream" {{
  value = trimprefix(atrium_app_instance.hello.internal_url, "http://")
}}
"#
    )
}

/// The same changes by hand: the A record (PowerDNS API), the route before
/// the catch-all (Caddy admin API, writes batched as Atrium batches them),
/// then polling until the app answers over HTTPS. Ten at a time.
fn curl_baseline(zone: &str, prefix: &str, upstream: &str, count: usize) -> f64 {
    let host = |index: usize| format!("{prefix}{index:03}.{zone}");
    let started = Instant::now();
    let routes = RouteBatch::default();
    in_parallel(PARALLELISM, count, |index| serve_by_hand(zone, &host(index), upstream, &routes));
    let seconds = started.elapsed().as_secs_f64();
    for index in 0..count {
        unserve_by_hand(zone, &host(index));
    }
    seconds
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arguments: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let count = arguments.first().copied().unwrap_or(100);
    let rounds = arguments.get(1).copied().unwrap_or(3).max(1);
    println!("provider: {}", provider_binary().display());
    println!(
        "apply of {count} domains (record + route, one wildcard certificate), parallelism {PARALLELISM}, {rounds} rounds\n"
    );

    let id = std::process::id();
    let zone = TestZone::create(&format!("bench{id}.atrium.test"));
    let tenant = format!("bench-{id}");
    let workspace = Workspace::new("bench_domains", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_services(&zone.name));
    let apply = ["apply", "-auto-approve", "-input=false"];
    // The tenant and its app instance exist before the timing starts.
    workspace.write("main.tf", &configuration(&tenant, &zone.name, 0, 0));
    timed_terraform(&workspace, &apply);
    let upstream = workspace.terraform(&["output", "-raw", "upstream"]).stdout.trim().to_owned();
    // One platform subdomain orders the zone's wildcard; it then serves every other.
    workspace.write("main.tf", &configuration(&tenant, &zone.name, 1, rounds));
    println!(
        "first platform subdomain (orders the wildcard certificate): {:.2} s",
        timed_terraform(&workspace, &apply)
    );
    workspace.write("main.tf", &configuration(&tenant, &zone.name, 0, 0));
    timed_terraform(&workspace, &apply);

    let (mut terraform_times, mut curl_times) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 1 {
            curl_times.push(curl_baseline(&zone.name, &format!("c{round}-"), &upstream, count));
        }
        workspace.write("main.tf", &configuration(&tenant, &zone.name, count, round));
        terraform_times.push(timed_terraform(&workspace, &apply));
        workspace.write("main.tf", &configuration(&tenant, &zone.name, 0, 0));
        timed_terraform(&workspace, &apply);
        if round % 2 == 0 {
            curl_times.push(curl_baseline(&zone.name, &format!("c{round}-"), &upstream, count));
        }
        println!(
            "round {}: terraform apply {:.2} s | curl {:.2} s",
            round + 1,
            terraform_times[round],
            curl_times[round]
        );
    }
    terraform_times.sort_by(f64::total_cmp);
    curl_times.sort_by(f64::total_cmp);
    let (terraform, baseline) = (terraform_times[rounds / 2], curl_times[rounds / 2]);
    println!(
        "\nmedian apply of {count} domains: terraform {terraform:.2} s, curl {baseline:.2} s, ratio {:.2}x (target <= 1.50x)",
        terraform / baseline
    );
    timed_terraform(&workspace, &["destroy", "-auto-approve", "-input=false"]);
}
