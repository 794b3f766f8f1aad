//! The `atrium` CLI through its real binary against the real registry:
//! the lifecycle of a configuration onboarding customers from a CSV file,
//! ownership between CLI owners and Terraform configurations sharing one
//! registry, and objects deleted by hand.

use atrium_acceptance::{RegistryChoice, Workspace, provider_example};
use atrium_engine::model::TenantId;
use atrium_engine::model::ownership::ObjectKind;

/// The `atrium` block of a CLI owner (the registry comes from the environment).
fn atrium_block(owner: &str) -> String {
    format!("atrium {{\n  owner = \"{owner}\"\n}}\n")
}

/// Tenants from `customers.csv`, one per row.
const CUSTOMERS_TF: &str = r#"
variable "prefix" {
  type = string
}

locals {
  customers = { for c in csvdecode(file("customers.csv")) : "${var.prefix}-${lower(c.name)}" => c }
}

resource "atrium_tenant" "customer" {
  for_each      = local.customers
  name          = each.key
  display_name  = format("%s (%s)", each.value.name, each.value.city)
  tier          = each.value.tier
  welcome_email = false
  manager = {
    email = each.value.manager
    name  = "Manager of ${each.value.name}"
  }
}
"#;

async fn tenants_of(workspace: &Workspace, prefix: &str) -> Vec<(String, String)> {
    let registry = workspace.registry().await;
    let mut found: Vec<(String, String)> = registry
        .list_tenants()
        .await
        .expect("list tenants")
        .into_iter()
        .filter(|t| t.spec.name.as_str().starts_with(prefix))
        .map(|t| (t.spec.name.to_string(), t.spec.display_name.clone()))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn a_csv_of_customers_is_planned_applied_updated_pruned_and_destroyed() {
    let workspace = Workspace::new("cli-lifecycle", RegistryChoice::Sqlite).await;
    let prefix = format!("c{}", std::process::id());
    let var = format!("prefix={prefix}");
    workspace.write("atrium.hcl", &atrium_block("partner-a"));
    workspace.write("main.tf", CUSTOMERS_TF);
    workspace.write(
        "customers.csv",
        "name,city,tier,manager\nAcme,Lyon,business,it@acme.example\nBeta,Bonn,basic,boss@beta.example\n",
    );

    workspace.atrium(&["validate", "-var", &var]).expect_code(0, "atrium validate");
    let plan = workspace.atrium(&["plan", "-var", &var]).expect_code(2, "atrium plan of a new configuration");
    assert!(plan.stdout.contains(&format!("+ tenant {prefix}-acme (the tenant does not exist)")), "{}", plan.stdout);
    assert!(plan.stdout.contains("Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy."), "{}", plan.stdout);
    assert!(tenants_of(&workspace, &prefix).await.is_empty(), "plan changes nothing");

    let apply = workspace.atrium(&["apply", "-auto-approve", "-var", &var]).expect_code(0, "atrium apply");
    assert!(apply.stdout.contains("Apply complete! Resources: 2 added"), "{}", apply.stdout);
    assert_eq!(
        tenants_of(&workspace, &prefix).await,
        [(format!("{prefix}-acme"), "Acme (Lyon)".to_owned()), (format!("{prefix}-beta"), "Beta (Bonn)".to_owned())]
    );
    workspace.atrium(&["plan", "-var", &var]).expect_code(0, "atrium plan after apply");
    let state = workspace.atrium(&["state", "list", "-var", &var]).expect_code(0, "atrium state list");
    assert_eq!(
        state.stdout.lines().collect::<Vec<_>>(),
        [format!("atrium_tenant.customer[\"{prefix}-acme\"]"), format!("atrium_tenant.customer[\"{prefix}-beta\"]")]
    );

    // A row changes, another goes, one is added.
    workspace.write(
        "customers.csv",
        "name,city,tier,manager\nAcme,Paris,enterprise,it@acme.example\nGamma,Graz,basic,g@gamma.example\n",
    );
    let plan = workspace.atrium(&["plan", "-var", &var]).expect_code(2, "atrium plan of changed rows");
    for expected in [
        format!("~ tenant {prefix}-acme (display_name, tier, user_quota changed)"),
        "    display_name: \"Acme (Lyon)\" -> \"Acme (Paris)\"".to_owned(),
        format!("- tenant {prefix}-beta (the tenant is no longer declared)"),
        format!("+ tenant {prefix}-gamma (the tenant does not exist)"),
        "Plan: 1 to add, 1 to change, 0 to replace, 1 to destroy.".to_owned(),
    ] {
        assert!(plan.stdout.contains(&expected), "missing {expected:?} in\n{}", plan.stdout);
    }
    workspace.atrium(&["apply", "-auto-approve", "-var", &var]).expect_code(0, "atrium apply of changed rows");
    assert_eq!(
        tenants_of(&workspace, &prefix).await,
        [(format!("{prefix}-acme"), "Acme (Paris)".to_owned()), (format!("{prefix}-gamma"), "Gamma (Graz)".to_owned())]
    );
    workspace.atrium(&["plan", "-var", &var]).expect_code(0, "atrium plan after the second apply");

    // Renaming a tenant replaces it.
    workspace.write(
        "customers.csv",
        "name,city,tier,manager\nAcme,Paris,enterprise,it@acme.example\nGamma2,Graz,basic,g@gamma.example\n",
    );
    let plan = workspace.atrium(&["plan", "-var", &var]).expect_code(2, "atrium plan of a renamed row");
    assert!(plan.stdout.contains("1 to add, 0 to change, 0 to replace, 1 to destroy"), "{}", plan.stdout);

    let destroy = workspace.atrium(&["destroy", "-auto-approve", "-var", &var]).expect_code(0, "atrium destroy");
    assert!(destroy.stdout.contains("2 destroyed"), "{}", destroy.stdout);
    assert!(tenants_of(&workspace, &prefix).await.is_empty(), "destroy leaves no tenant");
    let registry = workspace.registry().await;
    let claims = registry.list_claims().await.expect("list claims");
    assert!(claims.iter().all(|c| !c.key.starts_with(&prefix)), "destroy leaves no claim: {claims:?}");
    workspace.atrium(&["state", "list", "-var", &var]).expect_code(0, "atrium state list after destroy");
}

#[tokio::test]
async fn cli_owners_and_terraform_never_take_each_others_objects() {
    let terraform = Workspace::new("cli-owners-tf", RegistryChoice::Sqlite).await;
    let cli = Workspace::sharing_registry_of("cli-owners-a", &terraform).await;
    let other_cli = Workspace::sharing_registry_of("cli-owners-b", &terraform).await;
    let id = std::process::id();
    let tenant = |name: &str| {
        format!(
            "resource \"atrium_tenant\" \"{name}\" {{\n  name = \"{name}-{id}\"\n  display_name = \"{name}\"\n  tier = \"basic\"\n  welcome_email = false\n  manager = {{ email = \"m@{name}.example\", name = \"M\" }}\n}}\n"
        )
    };
    terraform.write("main.tf", &format!("{}{}", provider_example(), tenant("tfowned")));
    terraform.apply();

    cli.write("atrium.hcl", &atrium_block("partner-a"));
    cli.write("main.tf", &format!("{}{}", tenant("cliowned"), tenant("tfowned")));
    let refused = cli.atrium(&["plan"]).expect_code(1, "atrium plan of Terraform's tenant");
    let text = refused.flat_output();
    assert!(text.contains(&format!("tenant \"tfowned-{id}\" belongs to another owner")), "{text}");
    assert!(text.contains("the Terraform configuration"), "names the owner: {text}");
    assert!(text.contains("on main.tf line"), "points at the file: {text}");
    cli.atrium(&["apply", "-auto-approve"]).expect_code(1, "atrium apply of Terraform's tenant");

    cli.write("main.tf", &tenant("cliowned"));
    cli.atrium(&["apply", "-auto-approve"]).expect_code(0, "atrium apply of its own tenant");
    terraform.assert_plan_empty("after the CLI created its own tenant");

    other_cli.write("atrium.hcl", &atrium_block("partner-b"));
    other_cli.write("main.tf", &tenant("cliowned"));
    let refused = other_cli.atrium(&["apply", "-auto-approve"]).expect_code(1, "another CLI owner's apply");
    assert!(refused.flat_output().contains("the atrium CLI owner \"partner-a\""), "{}", refused.output());
    let refused = other_cli
        .atrium(&["import", "atrium_tenant.cliowned", &format!("cliowned-{id}")])
        .expect_code(1, "another CLI owner's import");
    assert!(refused.flat_output().contains("never takes over"), "{}", refused.output());

    // Another owner's destroy and Terraform's destroy leave the CLI's tenant alone, and back.
    other_cli.write("main.tf", "");
    other_cli.atrium(&["destroy", "-auto-approve"]).expect_code(0, "another CLI owner's destroy");
    terraform.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    let registry = cli.registry().await;
    let cli_tenant = TenantId::parse(&format!("cliowned-{id}")).unwrap();
    assert!(registry.get_tenant(&cli_tenant).await.unwrap().is_some(), "the CLI's tenant survives");
    cli.atrium(&["plan"]).expect_code(0, "atrium plan after the others destroyed theirs");
    cli.atrium(&["destroy", "-auto-approve"]).expect_code(0, "atrium destroy");
    assert!(registry.get_tenant(&cli_tenant).await.unwrap().is_none());
}

#[tokio::test]
async fn a_tenant_deleted_by_hand_is_created_again_and_configuration_errors_point_at_the_line() {
    let workspace = Workspace::new("cli-by-hand", RegistryChoice::Sqlite).await;
    let name = format!("byhand-{}", std::process::id());
    workspace.write("atrium.hcl", &atrium_block("partner-a"));
    workspace.write(
        "main.tf",
        &format!(
            "resource \"atrium_tenant\" \"t\" {{\n  name = \"{name}\"\n  display_name = \"T\"\n  tier = \"basic\"\n  welcome_email = false\n  manager = {{ email = \"m@t.example\", name = \"M\" }}\n}}\n"
        ),
    );
    workspace.atrium(&["apply", "-auto-approve"]).expect_code(0, "atrium apply");
    let registry = workspace.registry().await;
    let tenant = TenantId::parse(&name).unwrap();
    assert!(registry.delete_tenant(&tenant).await.unwrap(), "deleted by hand");
    let plan = workspace.atrium(&["plan"]).expect_code(2, "atrium plan after the tenant was deleted by hand");
    assert!(plan.stdout.contains(&format!("+ tenant {name} (the tenant does not exist)")), "{}", plan.stdout);
    workspace.atrium(&["apply", "-auto-approve"]).expect_code(0, "atrium apply recreates it");
    assert!(registry.get_tenant(&tenant).await.unwrap().is_some());
    let claim = registry.get_claim(ObjectKind::Tenant, &name).await.unwrap().expect("claimed");
    assert!(claim.confirmed, "the recreated tenant is this owner's: {claim:?}");
    workspace.atrium(&["plan"]).expect_code(0, "atrium plan after it was recreated");

    // An object no configuration owns is refused until it is imported.
    registry.release_claim(ObjectKind::Tenant, &name).await.unwrap();
    let refused = workspace.atrium(&["plan"]).expect_code(1, "atrium plan of an unowned tenant");
    assert!(refused.flat_output().contains(&format!("atrium import 'atrium_tenant.t' {name}")), "{}", refused.output());
    workspace.atrium(&["import", "atrium_tenant.t", "someone-else"]).expect_code(1, "atrium import of another id");
    workspace.atrium(&["import", "atrium_tenant.nope", &name]).expect_code(1, "atrium import of an undeclared address");
    workspace.atrium(&["import", "atrium_tenant.t", &name]).expect_code(0, "atrium import");
    workspace.atrium(&["plan"]).expect_code(0, "atrium plan after the import");

    workspace.write("main.tf", "resource \"atrium_tenant\" \"t\" {\n  name = \"x\"\n  tier = \"gold\"\n}\n");
    let refused = workspace.atrium(&["validate"]).expect_code(1, "atrium validate of a bad tier");
    assert!(refused.stderr.contains("on main.tf line 3, in resource \"atrium_tenant\" \"t\":"), "{}", refused.stderr);
    assert!(refused.stderr.contains("\"gold\" is not a tier"), "{}", refused.stderr);
    workspace.write("main.tf", "");
    workspace.atrium(&["destroy", "-auto-approve"]).expect_code(0, "atrium destroy");
    assert!(registry.get_tenant(&tenant).await.unwrap().is_none());
}

/// The provider block of the test services as a CLI `atrium` block of `owner`
/// (the `terraform` block beside it is skipped by the CLI).
fn atrium_block_with_test_services(owner: &str, zone: &str) -> String {
    atrium_acceptance::provider_example_with_test_services(zone)
        .replace("provider \"atrium\" {", &format!("atrium {{\n  owner = \"{owner}\""))
}

#[tokio::test]
async fn a_tenant_with_an_app_a_domain_and_a_support_plan_through_the_cli() {
    let workspace = Workspace::new("cli-stack", RegistryChoice::Sqlite).await;
    let id = std::process::id();
    let (tenant, zone) = (format!("stack-{id}"), format!("stack{id}.atrium.test"));
    let _zone = atrium_acceptance::TestZone::create(&zone);
    let host = format!("web.{zone}");
    workspace.write("atrium.hcl", &atrium_block_with_test_services("partner-s", &zone));
    let main = format!(
        r#"
resource "atrium_tenant" "acme" {{
  name          = "{tenant}"
  display_name  = "ACME"
  tier          = "business"
  welcome_email = false
  manager       = {{ email = "m@{tenant}.example", name = "M" }}
}}
resource "atrium_app_instance" "web" {{
  tenant_id = atrium_tenant.acme.id
  name      = "web"
  app       = "hello"
  target    = "lyon-onprem"
  users     = 5
}}
resource "atrium_domain" "web" {{
  app_instance_id = atrium_app_instance.web.id
  hostname        = "{host}"
  tls             = "none"
}}
resource "atrium_support_plan" "acme" {{
  tenant_id = atrium_tenant.acme.id
  level     = "standard_8x5"
}}
"#
    );
    workspace.write("main.tf", &main);
    let plan = workspace.atrium(&["plan"]).expect_code(2, "atrium plan");
    assert!(plan.stdout.contains("Plan: 4 to add, 0 to change, 0 to replace, 0 to destroy."), "{}", plan.stdout);
    workspace.atrium(&["apply", "-auto-approve"]).expect_code(0, "atrium apply");
    workspace.atrium(&["plan"]).expect_code(0, "atrium plan after apply");
    let (status, body) = atrium_acceptance::http_get_host(&host, "/");
    assert_eq!(status, 200, "the app answers on its domain: {body}");

    // Drift: the container stopped by hand shows in the plan and is repaired.
    let container = format!("atrium-{tenant}-web-g1");
    atrium_acceptance::docker(&["stop", &container]);
    let plan = workspace.atrium(&["plan"]).expect_code(2, "atrium plan after docker stop");
    assert!(plan.stdout.contains("status: \"stopped\" -> \"running\""), "{}", plan.stdout);
    workspace.atrium(&["apply", "-auto-approve"]).expect_code(0, "atrium apply repairs the container");
    workspace.atrium(&["plan"]).expect_code(0, "atrium plan after the repair");

    // In place: more users, a better support level.
    workspace.write("main.tf", &main.replace("users     = 5", "users     = 7").replace("standard_8x5", "premium_24x7"));
    let plan = workspace.atrium(&["plan"]).expect_code(2, "atrium plan of an update");
    assert!(plan.stdout.contains("users: 5 -> 7"), "{}", plan.stdout);
    assert!(plan.stdout.contains("level: \"standard_8x5\" -> \"premium_24x7\""), "{}", plan.stdout);
    assert!(plan.stdout.contains("0 to add, 2 to change, 0 to replace, 0 to destroy"), "{}", plan.stdout);
    workspace.atrium(&["apply", "-auto-approve"]).expect_code(0, "atrium apply of an update");
    workspace.atrium(&["plan"]).expect_code(0, "atrium plan after the update");
    let registry = workspace.registry().await;
    let instance = atrium_engine::model::app_instance::AppInstanceId::parse(&format!("{tenant}/web")).unwrap();
    assert_eq!(registry.get_app_instance(&instance).await.unwrap().expect("recorded").spec.users, 7);

    workspace.atrium(&["destroy", "-auto-approve"]).expect_code(0, "atrium destroy");
    let (_, containers) =
        atrium_acceptance::docker_status(&["ps", "-a", "--filter", &format!("name=atrium-{tenant}-"), "-q"]);
    assert!(containers.trim().is_empty(), "no container is left: {containers}");
    assert!(atrium_acceptance::routes_mentioning(&zone).is_empty(), "no route is left");
    let records: Vec<String> =
        _zone.record_sets().iter().filter(|set| set["type"] == "A").map(|set| set["name"].to_string()).collect();
    assert!(records.is_empty(), "no A record is left: {records:?}");
    let tenant_id = TenantId::parse(&tenant).unwrap();
    assert!(registry.get_tenant(&tenant_id).await.unwrap().is_none());
    assert!(registry.claims_of_tenant(&tenant_id).await.unwrap().is_empty(), "no claim is left");
}

#[tokio::test]
async fn a_saved_plan_is_applied_as_planned_and_refused_once_the_registry_moved() {
    let workspace = Workspace::new("cli-saved", RegistryChoice::Sqlite).await;
    let name = format!("saved-{}", std::process::id());
    workspace.write("atrium.hcl", &atrium_block("partner-a"));
    let tenant = |display: &str| {
        format!(
            "variable \"display\" {{\n  type = string\n}}\nresource \"atrium_tenant\" \"t\" {{\n  name = \"{name}\"\n  display_name = var.display\n  tier = \"basic\"\n  welcome_email = false\n  manager = {{ email = \"m@t.example\", name = \"M\" }}\n}}\n{display}"
        )
    };
    workspace.write("main.tf", &tenant(""));
    workspace.atrium(&["plan", "-var", "display=First", "-out=first.plan"]).expect_code(2, "atrium plan -out");
    let registry = workspace.registry().await;
    let tenant_id = TenantId::parse(&name).unwrap();
    assert!(registry.get_tenant(&tenant_id).await.unwrap().is_none(), "planning changes nothing");

    let shown = workspace.atrium(&["show", "-json", "first.plan"]).expect_code(0, "atrium show -json");
    let json: serde_json::Value = serde_json::from_str(&shown.stdout).expect("show -json prints JSON");
    let change = &json["resource_changes"][0];
    assert_eq!(change["address"], "atrium_tenant.t");
    assert_eq!(change["change"]["actions"], serde_json::json!(["create"]));
    assert_eq!(change["change"]["after"]["display_name"], "First");
    let text = workspace.atrium(&["show", "first.plan"]).expect_code(0, "atrium show");
    assert!(text.stdout.contains(&format!("+ tenant {name} (the tenant does not exist)")), "{}", text.stdout);

    // The saved plan carries its variables: applying it needs no -var.
    let apply = workspace.atrium(&["apply", "first.plan"]).expect_code(0, "atrium apply of a saved plan");
    assert!(apply.stdout.contains("1 added"), "{}", apply.stdout);
    assert_eq!(registry.get_tenant(&tenant_id).await.unwrap().expect("created").spec.display_name, "First");

    // A plan made before another apply is stale.
    workspace.atrium(&["plan", "-var", "display=Second", "-out=second.plan"]).expect_code(2, "atrium plan -out");
    workspace.atrium(&["plan", "-var", "display=Third", "-out=third.plan"]).expect_code(2, "atrium plan -out");
    workspace.atrium(&["apply", "third.plan"]).expect_code(0, "atrium apply of the third plan");
    let refused = workspace.atrium(&["apply", "second.plan"]).expect_code(1, "atrium apply of a stale plan");
    assert!(refused.stderr.contains("Saved plan is stale"), "{}", refused.stderr);
    assert_eq!(registry.get_tenant(&tenant_id).await.unwrap().unwrap().spec.display_name, "Third");

    // A change by hand makes a plan stale too; a file that is no plan is refused.
    workspace.atrium(&["plan", "-var", "display=Fourth", "-out=fourth.plan"]).expect_code(2, "atrium plan -out");
    assert!(registry.set_tenant_display_name(&tenant_id, "By hand").await.unwrap());
    workspace.atrium(&["apply", "fourth.plan"]).expect_code(1, "atrium apply after a change by hand");
    workspace.write("not.plan", "hello");
    let refused = workspace.atrium(&["apply", "not.plan"]).expect_code(1, "atrium apply of another file");
    assert!(refused.stderr.contains("not a saved plan"), "{}", refused.stderr);

    let json = workspace.atrium(&["plan", "-json", "-var", "display=Third"]).expect_code(2, "atrium plan -json");
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("plan -json prints JSON");
    assert_eq!(json["resource_changes"][0]["change"]["actions"], serde_json::json!(["update"]));
    assert_eq!(json["resource_changes"][0]["change"]["before"]["display_name"], "By hand");
    workspace.atrium(&["destroy", "-auto-approve", "-var", "display=x"]).expect_code(0, "atrium destroy");
}

/// The `-var` arguments that point `examples/bulk` at the test services.
fn bulk_variables(zone: &str) -> Vec<String> {
    use atrium_engine::test_services::service_variable;
    vec![
        format!("platform_zone={zone}"),
        format!("docker_host={}", service_variable("ATRIUM_TEST_DOCKER_HOST")),
        format!("ingress_admin_url={}", service_variable("ATRIUM_TEST_CADDY_ADMIN_URL")),
        format!("ingress_https_address=127.0.0.1:{}", service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT")),
        format!("dns_api_url={}", service_variable("ATRIUM_TEST_PDNS_URL")),
        format!("acme_directory_url={}", service_variable("ATRIUM_TEST_ACME_DIRECTORY")),
        format!("acme_trusted_roots_file={}", service_variable("ATRIUM_TEST_ACME_CA_FILE")),
    ]
    .into_iter()
    .flat_map(|var| ["-var".to_owned(), var])
    .collect()
}

#[tokio::test]
async fn the_bulk_example_onboards_its_csv_over_https_and_offboards_a_removed_row() {
    let workspace = Workspace::new("cli-bulk", RegistryChoice::Sqlite).await;
    let id = std::process::id();
    let zone = format!("bulk{id}.atrium.test");
    let test_zone = atrium_acceptance::TestZone::create(&zone);
    // The example as it is, but for tenant names of this test's own.
    let own = |text: String| {
        text.replace("acme", &format!("acme{id}"))
            .replace("globex", &format!("globex{id}"))
            .replace("initech", &format!("initech{id}"))
    };
    workspace.write("atrium.hcl", &atrium_acceptance::example("bulk/atrium.hcl"));
    workspace.write("main.tf", &atrium_acceptance::example("bulk/main.tf"));
    workspace.write("customers.csv", &own(atrium_acceptance::example("bulk/customers.csv")));
    let vars = bulk_variables(&zone);
    let with = |command: &[&str]| -> Vec<String> {
        command.iter().map(|s| (*s).to_owned()).chain(vars.iter().cloned()).collect()
    };
    let run = |command: &[&str]| {
        let arguments = with(command);
        workspace.atrium(&arguments.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let plan = run(&["plan", "-out=onboard.plan"]).expect_code(2, "atrium plan of the bulk example");
    assert!(plan.stdout.contains("Plan: 10 to add, 0 to change, 0 to replace, 0 to destroy."), "{}", plan.stdout);
    run(&["apply", "onboard.plan"]).expect_code(0, "atrium apply of the bulk example");
    for customer in ["acme", "globex", "initech"] {
        let host = format!("{customer}{id}.{zone}");
        let (status, body) = atrium_acceptance::https_get(&host, "/");
        assert_eq!(status, 200, "{host} answers over HTTPS: {body}");
        // Onboarding orders no certificate per customer: the zone's one wildcard serves them all.
        assert_eq!(atrium_acceptance::served_certificate_names(&host), [format!("*.{zone}")], "{host}");
    }
    let registry = workspace.registry().await;
    let wildcard = registry.get_platform_certificate(&zone).await.unwrap().expect("the zone's wildcard certificate");
    run(&["plan"]).expect_code(0, "atrium plan after onboarding");
    let state = run(&["state", "list"]).expect_code(0, "atrium state list");
    assert_eq!(state.stdout.lines().count(), 10, "{}", state.stdout);
    assert!(state.stdout.contains(&format!("atrium_app_instance.app[\"globex{id}/wiki\"]")), "{}", state.stdout);

    // A customer leaves: its row goes, and so do its tenant, app and domain.
    let csv = own(atrium_acceptance::example("bulk/customers.csv"));
    workspace.write(
        "customers.csv",
        &csv.lines().filter(|line| !line.starts_with("initech")).collect::<Vec<_>>().join("\n"),
    );
    let plan = run(&["plan"]).expect_code(2, "atrium plan after a row was removed");
    assert!(plan.stdout.contains("Plan: 0 to add, 0 to change, 0 to replace, 3 to destroy."), "{}", plan.stdout);
    run(&["apply", "-auto-approve"]).expect_code(0, "atrium apply of the removal");
    assert!(registry.get_tenant(&TenantId::parse(&format!("initech{id}")).unwrap()).await.unwrap().is_none());

    // The certificate outlives the customers: it belongs to the zone, and the next onboarding reuses it.
    assert_eq!(registry.get_platform_certificate(&zone).await.unwrap(), Some(wildcard));
    run(&["destroy", "-auto-approve"]).expect_code(0, "atrium destroy of the bulk example");
    for customer in ["acme", "globex", "initech"] {
        let filter = format!("name=atrium-{customer}{id}-");
        let (_, containers) = atrium_acceptance::docker_status(&["ps", "-a", "--filter", &filter, "-q"]);
        assert!(containers.trim().is_empty(), "no container of {customer} is left: {containers}");
    }
    assert!(atrium_acceptance::routes_mentioning(&zone).is_empty(), "no route is left");
    assert!(test_zone.record_sets().iter().all(|set| set["type"] != "A"), "no A record is left");
    let own_tenants = [format!("acme{id}"), format!("globex{id}"), format!("initech{id}")];
    let claims = registry.list_claims().await.unwrap();
    assert!(
        claims.iter().all(|claim| !own_tenants.contains(&claim.tenant.to_string())),
        "no claim is left: {claims:?}"
    );
}

/// Starts `atrium apply` of the workspace, waits for the first completed
/// object whose line contains `after`, interrupts it (SIGINT), and with
/// `twice` interrupts it again as soon as it says it is stopping; answers
/// how it ended.
fn interrupted_apply(workspace: &Workspace, after: &str, twice: bool) -> atrium_acceptance::Run {
    use std::io::BufRead as _;
    let mut child = workspace
        .atrium_command(&["apply", "-auto-approve", "-parallelism=1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start atrium apply");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (heard, interrupt_heard) = std::sync::mpsc::channel();
    let errors = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.expect("read atrium's errors");
            if line.contains("Interrupt received") {
                let _ = heard.send(());
            }
            lines.push(line);
        }
        lines.join("\n")
    });
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("read atrium's output");
        let done = line.contains(after) && line.contains("Creation complete");
        seen.push(line);
        if done {
            break;
        }
    }
    let pid = i32::try_from(child.id()).expect("pid");
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "SIGINT to atrium");
    if twice {
        interrupt_heard.recv_timeout(std::time::Duration::from_secs(20)).expect("atrium heard the first interrupt");
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "second SIGINT to atrium");
    }
    seen.extend(lines.map(|line| line.expect("read atrium's output")));
    let status = child.wait().expect("wait for atrium");
    atrium_acceptance::Run {
        code: status.code().unwrap_or(-1),
        stdout: seen.join("\n"),
        stderr: errors.join().expect("the stderr reader"),
    }
}

#[tokio::test]
async fn ctrl_c_mid_apply_of_200_tenants_finishes_what_is_in_flight_and_the_next_apply_converges() {
    let workspace = Workspace::new("cli-interrupt", RegistryChoice::Sqlite).await;
    let prefix = format!("int{}", std::process::id());
    workspace.write("atrium.hcl", &atrium_block("partner-i"));
    workspace.write(
        "main.tf",
        &format!(
            "resource \"atrium_tenant\" \"t\" {{\n  count = 200\n  name = \"{prefix}-${{count.index}}\"\n  display_name = \"T ${{count.index}}\"\n  tier = \"basic\"\n  welcome_email = false\n  manager = {{ email = \"m${{count.index}}@t.example\", name = \"M\" }}\n}}\n"
        ),
    );
    let registry = workspace.registry().await;
    let count = || async {
        let tenants = registry.list_tenants().await.expect("list tenants");
        tenants.iter().filter(|t| t.spec.name.as_str().starts_with(&prefix)).count()
    };

    // Once: the changes in flight finish, nothing new starts, and it says what to do.
    let interrupted = interrupted_apply(&workspace, "atrium_tenant", false);
    assert_eq!(interrupted.code, 1, "an interrupted apply fails:\n{}\n{}", interrupted.stdout, interrupted.stderr);
    assert!(interrupted.stderr.contains("Interrupted"), "{}", interrupted.stderr);
    assert!(interrupted.stderr.contains("run atrium apply again"), "{}", interrupted.stderr);
    let applied = count().await;
    assert!(applied > 0 && applied < 200, "the run stopped after what was in flight ({applied} tenants)");

    let finished = workspace.atrium(&["apply", "-auto-approve"]).expect_code(0, "atrium apply after the interrupt");
    assert!(finished.stdout.contains(&format!("{} added", 200 - applied)), "{}", finished.stdout);
    assert_eq!(count().await, 200);
    workspace.atrium(&["plan"]).expect_code(0, "atrium plan after convergence");
    let claims = registry.list_claims().await.unwrap();
    assert!(
        claims.iter().filter(|c| c.key.starts_with(&prefix)).all(|c| c.confirmed),
        "every tenant is the owner's, confirmed"
    );
    workspace.atrium(&["destroy", "-auto-approve"]).expect_code(0, "atrium destroy");
    assert_eq!(count().await, 0);
}

#[tokio::test]
async fn a_second_ctrl_c_stops_a_deployment_at_once_and_the_next_apply_converges() {
    let workspace = Workspace::new("cli-interrupt-twice", RegistryChoice::Sqlite).await;
    let id = std::process::id();
    let (tenant, zone) = (format!("twice-{id}"), format!("twice{id}.atrium.test"));
    workspace.write("atrium.hcl", &atrium_block_with_test_services("partner-t", &zone));
    workspace.write(
        "main.tf",
        &format!(
            "resource \"atrium_tenant\" \"t\" {{\n  name = \"{tenant}\"\n  display_name = \"T\"\n  tier = \"business\"\n  welcome_email = false\n  manager = {{ email = \"m@t.example\", name = \"M\" }}\n}}\nresource \"atrium_app_instance\" \"app\" {{\n  for_each = toset([\"one\", \"two\", \"three\"])\n  tenant_id = atrium_tenant.t.id\n  name = each.key\n  app = \"hello\"\n  target = \"lyon-onprem\"\n  users = 1\n  delete_data_on_destroy = true\n}}\n"
        ),
    );
    // The second instance's deployment is in flight when both interrupts
    // arrive. On a loaded machine it can end (in about two seconds) before
    // the second one does, and the run ends as after one interrupt: then
    // the instances go and it is tried again, up to three times.
    let mut attempts = Vec::new();
    let stopped = loop {
        let run = interrupted_apply(&workspace, "atrium_app_instance", true);
        if run.code == 130 || attempts.len() == 2 {
            break run;
        }
        assert_eq!(run.code, 1, "an interrupted apply fails:\n{}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("run atrium apply again"), "{}", run.stderr);
        workspace.atrium(&["destroy", "-auto-approve"]).expect_code(0, "atrium destroy before another attempt");
        attempts.push(run.stdout);
    };
    assert_eq!(
        stopped.code,
        130,
        "two interrupts stop at once:\n{}\n{}\nearlier attempts:\n{}",
        stopped.stdout,
        stopped.stderr,
        attempts.join("\n")
    );
    assert!(stopped.stderr.contains("Stopping now"), "{}", stopped.stderr);

    workspace.atrium(&["apply", "-auto-approve"]).expect_code(0, "atrium apply after the interrupts");
    workspace.atrium(&["plan"]).expect_code(0, "atrium plan after convergence");
    for name in ["one", "two", "three"] {
        let running = atrium_acceptance::docker(&["ps", "--filter", &format!("name=atrium-{tenant}-{name}-g"), "-q"]);
        assert_eq!(running.trim().lines().count(), 1, "one container of {name} runs: {running}");
    }
    workspace.atrium(&["destroy", "-auto-approve"]).expect_code(0, "atrium destroy");
    let (_, left) =
        atrium_acceptance::docker_status(&["ps", "-a", "--filter", &format!("name=atrium-{tenant}-"), "-q"]);
    assert!(left.trim().is_empty(), "no container is left: {left}");
}

/// Each resource change of a plan: address → (actions, known planned values).
type Changes = std::collections::BTreeMap<String, (serde_json::Value, serde_json::Map<String, serde_json::Value>)>;

/// The changes of a Terraform-shaped plan JSON (`terraform show -json` or `atrium plan -json`),
/// with the planned values that are known (not null, not unknown; `timeouts` and `created_at` left out).
fn changes_of(plan: &serde_json::Value) -> Changes {
    let mut changes = Changes::new();
    for change in plan["resource_changes"].as_array().expect("resource_changes") {
        let unknown = &change["change"]["after_unknown"];
        let known: serde_json::Map<String, serde_json::Value> = change["change"]["after"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(attribute, value)| {
                // `created_at` is each registry's own clock at its create: the two applies may straddle a second.
                !value.is_null()
                    && !["timeouts", "created_at"].contains(&attribute.as_str())
                    && unknown.get(attribute.as_str()) != Some(&true.into())
            })
            .map(|(attribute, value)| (attribute.clone(), value.clone()))
            .collect();
        let address = change["address"].as_str().expect("address").to_owned();
        changes.insert(address, (change["change"]["actions"].clone(), known));
    }
    changes
}

fn terraform_changes(workspace: &Workspace, zone: &str) -> Changes {
    let var = format!("zone={zone}");
    workspace.terraform(&["plan", "-input=false", "-out=tf.plan", "-var", &var]).expect_code(0, "terraform plan -out");
    let shown = workspace.terraform(&["show", "-json", "tf.plan"]).expect_code(0, "terraform show -json");
    changes_of(&serde_json::from_str(&shown.stdout).expect("terraform show -json prints JSON"))
}

fn cli_changes(workspace: &Workspace, zone: &str) -> Changes {
    let var = format!("zone={zone}");
    let plan = workspace.atrium(&["plan", "-json", "-var", &var]);
    assert!(plan.code == 0 || plan.code == 2, "atrium plan -json failed:\n{}", plan.output());
    changes_of(&serde_json::from_str(&plan.stdout).expect("atrium plan -json prints JSON"))
}

/// Terraform and the CLI plan the same actions, and every value the CLI
/// plans is Terraform's (Terraform may know more: it shows nulls and
/// defaults the CLI leaves out).
fn assert_same_changes(terraform: &Changes, cli: &Changes, when: &str) {
    let addresses = |changes: &Changes| changes.keys().cloned().collect::<Vec<_>>();
    assert_eq!(addresses(terraform), addresses(cli), "{when}: the same objects");
    for (address, (actions, cli_values)) in cli {
        let (terraform_actions, terraform_values) = &terraform[address];
        assert_eq!(terraform_actions, actions, "{when}: the actions of {address}");
        for (attribute, value) in cli_values {
            assert_eq!(
                terraform_values.get(attribute),
                Some(value),
                "{when}: {address}.{attribute} (Terraform plans {terraform_values:?})"
            );
        }
        for (attribute, value) in terraform_values {
            if let Some(planned) = cli_values.get(attribute) {
                assert_eq!(planned, value, "{when}: {address}.{attribute}");
            }
        }
    }
}

#[tokio::test]
async fn one_configuration_plans_the_same_changes_through_terraform_and_the_cli() {
    let terraform = Workspace::new("both-terraform", RegistryChoice::Sqlite).await;
    let cli = Workspace::new("both-cli", RegistryChoice::Sqlite).await;
    let id = std::process::id();
    let zone = format!("both{id}.atrium.test");
    let fixture = atrium_acceptance::repository_root().join("acceptance/fixtures/both/main.tf");
    let main = std::fs::read_to_string(&fixture).expect("the shared fixture");
    terraform.write("main.tf", &main);
    terraform.write("provider.tf", &atrium_acceptance::provider_example_with_test_services(&zone));
    cli.write("main.tf", &main);
    cli.write("atrium.hcl", &atrium_block_with_test_services("partner-both", &zone));
    let csv = |rows: &[&str]| format!("name,display_name,tier,support,web\n{}\n", rows.join("\n"));
    let (acme, beta, gamma) = (format!("acme{id}"), format!("beta{id}"), format!("gamma{id}"));
    let write_both = |text: &str| {
        terraform.write("tenants.csv", text);
        cli.write("tenants.csv", text);
    };

    // Creates of every kind.
    write_both(&csv(&[&format!("{acme},ACME,business,premium_24x7,yes"), &format!("{beta},Beta,basic,,no")]));
    let (by_terraform, by_cli) = (terraform_changes(&terraform, &zone), cli_changes(&cli, &zone));
    assert_eq!(by_cli.len(), 5, "{by_cli:?}");
    assert_same_changes(&by_terraform, &by_cli, "creating");

    // Applied without apps (each workspace has its own registry; nothing on the backends), then changed.
    write_both(&csv(&[&format!("{acme},ACME,business,premium_24x7,no"), &format!("{beta},Beta,basic,,no")]));
    terraform.apply_with(&["-var", &format!("zone={zone}")]);
    cli.atrium(&["apply", "-auto-approve", "-var", &format!("zone={zone}")]).expect_code(0, "atrium apply");
    write_both(&csv(&[
        &format!("{acme},ACME GmbH,enterprise,standard_8x5,no"),
        &format!("{gamma},Gamma,basic,standard_8x5,no"),
    ]));
    let (by_terraform, by_cli) = (terraform_changes(&terraform, &zone), cli_changes(&cli, &zone));
    assert_same_changes(&by_terraform, &by_cli, "updating");
    let actions = |address: &str| by_cli[address].0.clone();
    assert_eq!(actions(&format!("atrium_tenant.customer[\"{acme}\"]")), serde_json::json!(["update"]));
    assert_eq!(actions(&format!("atrium_tenant.customer[\"{beta}\"]")), serde_json::json!(["delete"]));
    assert_eq!(actions(&format!("atrium_support_plan.customer[\"{gamma}\"]")), serde_json::json!(["create"]));

    terraform
        .terraform(&["destroy", "-auto-approve", "-input=false", "-var", &format!("zone={zone}")])
        .expect_code(0, "terraform destroy");
    cli.atrium(&["destroy", "-auto-approve", "-var", &format!("zone={zone}")]).expect_code(0, "atrium destroy");
}
