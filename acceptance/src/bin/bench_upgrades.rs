//! Benchmark: upgrade downtime of each real app (issue 12): the time from
//! the old version's last answer to the new version's first, while a
//! client asks the app for `/` every 50 ms on every port an app container
//! of the instance publishes (found with one list call per round).
//!
//! Atrium's upgrade (the engine's `deploy` of the newer version) stops the
//! old version, backs its data up (database dump and volumes), runs the
//! migration as a one-shot job, starts the new version and waits until it
//! is healthy before switching. The baseline in the same run is the
//! smallest downtime any in-place change has: `docker restart` of the old
//! version's container (same data, no backup, no migration, no new
//! container). The ratio says what the backup, the migration and the new
//! container's first start cost on top of a restart.
//!
//!     scripts/bench.sh upgrades                     # redmine, mediawiki and tryton
//!     scripts/bench.sh upgrades redmine             # one of them
//!
//! Needs the apps' images of both releases (`scripts/app-images.sh HOST tests`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atrium_acceptance::bench::{Cleanup, app_context, docker};
use atrium_engine::backends::Runtime;
use atrium_engine::backends::targets::Targets;
use atrium_engine::catalog::Catalog;
use atrium_engine::model::app_instance::AppInstanceSpec;
use atrium_engine::model::container::labels;
use atrium_engine::observe::AppObservations;
use atrium_engine::test_services::{hello_spec, registry_with_tenant, service_variable, test_target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The apps and the two releases each is upgraded between.
const UPGRADES: [(&str, &str, &str); 3] =
    [("redmine", "5.0", "6.0"), ("mediawiki", "1.39", "1.43"), ("tryton", "6.0", "7.0")];

/// Whether an HTTP server answers `GET /` on the port (any status below 500).
async fn answers(port: u16) -> bool {
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        let status: u16 = std::str::from_utf8(&head[9..12]).ok()?.parse().ok()?;
        Some(head.starts_with(b"HTTP/1.") && status < 500)
    };
    tokio::time::timeout(Duration::from_secs(2), ask).await.ok().flatten().unwrap_or(false)
}

/// Which app container answered, and when.
type Answers = Arc<Mutex<Vec<(Instant, String)>>>;

/// Asks every published app container of `tenant` every 50 ms until `stop`.
async fn poll(runtime: Arc<dyn Runtime>, tenant: String, answered: Answers, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let round = Instant::now();
        let listed = runtime.list_managed().await.unwrap_or_else(|error| panic!("listing containers: {error}"));
        for container in listed {
            let ours = container.labels.get(labels::TENANT) == Some(&tenant)
                && container.labels.get(labels::ROLE).map(String::as_str) == Some("app");
            if let (true, Some(port)) = (ours, container.published_port)
                && answers(port).await
            {
                answered.lock().unwrap().push((Instant::now(), container.name));
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

/// Runs `change` while polling and returns the downtime it caused,
/// waiting up to a minute after it for the first answer.
async fn downtime<F: std::future::Future<Output = ()>>(
    runtime: &Arc<dyn Runtime>,
    tenant: &str,
    old: &str,
    change: F,
) -> f64 {
    let (answered, stop) = (Answers::default(), Arc::new(AtomicBool::new(false)));
    let poller = tokio::spawn(poll(runtime.clone(), tenant.to_owned(), answered.clone(), stop.clone()));
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    let targets = Targets::new(BTreeMap::from([("local".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST"))]));
    let runtime = targets.runtime("local").await.unwrap_or_else(|error| panic!("{error}"));
    let mut figures = Vec::new();
    for (app, from, to) in UPGRADES.into_iter().filter(|(app, _, _)| only.is_empty() || only.iter().any(|o| o == app)) {
        let tenant = format!("bup-{}-{app}", std::process::id() % 100_000);
        let _cleanup = Cleanup { host: host.clone(), tenants: vec![tenant.clone()] };
        let directory = tempfile::tempdir().unwrap();
        let registry = registry_with_tenant(directory.path(), &tenant).await;
        let (catalog, observations) = (Catalog::built_in(), AppObservations::default());
        let context = app_context(&registry, &observations, &catalog, &targets, Duration::from_secs(1800));
        let spec = AppInstanceSpec { app: app.into(), version: from.into(), ..hello_spec(&tenant, "1.1") };
        println!("deploying {app} {from} for {tenant}");
        let deployed = context.deploy(&spec, None, None).await.unwrap_or_else(|error| panic!("{error}"));
        let old = format!("atrium-{tenant}-web-g{}", deployed.record.generation);

        let restart = downtime(&runtime, &tenant, &old, async {
            docker(&host, &["restart", &old]);
        })
        .await;
        println!("{app} {from}: docker restart: {restart:.2} s without an answer");

        let upgrade = AppInstanceSpec { version: to.into(), ..spec.clone() };
        let started = Instant::now();
        let upgraded = downtime(&runtime, &tenant, &old, async {
            context.deploy(&upgrade, None, None).await.unwrap_or_else(|error| panic!("{error}"));
        })
        .await;
        let took = started.elapsed().as_secs_f64();
        println!(
            "{app} {from} -> {to}: Atrium's upgrade: {upgraded:.2} s without an answer (the deploy took {took:.1} s)"
        );
        figures.push((app, from, to, restart, upgraded));
    }
    println!("\nupgrade downtime (old version's last answer to the new version's first), against docker restart:");
    for (app, from, to, restart, upgraded) in figures {
        println!(
            "  {app:<10} {from:>5} -> {to:<5} Atrium {upgraded:7.2} s   docker restart {restart:6.2} s   {:.1}x",
            upgraded / restart
        );
    }
}
