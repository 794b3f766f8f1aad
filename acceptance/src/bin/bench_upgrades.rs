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
use std::time::{Duration, Instant};

use atrium_acceptance::bench::{Cleanup, app_context, docker, downtime};
use atrium_engine::backends::targets::Targets;
use atrium_engine::catalog::Catalog;
use atrium_engine::model::app_instance::AppInstanceSpec;
use atrium_engine::observe::AppObservations;
use atrium_engine::test_services::{hello_spec, registry_with_tenant, service_variable, test_target};

/// The apps and the two releases each is upgraded between.
const UPGRADES: [(&str, &str, &str); 3] =
    [("redmine", "5.0", "6.0"), ("mediawiki", "1.39", "1.43"), ("tryton", "6.0", "7.0")];

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
        let old = format!("local/atrium-{tenant}-web-g{}", deployed.record.generation);
        let container = old.trim_start_matches("local/").to_owned();
        let watched = [("local".to_owned(), runtime.clone())];

        let restart = downtime(&watched, &tenant, &old, async {
            docker(&host, &["restart", &container]);
        })
        .await;
        println!("{app} {from}: docker restart: {restart:.2} s without an answer");

        let upgrade = AppInstanceSpec { version: to.into(), ..spec.clone() };
        let started = Instant::now();
        let upgraded = downtime(&watched, &tenant, &old, async {
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
