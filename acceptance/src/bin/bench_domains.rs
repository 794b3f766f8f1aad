//! Benchmark: `terraform apply` of N `atrium_domain`s (platform subdomains:
//! a PowerDNS record, a Caddy route and a certificate from the ACME CA each)
//! against the same N changes driven directly with curl at the same
//! parallelism (10, Terraform's default), each waited for until its
//! certificate is served, in the same run, alternating, median of ROUNDS.
//!
//!     scripts/bench.sh domains          # N=100, 3 rounds
//!     scripts/bench.sh domains 20 1     # N=20, 1 round
//!
//! Target (issue 4): ratio <= 1.5.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atrium_acceptance::{RegistryChoice, TestZone, Workspace, provider_binary, provider_example_with_test_services};
use atrium_engine::test_services::service_variable;

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

/// Caddy resets its admin connections on every config change, so a script
/// driving it in parallel must retry requests that got no answer (status 0),
/// as this one does.
fn curl_until_answered(arguments: &[&str]) -> (u16, String) {
    for _ in 0..50 {
        let answer = curl(arguments);
        if answer.0 != 0 {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    curl(arguments)
}

fn curl(arguments: &[&str]) -> (u16, String) {
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
struct RouteBatch {
    pending: std::sync::Mutex<Vec<serde_json::Value>>,
    written: std::sync::Mutex<std::collections::HashSet<String>>,
    writing: std::sync::Mutex<()>,
}

/// Writes `route` the way Atrium does: routes that wait together go in one
/// write of the server's route list (one Caddy reload, which cancels the
/// certificate orders in flight, for all of them), before its catch-all,
/// under If-Match; a refused or cut-off write is read and tried again.
fn write_routes_batched(admin: &str, batch: &RouteBatch, route: serde_json::Value, host: &str) {
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

/// The same changes by hand: the A record (PowerDNS API), the route before
/// the catch-all (Caddy admin API, writes batched as Atrium batches them),
/// then polling until the certificate is served and the app answers over
/// HTTPS. Ten at a time.
fn curl_baseline(zone: &str, prefix: &str, upstream: &str, count: usize) -> f64 {
    let pdns = format!("{}/api/v1/servers/localhost/zones/{zone}.", service_variable("ATRIUM_TEST_PDNS_URL"));
    let key = format!("X-API-Key: {}", service_variable("ATRIUM_TEST_PDNS_API_KEY"));
    let admin = service_variable("ATRIUM_TEST_CADDY_ADMIN_URL");
    let https_port = service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT");
    let root = service_variable("ATRIUM_TEST_ACME_ROOT_FILE");
    let host = |index: usize| format!("{prefix}{index:03}.{zone}");
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let routes = RouteBatch::default();
    std::thread::scope(|scope| {
        for _ in 0..PARALLELISM {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let host = host(index);
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
                    write_routes_batched(&admin, &routes, route, &host);
                    let resolve = format!("{host}:{https_port}:127.0.0.1");
                    let url = format!("https://{host}:{https_port}/");
                    let deadline = Instant::now() + Duration::from_secs(180);
                    while curl(&["--resolve", &resolve, "--cacert", &root, &url]).0 != 200 {
                        assert!(Instant::now() < deadline, "{host} never answered over HTTPS");
                        std::thread::sleep(Duration::from_millis(250));
                    }
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    for index in 0..count {
        let host = host(index);
        // A retried PUT may have inserted a second copy: delete until there is none.
        while curl_until_answered(&["-X", "DELETE", &format!("{admin}/id/bench-{host}")]).0 == 200 {}
        let delete = format!(r#"{{"rrsets":[{{"name":"{host}.","type":"A","changetype":"DELETE"}}]}}"#);
        curl_until_answered(&["-X", "PATCH", "-H", &key, "--data", &delete, &pdns]);
    }
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arguments: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let count = arguments.first().copied().unwrap_or(100);
    let rounds = arguments.get(1).copied().unwrap_or(3).max(1);
    println!("provider: {}", provider_binary().display());
    println!("apply of {count} domains (record + route + certificate), parallelism {PARALLELISM}, {rounds} rounds\n");

    let id = std::process::id();
    let zone = TestZone::create(&format!("bench{id}.atrium.test"));
    let tenant = format!("bench-{id}");
    let workspace = Workspace::new("bench_domains", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_services(&zone.name));
    let apply = ["apply", "-auto-approve", "-input=false"];
    // The tenant and its app instance exist before the timing starts.
    workspace.write("main.tf", &configuration(&tenant, &zone.name, 0, 0));
    timed(&workspace, &apply);
    let upstream = workspace.terraform(&["output", "-raw", "upstream"]).stdout.trim().to_owned();

    let (mut terraform_times, mut curl_times) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 1 {
            curl_times.push(curl_baseline(&zone.name, &format!("c{round}-"), &upstream, count));
        }
        workspace.write("main.tf", &configuration(&tenant, &zone.name, count, round));
        terraform_times.push(timed(&workspace, &apply));
        workspace.write("main.tf", &configuration(&tenant, &zone.name, 0, 0));
        timed(&workspace, &apply);
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
    timed(&workspace, &["destroy", "-auto-approve", "-input=false"]);
}
