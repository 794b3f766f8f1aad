//! `atrium_app_instance` through the real terraform CLI on a real Docker
//! engine, with the locally built `hello` app.

use atrium_acceptance::{
    RegistryChoice, Workspace, docker, docker_status, example, http_get, import_arguments,
    provider_example_with_test_docker,
};

/// The example with its tenant renamed, so parallel tests own their containers.
fn example_for(tenant: &str) -> String {
    example("resources/atrium_app_instance/resource.tf")
        .replace("name         = \"acme\"", &format!("name         = \"{tenant}\""))
}

fn tenant_containers(tenant: &str) -> Vec<String> {
    let names = docker(&["ps", "-a", "--filter", &format!("label=atrium.tenant={tenant}"), "--format", "{{.Names}}"]);
    let mut names: Vec<String> = names.lines().map(str::to_owned).collect();
    names.sort();
    names
}

async fn full_lifecycle(test_name: &str, registry_choice: RegistryChoice, tenant: &str) {
    let workspace = Workspace::new(test_name, registry_choice).await;
    workspace.write("provider.tf", &provider_example_with_test_docker());
    let resource = example_for(tenant);
    workspace.write("main.tf", &resource);
    let address = "atrium_app_instance.web";

    // Create: the app answers on its internal URL.
    workspace.apply();
    let url = workspace.state_attribute(address, "internal_url").as_str().unwrap().to_owned();
    assert!(http_get(&url).contains("hello 1.1"), "{url}");
    assert_eq!(tenant_containers(tenant), [format!("atrium-{tenant}-web-g1")]);
    assert_eq!(workspace.state_attribute(address, "status"), "running");
    workspace.assert_plan_empty("after create");

    // In place: more users and another environment variable (a new generation, same instance).
    let updated = resource.replace("users          = 20", "users          = 25").replace("\"Moin\"", "\"Servus\"");
    workspace.write("main.tf", &updated);
    let plan = workspace.plan(true).expect_code(2, "plan of an in-place update");
    assert!(plan.stdout.contains("will be updated in-place"), "{}", plan.stdout);
    workspace.apply();
    let environment = docker(&["inspect", "--format", "{{json .Config.Env}}", &format!("atrium-{tenant}-web-g2")]);
    assert!(environment.contains("GREETING=Servus") && environment.contains("HELLO_MAX_USERS=25"), "{environment}");
    assert_eq!(tenant_containers(tenant), [format!("atrium-{tenant}-web-g2")]);
    workspace.assert_plan_empty("after update");

    // Upgrade by pinning a version, then a failed upgrade that rolls back.
    let pinned = updated.replace("users          = 25", "users          = 25\n  version        = \"1.0\"");
    workspace.write("main.tf", &pinned);
    workspace.apply();
    assert_eq!(workspace.state_attribute(address, "previous_version"), "1.1");
    let url = workspace.state_attribute(address, "internal_url").as_str().unwrap().to_owned();
    assert!(http_get(&url).contains("hello 1.0"));
    // A short update deadline: version 2.0 never turns healthy.
    let broken =
        pinned.replace("version        = \"1.0\"", "version        = \"2.0\"\n  timeouts       = { update = \"20s\" }");
    workspace.write("main.tf", &broken);
    let failed =
        workspace.terraform(&["apply", "-auto-approve", "-input=false"]).expect_code(1, "apply of a broken version");
    let output = failed.flat_output();
    assert!(output.contains("Upgrade rolled back"), "{output}");
    assert!(output.contains("1.0 keeps serving"), "{output}");
    assert!(output.contains("404"), "the health check's output is shown: {output}");
    assert_eq!(workspace.state_attribute(address, "version_deployed"), "1.0", "state still says the old version");
    assert!(http_get(&url).contains("hello 1.0"), "the old version keeps serving");
    assert_eq!(tenant_containers(tenant).len(), 1, "the failed container was removed");
    workspace.write("main.tf", &pinned);
    workspace.assert_plan_empty("after the rollback, on the working version");

    // Forced replacement: another instance name.
    workspace.write("main.tf", &pinned.replace("name           = \"web\"", "name           = \"www\""));
    let plan = workspace.plan(true).expect_code(2, "plan of a replacement");
    assert!(plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    workspace.apply();
    assert_eq!(tenant_containers(tenant), [format!("atrium-{tenant}-www-g1")]);
    workspace.write("main.tf", &pinned);
    workspace.apply();
    workspace.assert_plan_empty("back on the example's name");

    // Import with the command from import.sh.
    workspace.terraform(&["state", "rm", address]).expect_code(0, "state rm");
    let arguments: Vec<String> = import_arguments(&example("resources/atrium_app_instance/import.sh"))
        .into_iter()
        .map(|a| a.replace("acme/web", &format!("{tenant}/web")))
        .collect();
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    workspace.terraform(&arguments).expect_code(0, "terraform import");
    workspace.assert_plan_empty("after terraform import");

    // Import with an import block and generated configuration.
    workspace.terraform(&["state", "rm", address]).expect_code(0, "state rm");
    let tenant_only = pinned[..pinned.find("resource \"atrium_app_instance\"").unwrap()].to_owned();
    workspace.write("main.tf", &format!("{tenant_only}\nimport {{\n  to = {address}\n  id = \"{tenant}/web\"\n}}\n"));
    workspace
        .terraform(&["plan", "-input=false", "-generate-config-out=generated.tf"])
        .expect_code(0, "plan -generate-config-out");
    let applied = workspace.apply();
    assert!(applied.stdout.contains("1 imported"), "{}", applied.stdout);
    workspace.assert_plan_empty("after import block with generated config");
    workspace.remove("generated.tf");
    workspace.write("main.tf", &pinned);
    // Only the output (left out with the resource) comes back.
    let applied = workspace.apply();
    assert!(applied.stdout.contains("0 added, 0 changed, 0 destroyed"), "{}", applied.stdout);
    workspace.assert_plan_empty("back on the example config");

    // Drift: a stopped container, then a removed one, each shows in plan and is repaired.
    let container = tenant_containers(tenant).pop().unwrap();
    docker(&["stop", &container]);
    let plan = workspace.plan(true).expect_code(2, "plan after docker stop");
    assert!(plan.stdout.contains("\"stopped\" -> \"running\""), "{}", plan.stdout);
    workspace.apply();
    workspace.assert_plan_empty("after repairing a stopped container");
    let container = tenant_containers(tenant).pop().unwrap();
    docker(&["update", "--memory", "96m", "--memory-swap", "96m", &container]);
    let plan = workspace.plan(true).expect_code(2, "plan after docker update");
    assert!(plan.stdout.contains("\"drifted\" -> \"running\""), "{}", plan.stdout);
    workspace.apply();
    let container = tenant_containers(tenant).pop().unwrap();
    docker(&["rm", "-f", &container]);
    let plan = workspace.plan(true).expect_code(2, "plan after docker rm");
    assert!(plan.stdout.contains("\"missing\" -> \"running\""), "{}", plan.stdout);
    workspace.apply();
    workspace.assert_plan_empty("after repairing drift");

    // Drift: the tenant's network taken away (the container disconnected, the
    // network deleted) leaves the app unreachable: plan shows it, apply repairs it.
    let container = tenant_containers(tenant).pop().unwrap();
    let network = format!("atrium-{tenant}");
    docker(&["network", "disconnect", "-f", &network, &container]);
    docker(&["network", "rm", &network]);
    let plan = workspace.plan(true).expect_code(2, "plan after the network was deleted");
    assert!(plan.stdout.contains("\"drifted\" -> \"running\""), "{}", plan.stdout);
    workspace.apply();
    let container = tenant_containers(tenant).pop().unwrap();
    let attached = docker(&["inspect", "--format", "{{json .NetworkSettings.Networks}}", &container]);
    assert!(attached.contains(&format!("\"{network}\"")), "attached to {network} again: {attached}");
    let url = workspace.state_attribute(address, "internal_url").as_str().unwrap().to_owned();
    assert!(http_get(&url).contains("hello 1.0"), "the app answers again at {url}");
    workspace.assert_plan_empty("after repairing the network");

    // A saved plan is what gets applied: a container stopped between `plan
    // -out` and the apply of a change that needs no new deployment
    // (delete_data_on_destroy) is left alone, the apply gives what was
    // planned, and the next plan shows the stopped container.
    let keep_data =
        pinned.replace("version        = \"1.0\"", "version        = \"1.0\"\n  delete_data_on_destroy = true");
    workspace.write("main.tf", &keep_data);
    workspace
        .terraform(&["plan", "-input=false", "-out=keep.tfplan"])
        .expect_code(0, "plan -out of a record-only change");
    let container = tenant_containers(tenant).pop().unwrap();
    docker(&["stop", &container]);
    let applied = workspace.terraform(&["apply", "-input=false", "keep.tfplan"]);
    let output = applied.flat_output();
    applied.expect_code(0, "apply of the saved plan over a stopped container");
    assert!(output.contains("1 changed"), "{output}");
    assert_eq!(tenant_containers(tenant), [container], "no new deployment");
    assert_eq!(workspace.state_attribute(address, "delete_data_on_destroy"), true);
    let plan = workspace.plan(true).expect_code(2, "plan after applying the saved plan");
    assert!(plan.stdout.contains("\"stopped\" -> \"running\""), "{}", plan.stdout);
    workspace.write("main.tf", &pinned);
    workspace.apply();
    workspace.assert_plan_empty("after the saved plan and the repair");

    // Destroy: no container left, the data volume kept (delete_data_on_destroy = false), registry empty.
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert!(tenant_containers(tenant).is_empty());
    let volume = format!("atrium-{tenant}-web-data");
    docker(&["volume", "inspect", &volume]); // data is kept by default
    let registry = workspace.registry().await;
    assert!(registry.list_app_instances().await.unwrap().is_empty());
    assert_eq!(registry.count_tenants().await.unwrap(), 0);
    docker(&["volume", "rm", &volume]);
    let networks = docker(&["network", "ls", "--filter", &format!("name=atrium-{tenant}"), "--format", "{{.Name}}"]);
    assert!(networks.trim().is_empty(), "the tenant network is gone: {networks}");
}

#[tokio::test]
async fn app_instance_lifecycle_on_sqlite() {
    full_lifecycle("app_sqlite", RegistryChoice::Sqlite, &format!("app-sq-{}", std::process::id())).await;
}

#[tokio::test]
async fn app_instance_lifecycle_on_postgres() {
    full_lifecycle("app_postgres", RegistryChoice::Postgres, &format!("app-pg-{}", std::process::id())).await;
}

#[tokio::test]
async fn bad_app_instance_inputs_fail_at_plan_naming_the_attribute() {
    let workspace = Workspace::new("app_bad_input", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_docker());
    let tenant = format!("app-bad-{}", std::process::id());
    let resource = example_for(&tenant);
    let cases = [
        ("app            = \"hello\"", "app            = \"wordpress\"", "Unknown app", "\"hello\""),
        (
            "target         = \"lyon-onprem\"",
            "target         = \"mars\"",
            "Unknown target",
            "\"cloud-fra1\", \"lyon-onprem\"",
        ),
        (
            "users          = 20",
            "users          = 20\n  version        = \"9.9\"",
            "Unknown version",
            "\"1.0\", \"1.1\", \"2.0\"",
        ),
        (
            "users          = 20",
            "users          = 20\n  customizations = { disable_health_check = true }",
            "The health check cannot be removed",
            "disable_health_check",
        ),
        // Inputs that once passed plan and then hung apply for the whole create timeout.
        (
            "users          = 20",
            "users          = 20\n  customizations = { environment = { GREETING = \"a\\u0000b\" } }",
            "Invalid environment value",
            "NUL character",
        ),
        (
            "users          = 20",
            "users          = 20\n  customizations = { volumes = { everything = \"/\" } }",
            "Invalid mount path",
            "customizations.volumes[\"everything\"]",
        ),
        // The catalog's own variables: the licensed user limit and the tenant cannot be faked.
        (
            "users          = 20",
            "users          = 20\n  customizations = { environment = { HELLO_MAX_USERS = \"100000\" } }",
            "The catalog sets this variable",
            "customizations.environment[\"HELLO_MAX_USERS\"]",
        ),
        (
            "users          = 20",
            "users          = 20\n  customizations = { environment = { HELLO_TENANT = \"someone-else\" } }",
            "The catalog sets this variable",
            "HELLO_TENANT",
        ),
        (
            "users          = 20",
            "users          = 20\n  customizations = { files = { \"/proc/sys/kernel/x\" = \"1\" } }",
            "Invalid file path",
            "/proc",
        ),
    ];
    for (good, bad, summary, hint) in cases {
        assert!(resource.contains(good), "{good}");
        let mut text = resource.replacen(good, bad, 1);
        if bad.contains("customizations") {
            let start = text.find("  customizations = {\n    environment").unwrap();
            let end = text[start..].find("\n  }\n").unwrap() + start + 4;
            text.replace_range(start..end, "");
        }
        workspace.write("main.tf", &text);
        let run = workspace.plan(true).expect_code(1, &format!("plan with {bad}"));
        let output = run.flat_output();
        assert!(output.contains(summary), "{summary} missing:\n{output}");
        assert!(output.contains(hint), "{hint} missing:\n{output}");
    }
    assert!(tenant_containers(&tenant).is_empty(), "nothing was created");
}

/// The HTTP status of `url` fetched with curl, as `user:password` when given.
fn http_status(url: &str, login: Option<&str>) -> String {
    let mut command = std::process::Command::new("curl");
    command.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"]);
    if let Some(login) = login {
        command.args(["-u", login]);
    }
    let output = command.arg(url).output().expect("run curl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn admin_password_is_write_only_and_sets_the_manager_login() {
    let workspace = Workspace::new("app_password", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_docker());
    let tenant = format!("app-pw-{}", std::process::id());
    workspace.write("main.tf", &example_for(&tenant));
    let (first, second) = ("first-Secret-2026", "second-Secret-2026");
    let with_password = |password: &str| format!("manager_password={password}");

    let applied = workspace
        .terraform(&["apply", "-auto-approve", "-input=false", "-var", &with_password(first)])
        .expect_code(0, "apply with a manager password");
    assert!(!applied.output().contains(first), "the password is not printed");
    let url = workspace.state_attribute("atrium_app_instance.web", "internal_url").as_str().unwrap().to_owned();
    let manager = "it-lead@acme.example";
    assert_eq!(http_status(&format!("{url}/manage/"), None), "401");
    assert_eq!(http_status(&format!("{url}/manage/"), Some(&format!("{manager}:{first}"))), "200");
    assert!(http_get(&format!("{url}/hours.html")).contains("8:00 to 18:00"), "the customization's file is served");
    assert!(!workspace.read("terraform.tfstate").contains(first), "the password is not in state");
    assert_eq!(workspace.state_attribute("atrium_app_instance.web", "admin_password"), serde_json::Value::Null);

    // The same password: nothing to do; the saved plan holds no password either.
    workspace
        .terraform(&["plan", "-detailed-exitcode", "-input=false", "-out=same.tfplan", "-var", &with_password(first)])
        .expect_code(0, "plan with the same password");
    let shown = workspace.terraform(&["show", "-json", "same.tfplan"]).expect_code(0, "show the saved plan");
    assert!(!shown.stdout.contains(first), "the password is not in the plan file");

    // A new password is seen against the registry's hash and set in the app.
    let plan = workspace
        .terraform(&["plan", "-detailed-exitcode", "-input=false", "-var", &with_password(second)])
        .expect_code(2, "plan with a new password");
    assert!(plan.stdout.contains("deployed_at") && !plan.output().contains(second), "{}", plan.stdout);
    workspace
        .terraform(&["apply", "-auto-approve", "-input=false", "-var", &with_password(second)])
        .expect_code(0, "apply with a new password");
    let url = workspace.state_attribute("atrium_app_instance.web", "internal_url").as_str().unwrap().to_owned();
    assert_eq!(http_status(&format!("{url}/manage/"), Some(&format!("{manager}:{first}"))), "401");
    assert_eq!(http_status(&format!("{url}/manage/"), Some(&format!("{manager}:{second}"))), "200");
    workspace
        .terraform(&["plan", "-detailed-exitcode", "-input=false", "-var", &with_password(second)])
        .expect_code(0, "plan after setting the new password");

    // Too short: refused at plan, naming the attribute.
    let run = workspace
        .terraform(&["plan", "-input=false", "-var", &with_password("short")])
        .expect_code(1, "plan with a short password");
    assert!(
        run.flat_output().contains("admin_password") && run.flat_output().contains("12 to 128"),
        "{}",
        run.output()
    );

    let volume = format!("atrium-{tenant}-web-data");
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert!(tenant_containers(&tenant).is_empty());
    docker(&["volume", "rm", &volume]);
}

#[tokio::test]
async fn destroy_is_never_blocked_by_checks_of_the_desired_state() {
    let workspace = Workspace::new("app_destroy_checks", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_docker());
    let tenant = format!("app-dchk-{}", std::process::id());
    workspace.write("main.tf", &example_for(&tenant));
    workspace.apply();
    // The tenant's quota lowered below what the instance uses, by hand.
    let registry = workspace.registry().await;
    let tenant_id = atrium_engine::model::TenantId::parse(&tenant).unwrap();
    let mut record = registry.get_tenant(&tenant_id).await.unwrap().unwrap();
    record.spec.user_quota = 2;
    assert!(registry.update_tenant(&record.spec).await.unwrap().is_some());
    // A plan of the configuration refuses it; a destroy goes through.
    let plan = workspace.plan(true).flat_output();
    assert!(plan.contains("quota"), "the plan says what is wrong: {plan}");
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert!(tenant_containers(&tenant).is_empty());
    assert_eq!(registry.count_tenants().await.unwrap(), 0);
    registry.close().await;
    docker(&["volume", "rm", &format!("atrium-{tenant}-web-data")]);
}

/// One apply that makes a tenant already past its expiry and its instance:
/// the instance is deployed and left stopped, with the status the plan said,
/// and resuming the tenant starts the same container, with no new deployment.
#[tokio::test]
async fn an_instance_made_for_an_expired_tenant_is_deployed_stopped_and_resumes_without_a_new_deployment() {
    let tenant = format!("app-ex-{}", std::process::id());
    let workspace = Workspace::new("app_expired", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_docker());
    let example = example_for(&tenant);
    // Without the example's output: a restarted container may publish another port.
    let active = example[..example.find("output \"web_url\"").unwrap()].to_owned();
    let expired =
        active.replace("tier         = \"business\"", "tier         = \"business\"\n  expires_on   = \"2026-01-31\"");
    assert_ne!(expired, active);
    workspace.write("main.tf", &expired);
    workspace.apply();
    let address = "atrium_app_instance.web";
    assert_eq!(workspace.state_attribute(address, "status"), "suspended");
    let container = format!("atrium-{tenant}-web-g1");
    assert_eq!(tenant_containers(&tenant), std::slice::from_ref(&container));
    assert_eq!(docker(&["inspect", "--format", "{{.State.Running}}", &container]).trim(), "false");
    workspace.assert_plan_empty("after making the instance of an expired tenant");

    workspace.write("main.tf", &active);
    workspace.apply();
    assert_eq!(tenant_containers(&tenant), std::slice::from_ref(&container), "no new deployment");
    assert_eq!(docker(&["inspect", "--format", "{{.State.Running}}", &container]).trim(), "true");
    workspace.terraform(&["apply", "-refresh-only", "-auto-approve", "-input=false"]).expect_code(0, "refresh");
    assert_eq!(workspace.state_attribute(address, "status"), "running");
    let url = workspace.state_attribute(address, "internal_url").as_str().unwrap().to_owned();
    assert!(http_get(&url).contains("hello"), "{url}");
    workspace.assert_plan_empty("after resuming");
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert!(tenant_containers(&tenant).is_empty());
    docker(&["volume", "rm", &format!("atrium-{tenant}-web-data")]);
}

/// The `atrium_kept_data` data source, read by the real terraform CLI: an
/// instance's volume in use is not listed; destroyed with its data kept,
/// it is, with its owner; taken over by a new instance of the same name and
/// destroyed with `delete_data_on_destroy = true`, nothing is left. Bad
/// filters fail at plan naming the attribute.
#[tokio::test]
async fn the_kept_data_data_source_lists_what_a_destroyed_instance_left_until_it_is_deleted() {
    let workspace = Workspace::new("app_kept_data", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_docker());
    let tenant = format!("app-kept-{}", std::process::id());
    let resource = example_for(&tenant);
    workspace.write("main.tf", &resource);
    let data_source = |filters: &str| {
        format!(
            "data \"atrium_kept_data\" \"tenant\" {{\n  {filters}\n}}\n\noutput \"kept\" {{\n  value = data.atrium_kept_data.tenant.kept\n}}\n\noutput \"unreachable\" {{\n  value = data.atrium_kept_data.tenant.unreachable_targets\n}}\n"
        )
    };
    workspace.write("kept.tf", &data_source(&format!("tenant_id = \"{tenant}\"")));
    let output = |name: &str| -> serde_json::Value {
        let run = workspace.terraform(&["output", "-json", name]).expect_code(0, "terraform output");
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|error| panic!("{error}: {}", run.stdout))
    };
    let refresh = || workspace.apply_with(&["-refresh-only"]);
    workspace.apply();
    refresh();
    assert_eq!(output("kept"), serde_json::json!([]), "the volume of a live instance is not kept data");
    // The example's cloud target is not running here: named, not an error.
    assert_eq!(output("unreachable"), serde_json::json!(["cloud-fra1"]));

    // Destroyed with its data kept (the default): listed, with its handle and owner.
    workspace
        .terraform(&["destroy", "-auto-approve", "-input=false", "-target=atrium_app_instance.web"])
        .expect_code(0, "terraform destroy -target");
    refresh();
    let volume = format!("atrium-{tenant}-web-data");
    let kept = output("kept");
    let listed = kept.as_array().unwrap_or_else(|| panic!("{kept}"));
    assert_eq!(listed.len(), 1, "{kept}");
    let entry = &listed[0];
    assert_eq!(entry["instance"], format!("{tenant}/web"), "{entry}");
    assert_eq!((&entry["tenant_id"], &entry["name"]), (&serde_json::json!(tenant), &serde_json::json!("web")));
    assert_eq!(entry["target"], "lyon-onprem");
    // Terraform's owner names the configuration (its working directory here).
    let owner = format!("terraform:{}", workspace.path().display());
    assert_eq!(entry["owner"], owner.as_str(), "{entry}");
    assert_eq!(entry["volumes"], serde_json::json!([volume]));
    assert_eq!(entry["backups"], false, "hello keeps no backups");
    assert!(entry["created_at"].as_str().is_some_and(|at| at.starts_with("20")), "{entry}");

    // Filters: another target lists nothing; bad ones fail at plan.
    workspace.write("kept.tf", &data_source(&format!("tenant_id = \"{tenant}\"\n  target = \"cloud-fra1\"")));
    refresh();
    assert_eq!(output("kept"), serde_json::json!([]));
    workspace.write("kept.tf", &data_source("target = \"mars\""));
    let refused = workspace.plan(true).expect_code(1, "plan with an unknown target").flat_output();
    assert!(refused.contains("Unknown target") && refused.contains("\"lyon-onprem\""), "{refused}");
    workspace.write("kept.tf", &data_source("tenant_id = \"Not A Tenant\""));
    let refused = workspace.plan(true).expect_code(1, "plan with a bad tenant_id").flat_output();
    assert!(refused.contains("Invalid tenant_id"), "{refused}");

    // Terraform's kept data is deleted by an instance that takes it over
    // and is destroyed with its data.
    workspace.write("kept.tf", &data_source(&format!("tenant_id = \"{tenant}\"")));
    let deleting = resource.replace("users          = 20", "users          = 20\n  delete_data_on_destroy = true");
    assert_ne!(deleting, resource);
    workspace.write("main.tf", &deleting);
    workspace.apply();
    workspace
        .terraform(&["destroy", "-auto-approve", "-input=false", "-target=atrium_app_instance.web"])
        .expect_code(0, "terraform destroy -target");
    refresh();
    assert_eq!(output("kept"), serde_json::json!([]), "nothing is kept");
    let (exists, _) = docker_status(&["volume", "inspect", &volume]);
    assert!(!exists, "{volume} is deleted");
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert!(tenant_containers(&tenant).is_empty());
}
