//! A hybrid tenant: app instances on two targets (two Docker engines, the
//! cloud one reached over TCP with mutual TLS), planned and applied together.

use atrium_acceptance::{RegistryChoice, Workspace, example, http_get};
use atrium_engine::test_services::service_variable;

fn containers_on(docker_host: &str, tenant: &str) -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args([
            "-H",
            docker_host,
            "ps",
            "-a",
            "--filter",
            &format!("label=atrium.tenant={tenant}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .expect("run docker");
    assert!(output.status.success(), "docker ps on {docker_host}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn one_tenant_with_an_instance_on_each_of_two_targets() {
    let workspace = Workspace::new("hybrid", RegistryChoice::Sqlite).await;
    workspace.write("main.tf", &example("hybrid/main.tf"));
    let (onprem, cloud) = (service_variable("ATRIUM_TEST_DOCKER_HOST"), service_variable("ATRIUM_TEST_DOCKER_HOST_2"));
    let cloud_tls = service_variable("ATRIUM_TEST_DOCKER_HOST_2_TLS");
    let cloud_certificates = service_variable("ATRIUM_TEST_DOCKER_HOST_2_CERT_PATH");
    let tenant = format!("hybrid-{}", std::process::id());
    let variables = [
        format!("-var=onprem_docker_host={onprem}"),
        format!("-var=cloud_docker_host={cloud_tls}"),
        format!("-var=cloud_docker_cert_path={cloud_certificates}"),
        format!("-var=tenant_name={tenant}"),
    ];
    let with_variables = |arguments: &[&str]| {
        let mut all: Vec<&str> = arguments.to_vec();
        all.extend(variables.iter().map(String::as_str));
        workspace.terraform(&all)
    };

    let applied =
        with_variables(&["apply", "-auto-approve", "-input=false"]).expect_code(0, "apply of the hybrid example");
    assert!(applied.stdout.contains("3 added"), "{}", applied.stdout);
    assert_eq!(containers_on(&onprem, &tenant), [format!("atrium-{tenant}-erp-g1")]);
    assert_eq!(containers_on(&cloud, &tenant), [format!("atrium-{tenant}-chat-g1")]);
    let urls = workspace.terraform(&["output", "-json", "urls"]).expect_code(0, "output urls");
    let urls: serde_json::Value = serde_json::from_str(&urls.stdout).unwrap();
    for name in ["erp", "chat"] {
        let url = urls[name].as_str().unwrap();
        assert!(http_get(url).contains("hello 1.1"), "{name} at {url}");
    }
    with_variables(&["plan", "-detailed-exitcode", "-input=false"]).expect_code(0, "plan after the hybrid apply");

    with_variables(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "destroy");
    assert!(containers_on(&onprem, &tenant).is_empty() && containers_on(&cloud, &tenant).is_empty());
    for (host, name) in [(&onprem, "erp"), (&cloud, "chat")] {
        let volume = format!("atrium-{tenant}-{name}-data");
        let removed =
            std::process::Command::new("docker").args(["-H", host, "volume", "rm", &volume]).status().unwrap();
        assert!(removed.success(), "the data volume {volume} was kept on its own target");
    }
}
