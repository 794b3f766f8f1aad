//! Backends that are down, through the real terraform CLI: every retry ends
//! at the deadline `timeouts` gives, and every error names the system, its
//! endpoint and what to check, once.

use std::time::{Duration, Instant};

use atrium_acceptance::{
    RegistryChoice, TestZone, Workspace, docker, provider_example_with_test_services, with_test_smtp,
};
use atrium_engine::test_services::service_variable;

fn tenant_block(tenant: &str, welcome: bool) -> String {
    format!(
        "resource \"atrium_tenant\" \"acme\" {{\n  name          = \"{tenant}\"\n  display_name  = \"ACME GmbH\"\n  tier          = \"business\"\n  welcome_email = {welcome}\n  manager = {{\n    email = \"it-lead@{tenant}.example\"\n    name  = \"Dana Fischer\"\n  }}\n}}\n"
    )
}

fn instance_block(timeouts: &str) -> String {
    format!(
        "resource \"atrium_app_instance\" \"web\" {{\n  tenant_id = atrium_tenant.acme.id\n  name      = \"web\"\n  app       = \"hello\"\n  target    = \"lyon-onprem\"\n  users     = 5\n{timeouts}}}\n"
    )
}

fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_is_down_fails_the_create_at_its_deadline_naming_the_proxy_once() {
    let id = std::process::id();
    let (tenant, zone_name) = (format!("down-{id}"), format!("down{id}.atrium.test"));
    let zone = TestZone::create(&zone_name);
    let workspace = Workspace::new("proxy_down", RegistryChoice::Sqlite).await;
    let provider = provider_example_with_test_services(&zone_name);
    workspace.write("provider.tf", &provider);
    let base = format!("{}{}", tenant_block(&tenant, false), instance_block(""));
    workspace.write("main.tf", &base);
    workspace.apply();

    // Caddy's admin API is not where the target says: nothing listens on port 9.
    let admin_url = service_variable("ATRIUM_TEST_CADDY_ADMIN_URL");
    workspace.write("provider.tf", &provider.replace(&admin_url, "http://127.0.0.1:9"));
    let domain = format!(
        "resource \"atrium_domain\" \"web\" {{\n  app_instance_id = atrium_app_instance.web.id\n  hostname        = \"web.{zone_name}\"\n  tls             = \"none\"\n  timeouts        = {{ create = \"20s\" }}\n}}\n"
    );
    workspace.write("main.tf", &format!("{base}{domain}"));
    let started = Instant::now();
    let failed = workspace
        .terraform(&["apply", "-auto-approve", "-input=false"])
        .expect_code(1, "apply with the proxy down")
        .flat_output();
    let took = started.elapsed();
    // 20 s of retries, plus Terraform's own plan and refresh: well under 40 s.
    assert!(took < Duration::from_secs(34), "the 20 s create deadline was overrun: {took:?}\n{failed}");
    let named = "cannot reach the reverse proxy (Caddy) at http://127.0.0.1:9";
    assert_eq!(occurrences(&failed, named), 1, "the proxy is named once:\n{failed}");
    assert!(failed.contains("ingress_admin_url"), "says what to check:\n{failed}");
    assert_eq!(occurrences(&failed, "Connection refused"), 1, "the cause is given once:\n{failed}");

    // With the proxy back, the next apply makes the domain.
    workspace.write("provider.tf", &provider);
    workspace.apply();
    workspace.assert_plan_empty("after the proxy came back");
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    drop(zone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_engine_that_is_down_is_named_with_its_endpoint_once() {
    let tenant = format!("nodock-{}", std::process::id());
    let workspace = Workspace::new("docker_down", RegistryChoice::Sqlite).await;
    let provider = provider_example_with_test_services("nodock.atrium.test");
    let socket = format!("unix:///tmp/atrium-no-docker-{}.sock", std::process::id());
    let docker_host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    workspace.write("provider.tf", &provider.replace(&docker_host, &socket));
    workspace.write(
        "main.tf",
        &format!("{}{}", tenant_block(&tenant, false), instance_block("  timeouts  = { create = \"5s\" }\n")),
    );
    let started = Instant::now();
    let failed = workspace
        .terraform(&["apply", "-auto-approve", "-input=false"])
        .expect_code(1, "apply with Docker down")
        .flat_output();
    assert!(started.elapsed() < Duration::from_secs(25), "the 5 s deadline was overrun:\n{failed}");
    let named = format!("cannot reach the Docker engine of target lyon-onprem at {socket}");
    assert_eq!(occurrences(&failed, &named), 1, "the engine is named once, with its socket:\n{failed}");
    assert!(!failed.contains("refused to"), "nothing refused anything; nothing listens:\n{failed}");
    let containers =
        docker(&["ps", "-a", "--filter", &format!("label=atrium.tenant={tenant}"), "--format", "{{.Names}}"]);
    assert!(containers.trim().is_empty(), "{containers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_relay_that_is_down_is_a_warning_naming_the_relay_once() {
    let id = std::process::id();
    let (tenant, zone_name) = (format!("nosmtp-{id}"), format!("nosmtp{id}.atrium.test"));
    let zone = TestZone::create(&zone_name);
    let workspace = Workspace::new("smtp_down", RegistryChoice::Sqlite).await;
    let provider = with_test_smtp(&provider_example_with_test_services(&zone_name));
    workspace.write("provider.tf", &provider.replace(&service_variable("ATRIUM_TEST_SMTP_URL"), "smtp://127.0.0.1:9"));
    let domain = format!(
        "resource \"atrium_domain\" \"web\" {{\n  app_instance_id = atrium_app_instance.web.id\n  hostname        = \"web.{zone_name}\"\n  tls             = \"none\"\n}}\n"
    );
    workspace.write("main.tf", &format!("{}{}{domain}", tenant_block(&tenant, true), instance_block("")));
    // The email goes out when the domain goes live: the domain's apply warns.
    let applied = workspace.apply().flat_output();
    assert!(applied.contains("Welcome email not sent"), "{applied}");
    assert_eq!(occurrences(&applied, "the SMTP relay at smtp://127.0.0.1:9"), 1, "{applied}");
    assert_eq!(occurrences(&applied, "Connection refused"), 1, "the cause is given once:\n{applied}");
    workspace.terraform(&["apply", "-refresh-only", "-auto-approve", "-input=false"]).expect_code(0, "refresh");
    assert_eq!(workspace.state_attribute("atrium_app_instance.web", "welcome_email_status"), "pending");
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    drop(zone);
}
