//! Who owns what, through the real terraform CLI: two configurations on one
//! registry never take each other's objects, a replacement never destroys
//! the live object, `kill -9` in the middle of an apply converges, objects
//! that others still use are never destroyed under them, a failed create
//! leaves nothing, and processes opening a new registry at once all migrate.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use atrium_acceptance::{
    RegistryChoice, TestZone, Workspace, caddy, docker, http_get_host, provider_example,
    provider_example_with_test_services,
};
use atrium_engine::model::TenantId;
use atrium_engine::model::app_instance::AppInstanceId;
use atrium_engine::model::domain::Hostname;

/// A test's own tenant and platform zone.
struct Names {
    tenant: String,
    zone: String,
}

impl Names {
    fn new(short: &str) -> Names {
        let id = std::process::id();
        Names { tenant: format!("{short}-{id}"), zone: format!("{short}{id}.atrium.test") }
    }

    fn host(&self) -> String {
        format!("web.{}", self.zone)
    }

    fn container(&self, generation: u32) -> String {
        format!("atrium-{}-web-g{generation}", self.tenant)
    }

    fn tenant_block(&self) -> String {
        format!(
            "resource \"atrium_tenant\" \"acme\" {{\n  name          = \"{}\"\n  display_name  = \"ACME GmbH\"\n  tier          = \"business\"\n  welcome_email = false\n  manager = {{\n    email = \"it-lead@acme.example\"\n    name  = \"Dana Fischer\"\n  }}\n}}\n",
            self.tenant
        )
    }

    /// An instance `name` of the tenant, referenced by `tenant_id`
    /// (an expression), with `extra` lines inside the block.
    fn instance_block(&self, name: &str, tenant_id: &str, extra: &str) -> String {
        format!(
            "resource \"atrium_app_instance\" \"{name}\" {{\n  tenant_id = {tenant_id}\n  name      = \"{name}\"\n  app       = \"hello\"\n  target    = \"lyon-onprem\"\n  users     = 5\n{extra}}}\n"
        )
    }

    fn domain_block(&self, instance_id: &str) -> String {
        format!(
            "resource \"atrium_domain\" \"web\" {{\n  app_instance_id = {instance_id}\n  hostname        = \"{}\"\n  tls             = \"none\"\n}}\n",
            self.host()
        )
    }

    /// Tenant, instance `web` and its plain-HTTP platform subdomain.
    fn full(&self, instance_extra: &str) -> String {
        format!(
            "{}{}{}",
            self.tenant_block(),
            self.instance_block("web", "atrium_tenant.acme.id", instance_extra),
            self.domain_block("atrium_app_instance.web.id")
        )
    }
}

/// Whether a container of that name runs on the test engine (an error of
/// the docker CLI fails the test).
fn running(container: &str) -> bool {
    let names = docker(&["ps", "--filter", &format!("name=^{container}$"), "--format", "{{.Names}}"]);
    names.lines().any(|line| line == container)
}

/// The tenant's containers, running or not.
fn containers_of(tenant: &str) -> Vec<String> {
    let names = docker(&["ps", "-a", "--filter", &format!("label=atrium.tenant={tenant}"), "--format", "{{.Names}}"]);
    let mut names: Vec<String> = names.lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// Whether the test Caddy has Atrium's route for `host`.
fn route_exists(host: &str) -> bool {
    let (status, body) = caddy("GET", &format!("/id/atrium-{host}"), None);
    assert!(status == 200 || status == 404, "caddy answered {status}: {body}");
    status == 200
}

fn a_record_exists(zone: &TestZone, host: &str) -> bool {
    zone.record_sets().iter().any(|set| set["name"] == format!("{host}.") && set["type"] == "A")
}

async fn rows(workspace: &Workspace, names: &Names) -> (bool, bool, bool) {
    let registry = workspace.registry().await;
    let tenant = TenantId::parse(&names.tenant).unwrap();
    let instance = AppInstanceId { tenant_id: tenant.clone(), name: "web".into() };
    let rows = (
        registry.get_tenant(&tenant).await.unwrap().is_some(),
        registry.get_app_instance(&instance).await.unwrap().is_some(),
        registry.get_domain(&Hostname::parse(&names.host()).unwrap()).await.unwrap().is_some(),
    );
    registry.close().await;
    rows
}

/// Everything of the first configuration is still there and serving.
async fn assert_untouched(first: &Workspace, names: &Names, zone: &TestZone) {
    assert!(running(&names.container(1)), "the first team's container runs");
    assert!(route_exists(&names.host()), "the first team's route is there");
    assert!(a_record_exists(zone, &names.host()), "the first team's DNS record is there");
    assert_eq!(rows(first, names).await, (true, true, true), "the first team's rows are there");
    let (status, body) = http_get_host(&names.host(), "/");
    assert_eq!(status, 200, "the first team's app answers: {body}");
    first.assert_plan_empty("for the first team");
}

/// Destroys through terraform and checks that nothing of the test is left.
async fn destroy_and_check_nothing_left(workspace: &Workspace, names: &Names, zone: &TestZone) {
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert!(containers_of(&names.tenant).is_empty(), "containers left: {:?}", containers_of(&names.tenant));
    assert!(!route_exists(&names.host()), "a route is left");
    assert!(!a_record_exists(zone, &names.host()), "a record is left");
    assert_eq!(rows(workspace, names).await, (false, false, false), "rows are left");
    let registry = workspace.registry().await;
    let claims = registry.claims_of_tenant(&TenantId::parse(&names.tenant).unwrap()).await.unwrap();
    assert!(claims.is_empty(), "claims are left: {claims:?}");
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_workspace_is_refused_and_loses_nothing_of_the_first() {
    let names = Names::new("own");
    let zone = TestZone::create(&names.zone);
    let first = Workspace::new("own_first", RegistryChoice::Sqlite).await;
    first.write("provider.tf", &provider_example_with_test_services(&names.zone));
    first.write("main.tf", &names.full(""));
    first.apply();
    assert_untouched(&first, &names, &zone).await;

    // Another team, another directory, the same registry and the same spec.
    let second = Workspace::sharing_registry_of("own_second", &first).await;
    second.write("provider.tf", &provider_example_with_test_services(&names.zone));
    second.write("main.tf", &names.full(""));
    let plan = second.plan(true).expect_code(1, "the second team's plan").flat_output();
    assert!(plan.contains("The tenant already exists"), "{plan}");
    assert!(plan.contains(&first.path().display().to_string()), "names the first configuration: {plan}");
    assert!(plan.contains("terraform import atrium_tenant.<name>"), "says how to import: {plan}");
    second.terraform(&["apply", "-auto-approve", "-input=false"]).expect_code(1, "the second team's apply");
    // The instance and the domain alone (naming the tenant and the instance
    // directly) are refused too, each naming the first configuration.
    let tenant_id = format!("\"{}\"", names.tenant);
    second.write(
        "main.tf",
        &format!(
            "{}{}",
            names.instance_block("web", &tenant_id, ""),
            names.domain_block(&format!("\"{}/web\"", names.tenant))
        ),
    );
    let plan = second.plan(true).expect_code(1, "the second team's plan of the instance and domain").flat_output();
    for kind in ["app instance", "domain"] {
        assert!(plan.contains(&format!("The {kind} already exists")), "{kind}: {plan}");
    }
    assert!(plan.contains("terraform import atrium_app_instance.<name>"), "says how to import: {plan}");
    second.terraform(&["apply", "-auto-approve", "-input=false"]).expect_code(1, "the second team's apply");
    // Its destroy has nothing to destroy, and destroys nothing.
    second.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "the second team's destroy");
    assert_untouched(&first, &names, &zone).await;

    // A different spec under the same names is refused too, and redeploys nothing.
    second.write("main.tf", &names.instance_block("web", &tenant_id, "  version   = \"1.0\"\n"));
    second.plan(true).expect_code(1, "the second team's plan of another version");
    second.terraform(&["apply", "-auto-approve", "-input=false"]).expect_code(1, "the second team's apply");
    assert!(running(&names.container(1)) && !running(&names.container(2)), "nothing was redeployed");

    destroy_and_check_nothing_left(&first, &names, &zone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_before_destroy_and_replace_never_destroy_the_live_instance() {
    let names = Names::new("cbd");
    let zone = TestZone::create(&names.zone);
    let workspace = Workspace::new("cbd", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_services(&names.zone));
    workspace.write("main.tf", &names.full("  lifecycle {\n    create_before_destroy = true\n  }\n"));
    workspace.apply();

    // The replacement's create would need the name the live instance has.
    let failed = workspace
        .terraform(&["apply", "-auto-approve", "-input=false", "-replace=atrium_app_instance.web"])
        .expect_code(1, "apply -replace with create_before_destroy")
        .flat_output();
    assert!(failed.contains("create_before_destroy"), "{failed}");
    assert!(running(&names.container(1)), "the live container runs");
    assert_eq!(workspace.state_attribute("atrium_app_instance.web", "status"), "running");
    assert_eq!(containers_of(&names.tenant), [names.container(1)], "no second copy");
    assert_eq!(http_get_host(&names.host(), "/").0, 200, "the domain still answers");
    workspace.assert_plan_empty("after the refused replacement");

    // Without create_before_destroy, -replace destroys first and the domain follows the new instance.
    workspace.write("main.tf", &names.full(""));
    let replaced = workspace
        .terraform(&["apply", "-auto-approve", "-input=false", "-replace=atrium_app_instance.web"])
        .expect_code(0, "apply -replace");
    assert!(replaced.stdout.contains("1 added, 0 changed, 1 destroyed"), "{}", replaced.stdout);
    assert_eq!(containers_of(&names.tenant), [names.container(1)]);
    let (status, body) = http_get_host(&names.host(), "/");
    assert_eq!(status, 200, "the domain reaches the new instance: {body}");
    workspace.assert_plan_empty("after the replacement");
    destroy_and_check_nothing_left(&workspace, &names, &zone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_create_converges_on_the_next_apply() {
    let names = Names::new("kill");
    let zone = TestZone::create(&names.zone);
    let workspace = Workspace::new("kill", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_services(&names.zone));
    workspace.write("main.tf", &names.full(""));

    let mut command = workspace.command(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    let log = std::fs::File::create(workspace.path().join("apply.log")).unwrap();
    command.process_group(0).stdout(Stdio::from(log.try_clone().unwrap())).stderr(Stdio::from(log));
    let mut child = command.spawn().expect("start terraform apply");
    let started = Instant::now();
    // Kill Terraform and its provider as soon as the app container exists: mid-deployment.
    while !containers_of(&names.tenant).contains(&names.container(1)) {
        assert!(started.elapsed() < Duration::from_secs(60), "no container after a minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SAFETY: kill(2) with a negative pid signals the process group we created.
    assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) }, 0);
    child.wait().expect("wait for terraform");

    // The next apply of the same configuration finishes what was started.
    workspace.apply();
    assert_eq!(containers_of(&names.tenant), [names.container(1)], "one container, no duplicate");
    assert_eq!(http_get_host(&names.host(), "/").0, 200);
    workspace.assert_plan_empty("after the apply that converged");
    destroy_and_check_nothing_left(&workspace, &names, &zone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_another_configuration_still_uses_are_never_destroyed() {
    let names = Names::new("dep");
    let zone = TestZone::create(&names.zone);
    // The first team: the tenant and its instance `web`.
    let first = Workspace::new("dep_first", RegistryChoice::Sqlite).await;
    first.write("provider.tf", &provider_example_with_test_services(&names.zone));
    first.write(
        "main.tf",
        &format!("{}{}", names.tenant_block(), names.instance_block("web", "atrium_tenant.acme.id", "")),
    );
    first.apply();
    // The second team: an instance `api` of that tenant and a domain on `web`.
    let second = Workspace::sharing_registry_of("dep_second", &first).await;
    second.write("provider.tf", &provider_example_with_test_services(&names.zone));
    let tenant_id = format!("\"{}\"", names.tenant);
    let with_domain = format!(
        "{}{}",
        names.instance_block("api", &tenant_id, ""),
        names.domain_block(&format!("\"{}/web\"", names.tenant))
    );
    second.write("main.tf", &with_domain);
    second.apply();
    let api = format!("atrium-{}-api-g1", names.tenant);

    // The instance still serves the second team's domain: not destroyed.
    let refused = first
        .terraform(&["destroy", "-auto-approve", "-input=false"])
        .expect_code(1, "destroy of an instance another configuration's domain serves")
        .flat_output();
    assert!(refused.contains(&format!("domain {}", names.host())), "{refused}");
    assert!(refused.contains(&second.path().display().to_string()), "names where it is managed: {refused}");
    assert!(running(&names.container(1)) && running(&api), "nothing was stopped");
    assert!(route_exists(&names.host()));

    // Without the domain, the tenant still holds the second team's instance: not destroyed.
    second.write("main.tf", &names.instance_block("api", &tenant_id, ""));
    second.apply();
    let refused = first
        .terraform(&["destroy", "-auto-approve", "-input=false"])
        .expect_code(1, "destroy of a tenant another configuration's instance needs")
        .flat_output();
    assert!(refused.contains(&format!("app instance {}/api", names.tenant)), "{refused}");
    assert!(running(&api), "the second team's instance runs");
    assert!(rows(&first, &names).await.0, "the tenant is kept");

    // In order, everything goes.
    second.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "the second team's destroy");
    destroy_and_check_nothing_left(&first, &names, &zone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_support_plan_create_that_cannot_reach_the_tracker_is_finished_by_the_next_apply() {
    let names = Names::new("sfail");
    let workspace = Workspace::new("support_fail", RegistryChoice::Sqlite).await;
    let good_provider = provider_example_with_test_services(&names.zone);
    let tracker_url = atrium_engine::test_services::service_variable("ATRIUM_TEST_REDMINE_URL");
    // Nothing listens on port 9: the tracker is down.
    workspace.write("provider.tf", &good_provider.replace(&tracker_url, "http://127.0.0.1:9"));
    let plan = "resource \"atrium_support_plan\" \"acme\" {\n  tenant_id      = atrium_tenant.acme.id\n  level          = \"standard_8x5\"\n  tracker_access = true\n  timeouts       = { create = \"5s\" }\n}\n";
    workspace.write("main.tf", &format!("{}{plan}", names.tenant_block()));
    let failed = workspace
        .terraform(&["apply", "-auto-approve", "-input=false"])
        .expect_code(1, "apply with the tracker down")
        .flat_output();
    assert!(failed.contains("127.0.0.1:9"), "names the tracker it could not reach: {failed}");
    // The tracker cannot say whether the project was made, so the create is
    // not undone blindly: the journal keeps it for the next apply, and the
    // error says so.
    assert!(failed.contains("the next apply finishes or undoes what is left"), "{failed}");
    let registry = workspace.registry().await;
    let tenant = TenantId::parse(&names.tenant).unwrap();
    let journal = registry.journal_operations().await.unwrap();
    assert!(
        journal.iter().any(|operation| operation.starts_with(&format!("create support_plan {}", names.tenant))),
        "the journal keeps the failed create: {journal:?}"
    );

    // With the tracker back, the next apply makes it.
    workspace.write("provider.tf", &good_provider);
    workspace.apply();
    assert!(registry.get_support_plan(&tenant).await.unwrap().is_some());
    assert!(registry.journal_operations().await.unwrap().is_empty(), "the finished create left its journal");
    workspace.assert_plan_empty("after the support plan was made");
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert!(registry.claims_of_tenant(&tenant).await.unwrap().is_empty());
    registry.close().await;
}

/// Several terraform processes at once, each the first to open a new registry.
async fn first_opens_at_once(registry_choice: RegistryChoice, test_name: &str) {
    const PROCESSES: usize = 6;
    let first = Workspace::new(&format!("{test_name}_0"), registry_choice).await;
    let mut workspaces = vec![first];
    for index in 1..PROCESSES {
        workspaces.push(Workspace::sharing_registry_of(&format!("{test_name}_{index}"), &workspaces[0]).await);
    }
    let children: Vec<_> = workspaces
        .iter()
        .enumerate()
        .map(|(index, workspace)| {
            workspace.write("provider.tf", &provider_example());
            let tenant = format!("{}-{}-{index}", test_name.replace('_', "-"), std::process::id());
            workspace.write(
                "main.tf",
                &format!(
                    "resource \"atrium_tenant\" \"t\" {{\n  name         = \"{tenant}\"\n  display_name = \"T\"\n  tier         = \"basic\"\n  manager = {{\n    email = \"m@t.example\"\n    name  = \"M\"\n  }}\n}}\n"
                ),
            );
            workspace
                .command(&["apply", "-auto-approve", "-input=false", "-no-color"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start terraform")
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().expect("wait for terraform");
        assert!(
            output.status.success(),
            "a terraform apply on a new registry failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let registry = workspaces[0].registry().await;
    assert_eq!(registry.count_tenants().await.unwrap(), PROCESSES as i64);
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_a_new_sqlite_registry_at_once_all_migrate() {
    first_opens_at_once(RegistryChoice::Sqlite, "mig_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_a_new_postgres_registry_at_once_all_migrate() {
    first_opens_at_once(RegistryChoice::Postgres, "mig_pg").await;
}
