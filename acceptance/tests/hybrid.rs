//! A hybrid tenant: one app instance on a single Docker engine, one on a
//! three-node Docker Swarm, planned and applied together through the real
//! terraform CLI, each answering over HTTPS on its own platform subdomain;
//! and a status page that keeps nothing, in several copies on the swarm.

use atrium_acceptance::{RegistryChoice, TestZone, Workspace, example, http_get, https_get};
use atrium_engine::test_services::{service_variable, swarm_nodes_running};

/// `docker ARGUMENTS` on `host`; its output lines. Panics with docker's error when it fails.
fn docker_lines(host: &str, arguments: &[&str]) -> Vec<String> {
    let output = std::process::Command::new("docker").args(["-H", host]).args(arguments).output().expect("run docker");
    assert!(output.status.success(), "docker {arguments:?} on {host}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

fn containers_on(docker_host: &str, tenant: &str) -> Vec<String> {
    docker_lines(
        docker_host,
        &["ps", "-a", "--filter", &format!("label=atrium.tenant={tenant}"), "--format", "{{.Names}}"],
    )
}

/// The swarm's services of `tenant`, by name, sorted.
fn services_of(tenant: &str) -> Vec<String> {
    let manager = service_variable("ATRIUM_TEST_SWARM_HOST");
    let mut services = docker_lines(
        &manager,
        &["service", "ls", "--filter", &format!("label=atrium.tenant={tenant}"), "--format", "{{.Name}}"],
    );
    services.sort();
    services
}

/// The swarm nodes (their engines) that hold a volume named `volume`.
fn nodes_holding(volume: &str) -> Vec<String> {
    service_variable("ATRIUM_TEST_SWARM_NODES")
        .split(',')
        .filter(|node| {
            docker_lines(node, &["volume", "ls", "-q", "--filter", &format!("name=^{volume}$")])
                .iter()
                .any(|v| v == volume)
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_with_an_instance_on_an_engine_and_one_on_a_swarm() {
    let id = std::process::id();
    let tenant = format!("hybrid-{id}");
    let zone = format!("hybrid{id}.atrium.test");
    let platform = TestZone::create(&zone);
    // The address a platform subdomain's A record holds.
    let address_of = |host: &str| -> Vec<String> {
        let records: Vec<String> = platform
            .record_sets()
            .iter()
            .filter(|set| set["name"] == format!("{host}.") && set["type"] == "A")
            .flat_map(|set| set["records"].as_array().cloned().unwrap_or_default())
            .filter_map(|record| record["content"].as_str().map(str::to_owned))
            .collect();
        records
    };
    let workspace = Workspace::new("hybrid", RegistryChoice::Sqlite).await;
    workspace.write("main.tf", &example("hybrid/main.tf"));
    std::fs::create_dir(workspace.path().join("catalog")).expect("the example's catalog directory");
    workspace.write("catalog/status.hcl", &example("hybrid/catalog/status.hcl"));
    let onprem = service_variable("ATRIUM_TEST_DOCKER_HOST");
    let swarm = service_variable("ATRIUM_TEST_SWARM_HOST");
    let variables = [
        format!("-var=onprem_docker_host={onprem}"),
        format!("-var=cloud_swarm_host={swarm}"),
        // This machine's kernel has no IPsec for Swarm's encrypted overlay networks.
        "-var=cloud_encrypted_networks=false".to_owned(),
        format!("-var=ingress_admin_url={}", service_variable("ATRIUM_TEST_CADDY_ADMIN_URL")),
        format!("-var=ingress_https_address=127.0.0.1:{}", service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT")),
        "-var=public_address=127.0.0.1".to_owned(),
        // The cloud is elsewhere: its apps' subdomains point at another address.
        "-var=cloud_public_address=127.0.0.2".to_owned(),
        format!("-var=platform_zone={zone}"),
        format!("-var=dns_api_url={}", service_variable("ATRIUM_TEST_PDNS_URL")),
        format!("-var=dns_resolver={}", service_variable("ATRIUM_TEST_PDNS_DNS_ADDRESS")),
        format!("-var=acme_directory_url={}", service_variable("ATRIUM_TEST_ACME_DIRECTORY")),
        format!("-var=acme_trusted_roots_file={}", service_variable("ATRIUM_TEST_ACME_CA_FILE")),
        format!("-var=tenant_name={tenant}"),
    ];
    let with_variables = |arguments: &[&str]| {
        let mut all: Vec<&str> = arguments.to_vec();
        all.extend(variables.iter().map(String::as_str));
        workspace.terraform(&all)
    };

    let applied =
        with_variables(&["apply", "-auto-approve", "-input=false"]).expect_code(0, "apply of the hybrid example");
    assert!(applied.stdout.contains("7 added"), "{}", applied.stdout);
    assert_eq!(containers_on(&onprem, &tenant), [format!("atrium-{tenant}-erp-g1")]);
    assert!(containers_on(&swarm, &tenant).iter().all(|name| !name.contains("-erp-")), "nothing of erp on the swarm");
    // The app's generations share one service, which Swarm rolls from one to the next.
    let status_service = format!("atrium-{tenant}-status");
    assert_eq!(services_of(&tenant), [format!("atrium-{tenant}-chat"), status_service.clone()]);
    // The status page keeps nothing: two copies, each on its own node.
    let copies = swarm_nodes_running(&status_service);
    assert!(copies.len() == 2 && copies[0] != copies[1], "two copies of the status page: {copies:?}");
    // The swarm instance's data is on one node, the one its service is pinned to.
    let holding = nodes_holding(&format!("atrium-{tenant}-chat-data"));
    assert_eq!(holding.len(), 1, "the chat volume is on exactly one node: {holding:?}");
    let constraint = docker_lines(
        &swarm,
        &["service", "inspect", &format!("atrium-{tenant}-chat"), "--format", "{{json .Spec.TaskTemplate.Placement}}"],
    );
    assert!(constraint.concat().contains("node.labels.atrium.node=="), "{constraint:?}");
    // Its internal URL is the port published on that node.
    let internal_url = workspace.state_attribute("atrium_app_instance.chat", "internal_url");
    let node_address = holding[0].trim_start_matches("tcp://").split(':').next().unwrap().to_owned();
    let internal_url = internal_url.as_str().expect("an internal URL");
    assert!(internal_url.starts_with(&format!("http://{node_address}:")), "{internal_url} is on {node_address}");
    assert!(http_get(internal_url).contains("hello 1.1"), "{internal_url}");
    for (name, version) in [("erp", "hello 1.1"), ("chat", "hello 1.1"), ("status", "hello 1.1")] {
        let host = format!("{name}-{tenant}.{zone}");
        let (status, page) = https_get(&host, "/");
        assert_eq!(status, 200, "{name} at https://{host}/: {page}");
        assert!(page.contains(version), "{name} at {host}: {page}");
    }
    with_variables(&["plan", "-detailed-exitcode", "-input=false"]).expect_code(0, "plan after the hybrid apply");
    with_variables(&["plan", "-detailed-exitcode", "-input=false", "-refresh=false"])
        .expect_code(0, "plan without refresh after the hybrid apply");

    // The ERP moves to the swarm with its data, in place, and back.
    let erp_host = format!("erp-{tenant}.{zone}");
    assert_eq!(address_of(&format!("chat-{tenant}.{zone}")), ["127.0.0.2"], "chat's subdomain points at the cloud");
    assert_eq!(address_of(&erp_host), ["127.0.0.1"], "erp's subdomain points at the engine");
    let marker = format!("written on the engine by {tenant}");
    docker_lines(
        &onprem,
        &["exec", &format!("atrium-{tenant}-erp-g1"), "sh", "-c", &format!("echo '{marker}' > /www/data/moved.txt")],
    );
    let to_swarm = "-var=erp_target=cloud-fra1";
    let plan =
        with_variables(&["plan", "-detailed-exitcode", "-input=false", to_swarm]).expect_code(2, "plan of a move");
    let shown = plan.flat_output();
    assert!(shown.contains("update in-place") && !shown.contains("must be replaced"), "{shown}");
    assert!(shown.contains("Apply moves the instance with its data"), "the plan says it is a move: {shown}");
    assert!(shown.contains("1 to change, 0 to destroy"), "{shown}");
    let moved = with_variables(&["apply", "-auto-approve", "-input=false", to_swarm]).expect_code(0, "the move");
    assert!(moved.stdout.contains("1 changed, 0 destroyed"), "{}", moved.stdout);
    assert!(containers_on(&onprem, &tenant).is_empty(), "nothing of erp runs on the engine any more");
    assert!(services_of(&tenant).contains(&format!("atrium-{tenant}-erp")), "{:?}", services_of(&tenant));
    let (status, page) = https_get(&erp_host, "/");
    assert!(status == 200 && page.contains("hello 1.1"), "erp on the swarm at https://{erp_host}/: {status} {page}");
    let (status, moved_file) = https_get(&erp_host, "/data/moved.txt");
    assert_eq!((status, moved_file.trim()), (200, marker.as_str()), "the data moved with it");
    assert_eq!(address_of(&erp_host), ["127.0.0.2"], "erp's subdomain follows it to the cloud in the same apply");
    let erp_nodes = nodes_holding(&format!("atrium-{tenant}-erp-data"));
    assert_eq!(erp_nodes.len(), 1, "the erp data is on one node: {erp_nodes:?}");
    // The engine keeps its copy of the data until it is purged.
    let onprem_volumes =
        docker_lines(&onprem, &["volume", "ls", "-q", "--filter", &format!("name=atrium-{tenant}-erp")]);
    assert_eq!(onprem_volumes, [format!("atrium-{tenant}-erp-data")]);
    with_variables(&["plan", "-detailed-exitcode", "-input=false", to_swarm]).expect_code(0, "plan after the move");
    // The move switched the domain's record, which the domain's state learns
    // at its next refresh: without one, only that computed value catches up.
    let stale = with_variables(&["plan", "-detailed-exitcode", "-input=false", "-refresh=false", to_swarm])
        .expect_code(2, "plan without refresh after the move");
    let shown = stale.flat_output();
    assert!(shown.contains("atrium_domain.erp will be updated in-place"), "{shown}");
    assert!(shown.contains(r#""127.0.0.1" -> "127.0.0.2""#) && shown.contains("0 to add, 1 to change"), "{shown}");
    assert!(!shown.contains("atrium_app_instance"), "the instance's state is current: {shown}");
    with_variables(&["apply", "-refresh-only", "-auto-approve", "-input=false", to_swarm])
        .expect_code(0, "refresh after the move");
    with_variables(&["plan", "-detailed-exitcode", "-input=false", "-refresh=false", to_swarm])
        .expect_code(0, "plan without refresh after the move and a refresh");

    with_variables(&["apply", "-auto-approve", "-input=false"]).expect_code(0, "the move back to the engine");
    assert!(!services_of(&tenant).contains(&format!("atrium-{tenant}-erp")), "erp left the swarm");
    assert_eq!(containers_on(&onprem, &tenant), [format!("atrium-{tenant}-erp-g3")]);
    let (status, moved_file) = https_get(&erp_host, "/data/moved.txt");
    assert_eq!((status, moved_file.trim()), (200, marker.as_str()), "the data came back with it");
    assert_eq!(address_of(&erp_host), ["127.0.0.1"], "erp's subdomain points at the engine again");
    with_variables(&["plan", "-detailed-exitcode", "-input=false"]).expect_code(0, "plan after the move back");

    // A third copy of the status page: in place, the same generation.
    let three = "-var=status_replicas=3";
    let plan =
        with_variables(&["plan", "-detailed-exitcode", "-input=false", three]).expect_code(2, "plan of 3 copies");
    let shown = plan.flat_output();
    assert!(shown.contains("~ replicas") && shown.contains("2 -> 3") && shown.contains("1 to change"), "{shown}");
    assert!(!shown.contains("must be replaced") && !shown.contains("version_deployed"), "{shown}");
    with_variables(&["apply", "-auto-approve", "-input=false", three]).expect_code(0, "apply of 3 copies");
    let mut copies = Vec::new();
    for _ in 0..60 {
        copies = swarm_nodes_running(&status_service);
        if copies.len() == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(copies.len(), 3, "three copies, one per node: {copies:?}");
    let (status_code, page) = https_get(&format!("status-{tenant}.{zone}"), "/");
    assert!(status_code == 200 && page.contains("hello 1.1"), "the status page: {status_code} {page}");
    with_variables(&["plan", "-detailed-exitcode", "-input=false", three]).expect_code(0, "plan after 3 copies");

    with_variables(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "destroy");
    assert!(containers_on(&onprem, &tenant).is_empty());
    assert!(services_of(&tenant).is_empty(), "no service is left on the swarm");
    let configs = docker_lines(&swarm, &["config", "ls", "-q", "--filter", &format!("label=atrium.tenant={tenant}")]);
    assert!(configs.is_empty(), "no configuration file is left on the swarm: {configs:?}");
    let networks = docker_lines(&swarm, &["network", "ls", "-q", "--filter", &format!("label=atrium.tenant={tenant}")]);
    assert!(networks.is_empty(), "the tenant's overlay network is gone: {networks:?}");
    // Data is kept on destroy unless asked: each volume on its own target (and node).
    let volume = format!("atrium-{tenant}-erp-data");
    docker_lines(&onprem, &["volume", "rm", &volume]);
    let volume = format!("atrium-{tenant}-chat-data");
    assert_eq!(nodes_holding(&volume), holding, "the chat data is kept on the node that held it");
    docker_lines(&holding[0], &["volume", "rm", &volume]);
    // The swarm's copy of the erp data, left by the move back.
    let volume = format!("atrium-{tenant}-erp-data");
    assert_eq!(nodes_holding(&volume), erp_nodes, "the swarm keeps its copy of the erp data");
    docker_lines(&erp_nodes[0], &["volume", "rm", &volume]);
}
