//! `atrium_tenant` through the real terraform CLI, on SQLite and PostgreSQL.

use atrium_acceptance::{RegistryChoice, Workspace, example, import_arguments, provider_example};
use atrium_engine::model::TenantId;
use atrium_engine::model::tenant::Tier;

fn tenant_id(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

async fn full_lifecycle(test_name: &str, registry_choice: RegistryChoice) {
    let workspace = Workspace::new(test_name, registry_choice).await;
    let resource = example("resources/atrium_tenant/resource.tf");
    workspace.write("provider.tf", &provider_example());
    workspace.write("main.tf", &resource);

    // Create, after `terraform init` installed the provider from the local
    // mirror and pinned its version, as with a published provider.
    workspace.apply();
    let lock = workspace.read(".terraform.lock.hcl");
    assert!(
        lock.contains("provider \"registry.terraform.io/atrium-hosting/atrium\"")
            && lock.contains(&format!("version     = \"{}\"", env!("CARGO_PKG_VERSION")))
            && lock.contains("constraints = \"~> 0.1\"")
            && lock.contains("h1:"),
        "{lock}"
    );
    let registry = workspace.registry().await;
    let record = registry.get_tenant(&tenant_id("acme")).await.unwrap().expect("tenant created");
    assert_eq!(record.spec.display_name, "ACME GmbH");
    assert_eq!(record.spec.user_quota, 50, "business tier default quota");
    assert_eq!(record.owner, format!("terraform:{}", workspace.path().display()), "the configuration owns it");
    let state = workspace.state_json();
    let values = &state["values"]["root_module"]["resources"][0]["values"];
    assert_eq!(values["id"], "acme");
    assert_eq!(values["status"], "active");
    assert_eq!(values["created_at"].as_str().unwrap(), record.created_at);
    workspace.assert_plan_empty("after create");

    // Update in place.
    workspace.write(
        "main.tf",
        &resource.replace("\"ACME GmbH\"", "\"ACME Holding GmbH\"").replace("\"business\"", "\"enterprise\""),
    );
    let plan = workspace.plan(true).expect_code(2, "plan of an in-place update");
    assert!(plan.stdout.contains("will be updated in-place"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    let applied = workspace.apply();
    assert!(applied.stdout.contains("0 added, 1 changed, 0 destroyed"), "{}", applied.stdout);
    let record = registry.get_tenant(&tenant_id("acme")).await.unwrap().unwrap();
    assert_eq!(
        (record.spec.display_name.as_str(), record.spec.tier, record.spec.user_quota),
        ("ACME Holding GmbH", Tier::Enterprise, 250)
    );
    workspace.assert_plan_empty("after update");

    // Forced replacement: a new name.
    let renamed = resource.replace("name         = \"acme\"", "name         = \"acme-holding\"");
    workspace.write("main.tf", &renamed);
    let plan = workspace.plan(true).expect_code(2, "plan of a replacement");
    assert!(plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    assert!(plan.stdout.contains("# forces replacement"), "{}", plan.stdout);
    let applied = workspace.apply();
    assert!(applied.stdout.contains("1 added, 0 changed, 1 destroyed"), "{}", applied.stdout);
    assert!(registry.get_tenant(&tenant_id("acme")).await.unwrap().is_none());
    assert!(registry.get_tenant(&tenant_id("acme-holding")).await.unwrap().is_some());
    workspace.assert_plan_empty("after replacement");

    // Back to the example, then import with the command from import.sh.
    workspace.write("main.tf", &resource);
    workspace.apply();
    workspace.terraform(&["state", "rm", "atrium_tenant.acme"]).expect_code(0, "state rm");
    let arguments = import_arguments(&example("resources/atrium_tenant/import.sh"));
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    workspace.terraform(&arguments).expect_code(0, "terraform import");
    workspace.assert_plan_empty("after terraform import");

    // Import with an import block and generated configuration.
    workspace.terraform(&["state", "rm", "atrium_tenant.acme"]).expect_code(0, "state rm");
    workspace.write("main.tf", "import {\n  to = atrium_tenant.acme\n  id = \"acme\"\n}\n");
    workspace
        .terraform(&["plan", "-input=false", "-generate-config-out=generated.tf"])
        .expect_code(0, "plan -generate-config-out");
    let generated = workspace.read("generated.tf");
    assert!(generated.contains("resource \"atrium_tenant\" \"acme\""), "{generated}");
    assert!(generated.contains("display_name"), "{generated}");
    let applied = workspace.apply();
    assert!(applied.stdout.contains("1 imported"), "{}", applied.stdout);
    workspace.assert_plan_empty("after import block with generated config");
    workspace.remove("generated.tf");
    workspace.write("main.tf", &resource);
    workspace.assert_plan_empty("back on the example config");

    // Drift: a value changed in the registry out of band.
    assert!(registry.set_tenant_display_name(&tenant_id("acme"), "Changed by hand").await.unwrap());
    let plan = workspace.plan(true).expect_code(2, "plan after out-of-band change");
    assert!(plan.stdout.contains("Changed by hand"), "{}", plan.stdout);
    workspace.apply();
    assert_eq!(registry.get_tenant(&tenant_id("acme")).await.unwrap().unwrap().spec.display_name, "ACME GmbH");
    workspace.assert_plan_empty("after drift repair");

    // Drift: the tenant deleted out of band is recreated.
    assert!(registry.delete_tenant(&tenant_id("acme")).await.unwrap());
    let plan = workspace.plan(true).expect_code(2, "plan after out-of-band delete");
    assert!(plan.stdout.contains("will be created"), "{}", plan.stdout);
    workspace.apply();
    assert!(registry.get_tenant(&tenant_id("acme")).await.unwrap().is_some());

    // Destroy leaves nothing behind.
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert_eq!(registry.count_tenants().await.unwrap(), 0, "the registry holds nothing after destroy");
    assert!(workspace.state_list().is_empty());
}

#[tokio::test]
async fn tenant_lifecycle_on_sqlite() {
    full_lifecycle("tenant_sqlite", RegistryChoice::Sqlite).await;
}

#[tokio::test]
async fn tenant_lifecycle_on_postgres() {
    full_lifecycle("tenant_postgres", RegistryChoice::Postgres).await;
}

#[tokio::test]
async fn display_name_unknown_at_plan_applies_cleanly() {
    let workspace = Workspace::new("tenant_unknown", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example());
    workspace.write(
        "main.tf",
        r#"
resource "terraform_data" "customer" {
  input = "Initech from CRM"
}

resource "atrium_tenant" "initech" {
  name         = "initech"
  display_name = terraform_data.customer.output
  tier         = "basic"
  manager = {
    email = "bill@initech.example"
    name  = "Bill Lumbergh"
  }
}
"#,
    );
    let plan = workspace.plan(true).expect_code(2, "plan with an unknown display_name");
    assert!(plan.stdout.contains("display_name  = (known after apply)"), "{}", plan.stdout);
    workspace.apply();
    let record = workspace.registry().await.get_tenant(&tenant_id("initech")).await.unwrap().unwrap();
    assert_eq!(record.spec.display_name, "Initech from CRM");
    workspace.assert_plan_empty("after applying an unknown display_name");
}

/// Bad inputs fail at plan, name the attribute, say what is valid, and create nothing.
#[tokio::test]
async fn bad_inputs_fail_at_plan_naming_the_attribute() {
    let workspace = Workspace::new("tenant_bad_input", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example());
    let resource = example("resources/atrium_tenant/resource.tf");
    let cases = [
        ("name         = \"acme\"", "name         = \"Acme_GmbH\"", "Invalid tenant name", "lowercase letters"),
        (
            "tier         = \"business\"",
            "tier         = \"gold\"",
            "Unknown tier",
            "\"basic\", \"business\" or \"enterprise\"",
        ),
        (
            "email = \"it-lead@acme.example\"",
            "email = \"it-lead.acme.example\"",
            "Invalid email address",
            "manager.email:",
        ),
        ("expires_on   = \"2027-03-31\"", "expires_on   = \"31.03.2027\"", "Invalid date", "YYYY-MM-DD"),
        ("expires_on   = \"2027-03-31\"", "expires_on   = \"0000-01-01\"", "Invalid date", "2000-01-01"),
        // What cannot be a login (busybox httpd splits user and password at ':') is refused.
        (
            "email = \"it-lead@acme.example\"",
            "email = \"it:lead@acme.example\"",
            "Invalid email address",
            "no :, spaces",
        ),
    ];
    for (good, bad, summary, hint) in cases {
        assert!(resource.contains(good), "the example has {good}");
        workspace.write("main.tf", &resource.replace(good, bad));
        let run = workspace.plan(true).expect_code(1, &format!("plan with {bad}"));
        let output = run.flat_output();
        assert!(output.contains(summary), "{summary} missing:\n{output}");
        assert!(output.contains(hint), "{hint} missing:\n{output}");
        // Terraform quotes the offending line when the diagnostic names the attribute.
        // Terraform quotes the attribute's line; for a nested attribute, the
        // enclosing `manager = {` line.
        let quoted = if bad.starts_with("email") { "manager = {".to_owned() } else { bad.to_owned() };
        let flat_bad = quoted.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(output.contains("with atrium_tenant.acme"), "no resource named:\n{output}");
        assert!(output.contains(&flat_bad), "the diagnostic does not point at {bad}:\n{output}");
    }
    assert_eq!(workspace.registry().await.count_tenants().await.unwrap(), 0);
    assert!(workspace.state_list().is_empty());
}

#[tokio::test]
async fn bad_provider_configuration_names_the_attribute() {
    let workspace = Workspace::new("provider_bad_config", RegistryChoice::Sqlite).await;
    workspace.write(
        "provider.tf",
        &provider_example().replace("unix:///var/run/docker.sock", "docker.sock").replace("\"onprem\"", "\"basement\""),
    );
    workspace.write("main.tf", &example("resources/atrium_tenant/resource.tf"));
    let run = workspace.plan(true).expect_code(1, "plan with a bad provider configuration");
    let output = run.output();
    assert!(output.contains("basement"), "{output}");
    workspace.write("provider.tf", &provider_example().replace("unix:///var/run/docker.sock", "docker.sock"));
    let run = workspace.plan(true).expect_code(1, "plan with a bad docker_host");
    let output = run.flat_output();
    assert!(output.contains("Invalid Docker endpoint"), "{output}");
    assert!(output.contains("unix:///PATH/docker.sock"), "{output}");
}

#[tokio::test]
async fn importing_a_missing_or_misspelled_tenant_says_what_to_do() {
    let workspace = Workspace::new("tenant_import_missing", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example());
    workspace.write("main.tf", &example("resources/atrium_tenant/resource.tf"));
    let run =
        workspace.terraform(&["import", "atrium_tenant.acme", "acme"]).expect_code(1, "import of a missing tenant");
    let output = run.flat_output();
    assert!(output.contains("Cannot import a tenant that does not exist"), "{output}");
    assert!(output.contains("no tenant named \"acme\""), "{output}");
    let run =
        workspace.terraform(&["import", "atrium_tenant.acme", "ACME GmbH"]).expect_code(1, "import by display name");
    let output = run.flat_output();
    assert!(output.contains("Invalid import id"), "{output}");
    assert!(output.contains("terraform import atrium_tenant.acme acme"), "{output}");
    assert!(workspace.state_list().is_empty());
}
