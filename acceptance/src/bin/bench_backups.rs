//! Benchmark: backup and restore of a Redmine instance holding a 100 MB
//! attachments volume and a database of about 30 MB, by Atrium (the engine's
//! `backup_now` and `restore`, the jobs the instance's backup container also
//! runs) against the same tools run by hand in the same run: `pg_dump` and
//! `restic backup` in a container of the same image on the tenant's network,
//! into a repository of their own; `restic restore`, the volume put back and
//! `pg_restore`, with the app stopped and started again until healthy. Both
//! run with the same CPU and memory limits (the database sidecar's).
//!
//! What Atrium does besides, and the baseline does not: its lock, its status
//! files, `restic forget` by the tier's policy after each backup (pruning
//! once a day: not within this run); before a
//! restore, a backup of the data it replaces (incremental, taken while the
//! snapshot is restored into a staging directory beside it, the app still
//! serving) and a check that
//! the snapshot exists (`restic snapshots`); the registry's row and routes
//! after the app's restart.
//!
//!     scripts/bench.sh backups           # 3 incremental backups, 3 restores
//!     scripts/bench.sh backups 5         # 5 of each
//!
//! Target (issue 12): ratio <= 1.2 for backup and for restore.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use atrium_acceptance::bench::{Cleanup, app_context, docker};
use atrium_engine::backends::targets::Targets;
use atrium_engine::catalog::Catalog;
use atrium_engine::model::app_instance::AppInstanceSpec;
use atrium_engine::observe::AppObservations;
use atrium_engine::test_services::{hello_spec, registry_with_tenant, service_variable, test_target};

/// Runs docker and returns its standard output; a failure fails the benchmark.
fn docker_output(host: &str, arguments: &[&str]) -> String {
    let output = Command::new("docker").arg("-H").arg(host).args(arguments).output().expect("run docker");
    assert!(
        output.status.success(),
        "docker {arguments:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The baseline's tools: a container of the backup image on the tenant's
/// network, as root, with the app's volume, the database's password and a
/// repository volume of its own.
fn by_hand(host: &str, tenant: &str, script: &str) -> String {
    let prefix = format!("atrium-{tenant}-web");
    let environment = docker_output(
        host,
        &["inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", &format!("{prefix}-backup")],
    );
    let password = environment
        .lines()
        .find_map(|line| line.strip_prefix("PGPASSWORD="))
        .expect("the backup container's PGPASSWORD")
        .to_owned();
    // The same limits as Atrium's backup jobs (the database sidecar's).
    let limits = docker_output(
        host,
        &["inspect", "-f", "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}", &format!("{prefix}-backup")],
    );
    let (nano_cpus, memory) = limits.trim().split_once(' ').expect("the backup container's limits");
    let cpus = format!("{}", nano_cpus.parse::<f64>().expect("NanoCpus") / 1e9);
    docker_output(
        host,
        &[
            "run",
            "--rm",
            "--user",
            "0",
            "--cpus",
            &cpus,
            "--memory",
            memory,
            "--network",
            &format!("atrium-{tenant}"),
            "--label",
            &format!("atrium.tenant={tenant}"),
            "-v",
            &format!("{prefix}-files:/volumes/files"),
            "-v",
            &format!("bench-{tenant}-repository:/repository"),
            "-e",
            &format!("PGPASSWORD={password}"),
            "-e",
            "RESTIC_PASSWORD=bench-by-hand",
            "-e",
            "RESTIC_REPOSITORY=/repository/restic",
            "-e",
            "RESTIC_CACHE_DIR=/repository/cache",
            "--entrypoint",
            "sh",
            "atrium/postgres:15",
            "-c",
            script,
        ],
    )
}

fn waited_healthy(host: &str, container: &str) {
    let started = Instant::now();
    loop {
        let health = docker_output(host, &["inspect", "-f", "{{.State.Health.Status}}", container]);
        if health.trim() == "healthy" {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "{container} not healthy after 10 minutes: {health}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    let tenant = format!("bkb-{}", std::process::id() % 100_000);
    let _cleanup = Cleanup { host: host.clone(), tenants: vec![tenant.clone()] };
    let repository = format!("bench-{tenant}-repository");
    docker(&host, &["volume", "create", "--label", &format!("atrium.tenant={tenant}"), &repository]);

    let directory = tempfile::tempdir().unwrap();
    let registry = registry_with_tenant(directory.path(), &tenant).await;
    let targets = Targets::new(BTreeMap::from([("local".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST"))]));
    let (catalog, observations) = (Catalog::built_in(), AppObservations::default());
    let context = app_context(&registry, &observations, &catalog, &targets, Duration::from_secs(1800));
    let spec = AppInstanceSpec { app: "redmine".into(), version: "5.0".into(), ..hello_spec(&tenant, "1.1") };
    println!("deploying redmine 5.0 for {tenant}");
    let deployed = context.deploy(&spec, None, None).await.unwrap_or_else(|error| panic!("{error}"));
    let app = format!("atrium-{tenant}-web-g{}", deployed.record.generation);
    let database = format!("atrium-{tenant}-web-postgres");

    // The data: 100 MB of attachments (random, so nothing compresses or
    // deduplicates) and about 30 MB of rows.
    docker_output(
        &host,
        &["exec", &app, "sh", "-c", "head -c 104857600 /dev/urandom > /var/lib/redmine/default/files/bench.bin"],
    );
    let rows = "CREATE TABLE bench AS SELECT n, md5(n::text) || md5((n * 7)::text) AS filler FROM generate_series(1, 300000) n";
    docker_output(&host, &["exec", &database, "psql", "-q", "-U", "redmine", "-d", "redmine", "-c", rows]);

    let dump = "pg_dump --host=atrium-{T}-web-postgres --username=redmine --format=custom redmine";
    let dump = dump.replace("{T}", &tenant);
    let hand_backup = format!(
        "set -e; [ -f /repository/restic/config ] || restic init > /dev/null; rm -rf /repository/dump; mkdir -p /repository/dump; {dump} > /repository/dump/database.dump; restic backup /repository/dump /volumes/files > /dev/null"
    );
    // Each round changes 10 MB of attachments and some rows, then both back up.
    let mut atrium_backups = Vec::new();
    let mut hand_backups = Vec::new();
    for round in 0..=rounds {
        if round > 0 {
            let change = format!("head -c 10485760 /dev/urandom > /var/lib/redmine/default/files/round-{round}.bin");
            docker_output(&host, &["exec", &app, "sh", "-c", &change]);
            let update = format!("UPDATE bench SET filler = md5(filler) WHERE n % 10 = {round}");
            docker_output(&host, &["exec", &database, "psql", "-q", "-U", "redmine", "-d", "redmine", "-c", &update]);
        }
        let started = Instant::now();
        let snapshot = context.backup_now(&spec.id).await.unwrap_or_else(|error| panic!("{error}"));
        let atrium = started.elapsed().as_secs_f64();
        let started = Instant::now();
        by_hand(&host, &tenant, &hand_backup);
        let hand = started.elapsed().as_secs_f64();
        let what = if round == 0 { "full".to_owned() } else { format!("incremental {round}") };
        println!(
            "backup {what:<14} Atrium {atrium:6.2} s   by hand {hand:6.2} s   {:.2}x   ({})",
            atrium / hand,
            snapshot.short_id()
        );
        if round == 0 {
            println!("  (the full backup includes restic init on both sides)");
        } else {
            atrium_backups.push(atrium);
            hand_backups.push(hand);
        }
    }

    // Restore the latest snapshot: app stopped, data put back, app started and healthy.
    let hand_restore = format!(
        "set -e; rm -rf /repository/restore; restic restore latest --target /repository/restore > /dev/null; find /volumes/files -mindepth 1 -delete; cp -a /repository/restore/volumes/files/. /volumes/files/; dropdb --host=atrium-{tenant}-web-postgres --username=redmine --force redmine; createdb --host=atrium-{tenant}-web-postgres --username=redmine redmine; pg_restore --host=atrium-{tenant}-web-postgres --username=redmine --dbname=redmine --exit-on-error --single-transaction --no-owner < /repository/restore/repository/dump/database.dump; rm -rf /repository/restore"
    );
    let mut atrium_restores = Vec::new();
    let mut hand_restores = Vec::new();
    for round in 1..=rounds {
        let started = Instant::now();
        context.restore(&spec.id, "latest", |_| {}).await.unwrap_or_else(|error| panic!("{error}"));
        let atrium = started.elapsed().as_secs_f64();
        let started = Instant::now();
        docker(&host, &["stop", &app]);
        by_hand(&host, &tenant, &hand_restore);
        docker(&host, &["start", &app]);
        waited_healthy(&host, &app);
        let hand = started.elapsed().as_secs_f64();
        println!("restore {round}        Atrium {atrium:6.2} s   by hand {hand:6.2} s   {:.2}x", atrium / hand);
        atrium_restores.push(atrium);
        hand_restores.push(hand);
    }
    let size = docker_output(&host, &["exec", &app, "du", "-sm", "/var/lib/redmine/default/files"]);
    println!("attachments volume now: {} MB", size.split_whitespace().next().unwrap_or("?"));

    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (a, h) = (median(&mut atrium_backups), median(&mut hand_backups));
    println!(
        "\nincremental backup, median of {rounds}: Atrium {a:.2} s, by hand {h:.2} s: {:.2}x (target <= 1.2)",
        a / h
    );
    let (a, h) = (median(&mut atrium_restores), median(&mut hand_restores));
    println!("restore, median of {rounds}: Atrium {a:.2} s, by hand {h:.2} s: {:.2}x (target <= 1.2)", a / h);
}
