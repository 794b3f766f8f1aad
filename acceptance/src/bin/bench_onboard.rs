//! Benchmark: a partner onboarding N customers from nothing to HTTPS, each a
//! tenant with a `hello` instance and a platform subdomain: `atrium apply`
//! (the CLI) against the same work done directly at equal parallelism, in
//! the same run, alternating, median of ROUNDS. The direct way, per
//! customer: the tenant's network, the instance's volume and the container
//! Atrium's catalog renders (Docker CLI: created, files copied, started,
//! waited for until healthy; 8 deployments at once, as a target's slots
//! allow), the A record (curl on PowerDNS), the route (curl on Caddy's admin
//! API, batched as Atrium batches), then polling until it answers over
//! HTTPS. Both are served by the platform zone's wildcard certificate,
//! ordered once before the timing starts (its time is printed). What Atrium
//! does besides: the registry's rows, claims and journal, the plan, three
//! `docker exec`s per customer (the manager account set through the app,
//! the app told its address once its domain is live, the welcome email's
//! password set), and the welcome email sent through the SMTP relay.
//!
//!     scripts/bench.sh onboard          # N=100, 3 rounds
//!     scripts/bench.sh onboard 20 1     # N=20, 1 round
//!
//! Target (issue 11): ratio <= 1.2.

use std::time::Instant;

use atrium_acceptance::bench::{
    Cleanup, Gate, RouteBatch, create_network, deploy_rendered, in_parallel, published_port, render_hello,
    serve_by_hand, unserve_by_hand,
};
use atrium_acceptance::{RegistryChoice, TestZone, Workspace, atrium_binary, provider_example_with_test_services};
use atrium_engine::catalog::Catalog;
use atrium_engine::test_services::service_variable;

/// The CLI's parallelism, and the baseline's workers.
const PARALLELISM: usize = 10;

/// N customers, each with a `hello` instance and a platform subdomain.
fn configuration(prefix: &str, zone: &str, count: usize) -> String {
    format!(
        r#"locals {{
  customers = toset([for i in range({count}) : format("{prefix}%03d", i)])
}}

resource "atrium_tenant" "customer" {{
  for_each     = local.customers
  name         = each.key
  display_name = "Customer ${{each.key}}"
  tier         = "business"
  manager = {{
    email = "manager@${{each.key}}.example"
    name  = "Manager"
  }}
}}

resource "atrium_app_instance" "hello" {{
  for_each               = local.customers
  tenant_id              = atrium_tenant.customer[each.key].id
  name                   = "web"
  app                    = "hello"
  target                 = "lyon-onprem"
  users                  = 1
  delete_data_on_destroy = true
}}

resource "atrium_domain" "web" {{
  for_each        = local.customers
  app_instance_id = atrium_app_instance.hello[each.key].id
  hostname        = "${{each.key}}.{zone}"
}}
"#
    )
}

fn atrium(workspace: &Workspace, arguments: &[&str]) -> f64 {
    let started = Instant::now();
    workspace.atrium(arguments).expect_code(0, &format!("atrium {arguments:?}"));
    started.elapsed().as_secs_f64()
}

/// The same onboarding by hand, `PARALLELISM` customers at a time.
fn direct(host: &str, zone: &str, prefix: &str, count: usize) -> f64 {
    let catalog = Catalog::built_in();
    let tenants: Vec<String> = (0..count).map(|index| format!("{prefix}{index:03}")).collect();
    let rendered: Vec<_> = tenants.iter().map(|tenant| render_hello(&catalog, tenant, "web")).collect();
    let _cleanup = Cleanup { host: host.to_owned(), tenants: tenants.clone() };
    let deployments = Gate::new(atrium_engine::backends::targets::DEPLOYMENTS_PER_TARGET);
    let routes = RouteBatch::default();
    let hostname = |index: usize| format!("{}.{zone}", tenants[index]);
    let started = Instant::now();
    in_parallel(PARALLELISM, count, |index| {
        let app = &rendered[index];
        deployments.hold(|| {
            create_network(host, app, &tenants[index]);
            deploy_rendered(host, app);
        });
        let container = app.app_container();
        let port = published_port(host, &container.name, container.port.expect("hello publishes a port"));
        serve_by_hand(zone, &hostname(index), &format!("127.0.0.1:{port}"), &routes);
    });
    let seconds = started.elapsed().as_secs_f64();
    for index in 0..count {
        unserve_by_hand(zone, &hostname(index));
    }
    seconds
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arguments: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let count = arguments.first().copied().unwrap_or(100);
    let rounds = arguments.get(1).copied().unwrap_or(3).max(1);
    let host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    println!("atrium: {}", atrium_binary().display());
    println!(
        "onboarding {count} customers (tenant + hello + platform subdomain, to HTTPS), parallelism {PARALLELISM}, {rounds} rounds\n"
    );
    let id = std::process::id();
    let zone = TestZone::create(&format!("onboard{id}.atrium.test"));
    let workspace = Workspace::new("bench_onboard", RegistryChoice::Sqlite).await;
    let block = provider_example_with_test_services(&zone.name)
        .replace("provider \"atrium\" {", "atrium {\n  owner = \"bench-onboard\"");
    workspace.write("atrium.hcl", &block);
    let apply = ["apply", "-auto-approve", &format!("-parallelism={PARALLELISM}")];
    let destroy = ["destroy", "-auto-approve", &format!("-parallelism={PARALLELISM}")];

    // One customer first: its platform subdomain orders the zone's wildcard.
    workspace.write("main.tf", &configuration(&format!("w{id}-"), &zone.name, 1));
    println!("first customer (orders the wildcard certificate): {:.2} s", atrium(&workspace, &apply));
    atrium(&workspace, &destroy);

    let (mut atrium_times, mut direct_times) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let prefix = |side: &str| format!("{side}{round}x{id}-");
        if round % 2 == 1 {
            direct_times.push(direct(&host, &zone.name, &prefix("d"), count));
        }
        workspace.write("main.tf", &configuration(&prefix("a"), &zone.name, count));
        let guard =
            Cleanup { host: host.clone(), tenants: (0..count).map(|i| format!("{}{i:03}", prefix("a"))).collect() };
        atrium_times.push(atrium(&workspace, &apply));
        for index in [0, count - 1] {
            let hostname = format!("{}{index:03}.{}", prefix("a"), zone.name);
            let (status, body) = atrium_acceptance::https_get(&hostname, "/");
            assert_eq!(status, 200, "{hostname} answers over HTTPS after atrium apply: {body}");
        }
        atrium(&workspace, &destroy);
        drop(guard);
        if round % 2 == 0 {
            direct_times.push(direct(&host, &zone.name, &prefix("d"), count));
        }
        println!(
            "round {}: atrium apply {:.2} s | direct {:.2} s",
            round + 1,
            atrium_times[round],
            direct_times[round]
        );
    }
    atrium_times.sort_by(f64::total_cmp);
    direct_times.sort_by(f64::total_cmp);
    let (cli, baseline) = (atrium_times[rounds / 2], direct_times[rounds / 2]);
    println!(
        "\nmedian onboarding of {count}: atrium apply {cli:.2} s, direct {baseline:.2} s, ratio {:.2}x (target <= 1.20x)",
        cli / baseline
    );
}
