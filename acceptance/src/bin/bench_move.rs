//! Benchmark: the downtime of a move between targets (issue 13): a `hello`
//! instance whose data volume holds 100 MB (of random bytes, which nothing
//! compresses) moves from one Docker engine to another, while a client asks
//! every app container of its tenant on both engines for `/` every 50 ms.
//! The downtime is the time from the old target's last answer to the new
//! target's first.
//!
//! Atrium's move (the engine's `deploy` with the other target) stops the
//! app, streams its volume from one engine's archive API to the other's,
//! starts the app there and waits until it is healthy, records it and
//! switches its routes, then removes the old container. The baseline in the
//! same run does the same by hand with the Docker CLI: `docker stop`, the
//! volume piped as tar from a container on one engine to a container on the
//! other (`docker run … tar c | docker run -i … tar x`), then the app
//! container as Atrium renders it, created, its files copied in, started
//! and waited for until healthy. Each round moves a new instance of each.
//!
//!     scripts/bench.sh move [ROUNDS]          # default 3

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atrium_acceptance::bench::{Cleanup, app_context, create_network, deploy_rendered, docker, downtime, render_hello};
use atrium_engine::backends::targets::Targets;
use atrium_engine::catalog::Catalog;
use atrium_engine::model::app_instance::AppInstanceSpec;
use atrium_engine::observe::AppObservations;
use atrium_engine::test_services::{hello_spec, registry_with_tenant, service_variable, test_target};

/// The data each move carries, in MiB.
const DATA_MIB: u32 = 100;

/// Fills the data volume behind a running app container with `DATA_MIB` of random bytes.
fn fill(host: &str, container: &str) {
    let write = format!("/bin/busybox dd if=/dev/urandom of=/www/data/payload bs=1048576 count={DATA_MIB} 2>/dev/null");
    docker(host, &["exec", container, "sh", "-c", &write]);
}

/// The size of the payload behind a running app container, in bytes.
fn payload_bytes(host: &str, container: &str) -> u64 {
    let output = Command::new("docker")
        .args(["-H", host, "exec", container, "sh", "-c", "/bin/busybox wc -c < /www/data/payload"])
        .output()
        .expect("run docker");
    assert!(output.status.success(), "wc in {container}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().parse().expect("a size")
}

/// The volume's content from one engine to the other, as tar through two containers and a pipe.
fn copy_by_hand(from: &str, to: &str, volume: &str, image: &str) {
    let mount = format!("{volume}:/v");
    let mut reader = Command::new("docker")
        .args(["-H", from, "run", "--rm", "-v", &mount, image, "/bin/busybox", "tar", "-C", "/v", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run docker");
    let status = Command::new("docker")
        .args(["-H", to, "run", "--rm", "-i", "-v", &mount, image, "/bin/busybox", "tar", "-C", "/v", "-x"])
        .stdin(reader.stdout.take().expect("the reader's output"))
        .status()
        .expect("run docker");
    assert!(status.success() && reader.wait().expect("the reader").success(), "copying {volume} by hand");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(3, |n| n.parse().expect("ROUNDS is a number"));
    let (one, two) = (service_variable("ATRIUM_TEST_DOCKER_HOST"), service_variable("ATRIUM_TEST_DOCKER_HOST_2"));
    let targets = Targets::new(BTreeMap::from([
        ("one".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST")),
        ("two".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST_2")),
    ]));
    let mut watched = Vec::new();
    for name in ["one", "two"] {
        watched.push((name.to_owned(), targets.runtime(name).await.unwrap_or_else(|error| panic!("{error}"))));
    }
    let catalog = Catalog::built_in();
    let mut figures = Vec::new();
    for round in 1..=rounds {
        let pid = std::process::id() % 100_000;

        // Atrium: deploy on one, fill, move to two.
        let tenant = format!("bmv-{pid}-{round}");
        let _cleanup = [
            Cleanup { host: one.clone(), tenants: vec![tenant.clone()] },
            Cleanup { host: two.clone(), tenants: vec![tenant.clone()] },
        ];
        let directory = tempfile::tempdir().unwrap();
        let registry = registry_with_tenant(directory.path(), &tenant).await;
        let observations = AppObservations::default();
        let context = app_context(&registry, &observations, &catalog, &targets, Duration::from_secs(600));
        let spec = AppInstanceSpec { target: "one".into(), users: 1, ..hello_spec(&tenant, "1.1") };
        let deployed = context.deploy(&spec, None, None).await.unwrap_or_else(|error| panic!("{error}"));
        let old = format!("atrium-{tenant}-web-g{}", deployed.record.generation);
        fill(&one, &old);
        let moving = AppInstanceSpec { target: "two".into(), ..spec.clone() };
        let started = Instant::now();
        let atrium = downtime(&watched, &tenant, &format!("one/{old}"), async {
            context.deploy(&moving, None, None).await.unwrap_or_else(|error| panic!("{error}"));
        })
        .await;
        let took = started.elapsed().as_secs_f64();
        let moved = context.deploy(&moving, None, None).await.unwrap_or_else(|error| panic!("{error}"));
        let new = format!("atrium-{tenant}-web-g{}", moved.record.generation);
        assert_eq!(payload_bytes(&two, &new), u64::from(DATA_MIB) << 20, "the payload moved whole");

        // By hand: the same instance as Atrium renders it, on one, then moved to two.
        let by_hand = format!("bmh-{pid}-{round}");
        let _cleanup_by_hand = [
            Cleanup { host: one.clone(), tenants: vec![by_hand.clone()] },
            Cleanup { host: two.clone(), tenants: vec![by_hand.clone()] },
        ];
        let app = render_hello(&catalog, &by_hand, "web");
        create_network(&one, &app, &by_hand);
        deploy_rendered(&one, &app);
        let container = app.app_container().name.clone();
        fill(&one, &container);
        let volume = app.volumes.first().expect("hello has a data volume").name.clone();
        let image = app.app_container().image.clone();
        let baseline = downtime(&watched, &by_hand, &format!("one/{container}"), async {
            docker(&one, &["stop", &container]);
            copy_by_hand(&one, &two, &volume, &image);
            create_network(&two, &app, &by_hand);
            deploy_rendered(&two, &app);
        })
        .await;
        assert_eq!(payload_bytes(&two, &container), u64::from(DATA_MIB) << 20, "the payload was copied whole");
        println!(
            "round {round}: Atrium's move {atrium:.2} s without an answer (the apply took {took:.1} s); by hand {baseline:.2} s; {:.2}x",
            atrium / baseline
        );
        figures.push((atrium, baseline));
    }
    figures.sort_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
    let (atrium, baseline) = figures[figures.len() / 2];
    println!(
        "\nmove of hello with {DATA_MIB} MiB of data between two engines, downtime (old target's last answer to the new target's first):"
    );
    println!("  median round: Atrium {atrium:.2} s, Docker CLI by hand {baseline:.2} s: {:.2}x", atrium / baseline);
}
