//! An app instance's backups through the real `atrium` CLI: `atrium backup`,
//! `atrium snapshots` and `atrium restore` on MediaWiki with its MariaDB
//! sidecar (the engine's tests cover Redmine's PostgreSQL), a restore that
//! names no snapshot or another owner's instance refused before anything
//! changes, a new instance cloned from the data a destroyed one kept
//! (`restore -from`), and `atrium kept` and `atrium purge` (its owner only)
//! seeing and deleting that data, leaving nothing behind; `atrium
//! restore-test`; and the same restores declared in Terraform (`restore`),
//! in place and as a clone.

use atrium_acceptance::{RegistryChoice, Workspace, docker, provider_example_with_test_docker};
use atrium_engine::test_services::{SecondEngineCleanup, docker_on};

fn atrium_block(owner: &str) -> String {
    provider_example_with_test_docker().replace("provider \"atrium\" {", &format!("atrium {{\n  owner = \"{owner}\""))
}

/// Runs SQL in the wiki's MariaDB as the app's user; its output.
fn sql(tenant: &str, statement: &str) -> String {
    sql_in(tenant, "wiki", statement)
}

/// Runs SQL in instance `name`'s MariaDB as the app's user; its output.
fn sql_in(tenant: &str, name: &str, statement: &str) -> String {
    let container = format!("atrium-{tenant}-{name}-mariadb");
    let script = format!("mariadb -N -u mediawiki -p\"$MARIADB_PASSWORD\" mediawiki -e \"{statement}\"");
    docker(&["exec", &container, "sh", "-c", &script])
}

/// Takes a backup of `instance` with `atrium backup`; the snapshot it printed.
fn backed_up(workspace: &Workspace, instance: &str) -> String {
    let backup = workspace.atrium(&["backup", instance]).expect_code(0, "atrium backup");
    let line = backup.stdout.lines().find(|l| l.starts_with("Backed up app instance")).unwrap_or_default();
    let snapshot = line.split_whitespace().skip_while(|word| *word != "snapshot").nth(1);
    let snapshot = snapshot.unwrap_or_else(|| panic!("no snapshot in {:?}", backup.stdout)).to_owned();
    assert_eq!(snapshot.len(), 8, "{line}");
    snapshot
}

#[tokio::test]
async fn a_wiki_is_backed_up_listed_and_restored_through_the_cli() {
    let workspace = Workspace::new("cli-backups", RegistryChoice::Sqlite).await;
    let tenant = format!("bk-{}", std::process::id());
    workspace.write("atrium.hcl", &atrium_block("partner-k"));
    let configuration = |wiki: &str, keep: bool| {
        format!(
            r#"
resource "atrium_tenant" "t" {{
  name          = "{tenant}"
  display_name  = "Backups"
  tier          = "basic"
  welcome_email = false
  manager       = {{ email = "m@{tenant}.example", name = "M" }}
}}
resource "atrium_app_instance" "wiki" {{
  tenant_id              = atrium_tenant.t.id
  name                   = "{wiki}"
  app                    = "mediawiki"
  target                 = "lyon-onprem"
  users                  = 5
  delete_data_on_destroy = {delete}
  timeouts               = {{ create = "15m" }}
}}
resource "atrium_app_instance" "page" {{
  tenant_id              = atrium_tenant.t.id
  name                   = "page"
  app                    = "hello"
  target                 = "lyon-onprem"
  users                  = 1
  delete_data_on_destroy = true
}}
"#,
            delete = !keep
        )
    };
    workspace.write("main.tf", &configuration("wiki", true));
    workspace.atrium(&["apply", "-auto-approve"]).expect_code(0, "atrium apply");
    let wiki = format!("{tenant}/wiki");
    let app = format!("atrium-{tenant}-wiki-g1");
    let marker = "/var/lib/mediawiki-state/marker";

    // The data as the backup takes it: a row and a file.
    sql(&tenant, "CREATE TABLE bench_marker (v VARCHAR(20)); INSERT INTO bench_marker VALUES ('in the backup')");
    docker(&["exec", &app, "sh", "-c", &format!("echo 'in the backup' > {marker}")]);
    let snapshot = backed_up(&workspace, &wiki);
    // A refresh reads it as the instance's latest backup; nothing to change.
    let plan = workspace.atrium(&["plan", "-json"]).expect_code(0, "atrium plan -json after the backup");
    let plan: serde_json::Value = serde_json::from_str(plan.stdout.trim()).expect("JSON plan");
    let changes = plan["resource_changes"].as_array().expect("resource changes");
    let change = changes.iter().find(|c| c["address"] == "atrium_app_instance.wiki").expect("the wiki's change");
    assert_eq!(change["change"]["actions"], serde_json::json!(["no-op"]), "{change}");
    assert_eq!(change["change"]["before"]["latest_backup"], snapshot.as_str(), "{change}");
    assert!(change["change"]["before"]["latest_backup_at"].as_str().is_some_and(|at| at.ends_with('Z')), "{change}");
    // The wiki's users in use (the manager); hello holds itself to its users.
    assert_eq!(change["change"]["before"]["users_in_use"], 1, "{change}");
    let page = changes.iter().find(|c| c["address"] == "atrium_app_instance.page").expect("the page's change");
    assert_eq!(page["change"]["before"]["users_in_use"], serde_json::Value::Null, "{page}");
    assert_eq!(plan["diagnostics"], serde_json::json!([]), "{plan}");

    // Five colleagues join the wiki, which has no user limit of its own: its
    // six users are more than its 5, and the plan says so.
    let join = "for n in 1 2 3 4 5; do atrium-app runner createAndPromote Colleague$n a-colleagues-password-4$n; done";
    docker(&["exec", &app, "sh", "-c", join]);
    let plan = workspace.atrium(&["plan", "-json"]).expect_code(0, "atrium plan -json with six users");
    let plan: serde_json::Value = serde_json::from_str(plan.stdout.trim()).expect("JSON plan");
    let warnings = plan["diagnostics"].as_array().expect("diagnostics");
    let over = warnings.iter().find(|w| w["summary"] == "More people use the app than its users");
    let detail =
        over.unwrap_or_else(|| panic!("no warning about the users: {plan}"))["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("mediawiki counts 6 active users") && detail.contains("deactivate 1"), "{detail}");

    // The data changes afterwards.
    sql(&tenant, "UPDATE bench_marker SET v = 'after the backup'");
    docker(&["exec", &app, "rm", marker]);

    let listed = workspace.atrium(&["snapshots", "-json", &wiki]).expect_code(0, "atrium snapshots -json");
    let listed: serde_json::Value = serde_json::from_str(listed.stdout.trim()).expect("JSON snapshots");
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(ids.len() == 1 && ids[0].starts_with(&snapshot), "{listed}");

    // Refused before anything changes: a snapshot that does not exist, a
    // reference that is not one, an app that takes no backups, another
    // owner's instance.
    let unknown = workspace.atrium(&["restore", "-auto-approve", &wiki, "deadbeef"]).expect_code(1, "unknown snapshot");
    assert!(
        unknown.stderr.contains("has no snapshot deadbeef") && unknown.stderr.contains(&snapshot),
        "{}",
        unknown.stderr
    );
    let invalid = workspace.atrium(&["restore", "-auto-approve", &wiki, "latest;true"]).expect_code(1, "bad reference");
    assert!(invalid.stderr.contains("Invalid snapshot"), "{}", invalid.stderr);
    let page = format!("{tenant}/page");
    let none = workspace.atrium(&["backup", &page]).expect_code(1, "backup of hello");
    assert!(none.stderr.contains("takes no backups"), "{}", none.stderr);
    let other = Workspace::sharing_registry_of("cli-backups-other", &workspace).await;
    other.write("atrium.hcl", &atrium_block("partner-other"));
    other.write("main.tf", "");
    let refused = other.atrium(&["restore", "-auto-approve", &wiki, "latest"]).expect_code(1, "another owner");
    assert!(refused.stderr.contains("belongs to another owner"), "{}", refused.stderr);
    assert_eq!(sql(&tenant, "SELECT v FROM bench_marker").trim(), "after the backup", "nothing was restored");

    let restored = workspace.atrium(&["restore", "-auto-approve", &wiki, &snapshot]).expect_code(0, "atrium restore");
    assert!(restored.stdout.contains(&format!("from snapshot {snapshot}")), "{}", restored.stdout);
    assert!(
        restored.stdout.starts_with("Took snapshot "),
        "the replaced data's snapshot comes first: {}",
        restored.stdout
    );
    assert_eq!(sql(&tenant, "SELECT v FROM bench_marker").trim(), "in the backup");
    assert_eq!(docker(&["exec", &app, "cat", marker]).trim(), "in the backup");
    // The app answers again and the registry follows its new port: no drift.
    workspace.atrium(&["plan"]).expect_code(0, "atrium plan after the restore");
    let listed = workspace.atrium(&["snapshots", &wiki]).expect_code(0, "atrium snapshots");
    assert_eq!(
        listed.stdout.lines().count(),
        3,
        "a header, the backup and the data the restore replaced: {}",
        listed.stdout
    );

    // The restore test of every instance of this owner that takes backups
    // (the wiki; hello takes none): the latest snapshot restored into a
    // scratch wiki, which must answer its health check and count the users;
    // a refresh shows the result, and nothing is left of the scratch wiki.
    let tested = workspace.atrium(&["restore-test"]).expect_code(0, "atrium restore-test");
    assert!(tested.stdout.starts_with(&format!("{wiki}: passed at ")), "{}", tested.stdout);
    assert!(tested.stdout.contains("and counts 6 users"), "{}", tested.stdout);
    assert!(!tested.stdout.contains(&page), "hello takes no backups: {}", tested.stdout);
    let plan = workspace.atrium(&["plan", "-json"]).expect_code(0, "atrium plan -json after the restore test");
    let plan: serde_json::Value = serde_json::from_str(plan.stdout.trim()).expect("JSON plan");
    let changes = plan["resource_changes"].as_array().expect("resource changes");
    let change = changes.iter().find(|c| c["address"] == "atrium_app_instance.wiki").expect("the wiki's change");
    assert_eq!(change["change"]["actions"], serde_json::json!(["no-op"]), "{change}");
    let shown = change["change"]["before"]["latest_restore_test"].as_str().unwrap_or_default();
    assert_eq!(format!("{wiki}: {shown}\n"), tested.stdout, "{change}");
    let page_change = changes.iter().find(|c| c["address"] == "atrium_app_instance.page").expect("the page's change");
    assert_eq!(page_change["change"]["before"]["latest_restore_test"], serde_json::Value::Null, "{page_change}");
    let leftovers =
        docker(&["ps", "-a", "--format", "{{.Names}}"]) + &docker(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(!leftovers.contains("_restore-test"), "{leftovers}");
    let refused = other.atrium(&["restore-test", &wiki]).expect_code(1, "a restore test by another owner");
    assert!(refused.stderr.contains("belongs to another owner"), "{}", refused.stderr);

    // The wiki is replaced by another (`wiki` destroyed with its data kept,
    // `copy` created): the data and its backups are listed by the old
    // instance's handle, and the new one is cloned from them.
    workspace.write("main.tf", &configuration("copy", false));
    workspace.atrium(&["apply", "-auto-approve"]).expect_code(0, "atrium apply of the copy");
    let copy = format!("{tenant}/copy");
    let cloned = workspace.atrium(&["restore", "-auto-approve", "-from", &wiki, &copy, &snapshot]);
    let cloned = cloned.expect_code(0, "atrium restore -from");
    assert!(cloned.stdout.contains(&format!("from snapshot {snapshot} of {wiki}")), "{}", cloned.stdout);
    assert_eq!(sql_in(&tenant, "copy", "SELECT v FROM bench_marker").trim(), "in the backup");
    let copy_app = format!("atrium-{tenant}-copy-g1");
    assert_eq!(docker(&["exec", &copy_app, "cat", marker]).trim(), "in the backup");
    workspace.atrium(&["plan"]).expect_code(0, "atrium plan after the clone");
    // Refused: another app, an instance with no backups, another tenant's instance.
    let none = workspace.atrium(&["restore", "-auto-approve", "-from", &page, &copy, "latest"]);
    let none = none.expect_code(1, "clone from hello");
    assert!(none.stderr.contains("it runs hello, not mediawiki"), "{}", none.stderr);
    let ghost = format!("{tenant}/ghost");
    let ghost = workspace.atrium(&["restore", "-auto-approve", "-from", &ghost, &copy, "latest"]);
    let ghost = ghost.expect_code(1, "clone from an instance that never was");
    assert!(ghost.stderr.contains("has no backups on target lyon-onprem"), "{}", ghost.stderr);
    let foreign = workspace.atrium(&["restore", "-auto-approve", "-from", "other/wiki", &copy, "latest"]);
    let foreign = foreign.expect_code(1, "clone across tenants");
    assert!(foreign.stderr.contains("its own tenant"), "{}", foreign.stderr);

    // Destroyed: the kept data of the first wiki is still there, and only
    // its owner may purge it.
    workspace.atrium(&["destroy", "-auto-approve"]).expect_code(0, "atrium destroy");
    let kept = workspace.atrium(&["kept", "-json"]).expect_code(0, "atrium kept -json");
    // The example's cloud target does not exist here: named, not fatal.
    assert!(kept.stderr.contains("target cloud-fra1 did not answer"), "{}", kept.stderr);
    let kept: serde_json::Value = serde_json::from_str(kept.stdout.trim()).expect("JSON kept data");
    let wiki_kept = kept.as_array().unwrap().iter().find(|k| k["instance"] == wiki.as_str());
    let wiki_kept = wiki_kept.unwrap_or_else(|| panic!("the wiki's data is not listed: {kept}"));
    assert_eq!(
        (&wiki_kept["owner"], &wiki_kept["backups"]),
        (&serde_json::json!("atrium:partner-k"), &serde_json::json!(true))
    );
    let backups_volume = format!("atrium-{tenant}-wiki-backups");
    assert!(wiki_kept["volumes"].as_array().unwrap().iter().any(|v| *v == backups_volume.as_str()), "{wiki_kept}");
    assert!(
        !kept.as_array().unwrap().iter().any(|k| k["instance"] == page.as_str()),
        "hello's data was deleted: {kept}"
    );
    let refused = other.atrium(&["purge", "-auto-approve", &wiki]).expect_code(1, "purge by another owner");
    assert!(refused.stderr.contains("belongs to atrium:partner-k"), "{}", refused.stderr);
    let purged = workspace.atrium(&["purge", "-auto-approve", &wiki]).expect_code(0, "atrium purge");
    assert!(purged.stdout.contains(&backups_volume), "{}", purged.stdout);
    workspace.atrium(&["purge", "-auto-approve", &wiki]).expect_code(1, "nothing left to purge");
    let filter = format!("label=atrium.tenant={tenant}");
    let containers = docker(&["ps", "-aq", "--filter", &filter]);
    let volumes = docker(&["volume", "ls", "-q", "--filter", &filter]);
    assert!(containers.trim().is_empty() && volumes.trim().is_empty(), "left: {containers} {volumes}");
}

/// The containers and volumes of `tenant` left on the test engine.
/// `atrium_tenant.t`: tenant `tenant` of the basic tier, with no welcome email.
fn basic_tenant(tenant: &str, display_name: &str) -> String {
    format!(
        r#"
resource "atrium_tenant" "t" {{
  name          = "{tenant}"
  display_name  = "{display_name}"
  tier          = "basic"
  welcome_email = false
  manager       = {{ email = "m@{tenant}.example", name = "M" }}
}}"#
    )
}

fn tenant_leftovers(tenant: &str) -> String {
    let label = format!("label=atrium.tenant={tenant}");
    docker(&["ps", "-a", "--filter", &label, "--format", "{{.Names}}"])
        + &docker(&["volume", "ls", "--filter", &label, "--format", "{{.Name}}"])
}

#[tokio::test]
async fn terraform_restores_a_wiki_in_place_and_clones_it_into_a_new_instance() {
    let workspace = Workspace::new("tf-restore", RegistryChoice::Sqlite).await;
    let tenant = format!("tr-{}", std::process::id());
    let wiki = format!("{tenant}/wiki");
    workspace.write("provider.tf", &provider_example_with_test_docker());
    // The backup is taken by hand with the CLI, on the same registry.
    let cli = Workspace::sharing_registry_of("tf-restore-cli", &workspace).await;
    cli.write("atrium.hcl", &atrium_block("partner-tr"));
    cli.write("main.tf", "");
    let tenant_block = basic_tenant(&tenant, "Restores");
    let configuration = |wiki_restore: &str, more: &str| {
        format!(
            r#"
{tenant_block}
resource "atrium_app_instance" "wiki" {{
  tenant_id              = atrium_tenant.t.id
  name                   = "wiki"
  app                    = "mediawiki"
  target                 = "lyon-onprem"
  users                  = 5
  delete_data_on_destroy = true
  timeouts               = {{ create = "15m", update = "15m" }}
  {wiki_restore}
}}
{more}
"#
        )
    };
    workspace.write("main.tf", &configuration("", ""));
    workspace.apply();
    sql(&tenant, "CREATE TABLE bench_marker (v VARCHAR(20)); INSERT INTO bench_marker VALUES ('in the backup')");
    let snapshot = backed_up(&cli, &wiki);
    sql(&tenant, "UPDATE bench_marker SET v = 'after the backup'");

    // In place: the plan says the data is replaced, as an update (no new
    // deployment, nothing replaced); the apply restores it.
    let in_place = format!("restore = {{ snapshot = \"{snapshot}\" }}");
    workspace.write("main.tf", &configuration(&in_place, ""));
    let plan = workspace.plan(true).expect_code(2, "plan of the restore");
    assert!(plan.stdout.contains("~ update in-place") && !plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    let words = plan.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("Warning: Apply restores data"), "{}", plan.stdout);
    assert!(
        words.contains(&format!("replaces this instance's data (database and volumes) with snapshot {snapshot}")),
        "{}",
        plan.stdout
    );
    assert!(!words.contains("welcome_email_status"), "no email was sent, so none is sent again: {}", plan.stdout);
    workspace.apply();
    assert_eq!(sql(&tenant, "SELECT v FROM bench_marker").trim(), "in the backup");
    let restore = workspace.state_attribute("atrium_app_instance.wiki", "restore");
    assert_eq!(restore, serde_json::json!({"snapshot": snapshot, "from": null, "offsite_of": null}));
    workspace.assert_plan_empty("after the restore (it is not carried out again)");
    // The data the restore replaced was backed up first: three snapshots now.
    let listed = cli.atrium(&["snapshots", "-json", &wiki]).expect_code(0, "atrium snapshots -json");
    let listed: serde_json::Value = serde_json::from_str(listed.stdout.trim()).expect("JSON snapshots");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "the backup and the replaced data: {listed}");

    // A new instance cloned from the wiki's snapshot; a clone from another
    // tenant's instance is refused at plan, naming the attribute.
    let foreign = r#"
resource "atrium_app_instance" "copy" {
  tenant_id = atrium_tenant.t.id
  name      = "copy"
  app       = "mediawiki"
  target    = "lyon-onprem"
  users     = 5
  restore   = { snapshot = "latest", from = "someone-else/wiki" }
}"#;
    workspace.write("main.tf", &configuration(&in_place, foreign));
    let refused = workspace.plan(true).expect_code(1, "a clone across tenants");
    assert!(
        refused.stderr.contains("Invalid restore source") && refused.stderr.contains("its own tenant"),
        "{}",
        refused.stderr
    );
    let copy = format!(
        r#"
resource "atrium_app_instance" "copy" {{
  tenant_id              = atrium_tenant.t.id
  name                   = "copy"
  app                    = "mediawiki"
  target                 = "lyon-onprem"
  users                  = 5
  delete_data_on_destroy = true
  timeouts               = {{ create = "15m" }}
  restore                = {{ snapshot = "{snapshot}", from = atrium_app_instance.wiki.id }}
}}"#
    );
    workspace.write("main.tf", &configuration(&in_place, &copy));
    workspace.apply();
    assert_eq!(sql_in(&tenant, "copy", "SELECT v FROM bench_marker").trim(), "in the backup");
    workspace.assert_plan_empty("after the clone");
    // Imported again, the clone brings what the registry and its containers
    // say: the restore done, its latest backup (of the data the clone
    // replaced) and its users; nothing to change.
    let copy_id = format!("{tenant}/copy");
    workspace.terraform(&["state", "rm", "atrium_app_instance.copy"]).expect_code(0, "terraform state rm");
    workspace.terraform(&["import", "atrium_app_instance.copy", &copy_id]).expect_code(0, "terraform import");
    let restore = workspace.state_attribute("atrium_app_instance.copy", "restore");
    assert_eq!(restore, serde_json::json!({"snapshot": snapshot, "from": wiki, "offsite_of": null}));
    let latest = workspace.state_attribute("atrium_app_instance.copy", "latest_backup");
    assert!(latest.as_str().is_some_and(|latest| latest.len() == 8 && latest != snapshot), "{latest}");
    assert_eq!(workspace.state_attribute("atrium_app_instance.copy", "users_in_use"), 1);
    // Only `timeouts` (configuration only, never imported) is left to record:
    // the restore is not carried out again.
    let plan = workspace.plan(true).expect_code(2, "plan after the import of the clone");
    assert!(plan.stdout.contains("+ timeouts") && !plan.stdout.contains("restore"), "{}", plan.stdout);
    workspace.apply();
    assert_eq!(sql_in(&tenant, "copy", "SELECT v FROM bench_marker").trim(), "in the backup");
    workspace.assert_plan_empty("after the import of the clone");

    // Imported with an import block and generated configuration: the
    // generated `restore` names what was done, and nothing is restored again.
    workspace.terraform(&["state", "rm", "atrium_app_instance.copy"]).expect_code(0, "terraform state rm");
    let import = format!("import {{\n  to = atrium_app_instance.copy\n  id = \"{copy_id}\"\n}}\n");
    workspace.write("main.tf", &configuration(&in_place, &import));
    workspace
        .terraform(&["plan", "-input=false", "-generate-config-out=generated.tf"])
        .expect_code(0, "plan -generate-config-out");
    let generated = std::fs::read_to_string(workspace.path().join("generated.tf")).expect("generated.tf");
    let generated_words = generated.split_whitespace().collect::<Vec<_>>().join(" ");
    for part in [format!("from = \"{wiki}\""), format!("snapshot = \"{snapshot}\"")] {
        assert!(generated_words.contains(&part), "{part} is not in generated.tf: {generated}");
    }
    let applied = workspace.apply();
    assert!(applied.stdout.contains("1 imported, 0 added, 0 changed, 0 destroyed"), "{}", applied.stdout);
    assert_eq!(sql_in(&tenant, "copy", "SELECT v FROM bench_marker").trim(), "in the backup");
    workspace.assert_plan_empty("after the import block with generated configuration");
    workspace.remove("generated.tf");
    workspace.write("main.tf", &configuration(&in_place, &copy));

    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert_eq!(tenant_leftovers(&tenant), "", "nothing of the tenant is left");
}

/// Runs SQL in instance `name`'s PostgreSQL (Redmine's) on the engine `docker` runs; its output.
fn psql(docker: impl Fn(&[&str]) -> String, tenant: &str, name: &str, statement: &str) -> String {
    let container = format!("atrium-{tenant}-{name}-postgres");
    let script = format!("psql -h /run/postgresql -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -Atc \"{statement}\"");
    docker(&["exec", &container, "sh", "-c", &script])
}

/// Off-site copies through Terraform: the provider's `offsite_backups` on
/// the on-prem target, a backup copied to the store on the other target
/// (shown by a refresh as `latest_offsite_copy`), the instance destroyed
/// with its data, and brought back on the other target from the copy by a
/// `restore` with `offsite_of`. The store's password is in no output and no
/// state.
#[tokio::test]
async fn terraform_sends_backups_off_site_and_brings_an_instance_back_on_another_target() {
    let workspace = Workspace::new("tf-offsite", RegistryChoice::Sqlite).await;
    let tenant = format!("to-{}", std::process::id());
    let _second_engine = SecondEngineCleanup { tenant: tenant.clone() };
    let port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let host_address = atrium_engine::test_services::service_variable("ATRIUM_TEST_HOST_ADDRESS");
    let password = format!("tf-offsite-{}-{port}-pw", std::process::id());
    let cloud_engine = atrium_engine::test_services::service_variable("ATRIUM_TEST_DOCKER_HOST_2");
    let example = provider_example_with_test_docker();
    let (swarm, onprem_end) = (
        "docker_host    = \"tcp://10.0.0.4:2376\"\n      orchestrator   = \"swarm\"",
        "public_address    = \"203.0.113.10\"\n    }",
    );
    assert!(example.contains(swarm) && example.contains(onprem_end), "the provider example changed: {example}");
    let provider = example.replace(swarm, &format!("docker_host    = \"{cloud_engine}\"")).replace(
        onprem_end,
        &format!(
            "public_address    = \"203.0.113.10\"\n      offsite_backups = {{\n        target   = \"cloud-fra1\"\n        address  = \"{host_address}:{port}\"\n        password = \"{password}\"\n      }}\n    }}"
        ),
    );
    workspace.write("provider.tf", &provider);
    let cli = Workspace::sharing_registry_of("tf-offsite-cli", &workspace).await;
    cli.write("atrium.hcl", &provider.replace("provider \"atrium\" {", "atrium {\n  owner = \"partner-to\""));
    cli.write("main.tf", "");
    let tenant_block = basic_tenant(&tenant, "Off-site");
    let configuration = |instance: &str| format!("{tenant_block}\n{instance}");
    let erp = |target: &str, restore: &str| {
        format!(
            r#"
resource "atrium_app_instance" "erp" {{
  tenant_id              = atrium_tenant.t.id
  name                   = "erp"
  app                    = "redmine"
  version                = "5.0"
  target                 = "{target}"
  users                  = 5
  delete_data_on_destroy = true
  timeouts               = {{ create = "15m", update = "15m" }}
  {restore}
}}
"#
        )
    };
    workspace.write("main.tf", &configuration(&erp("lyon-onprem", "")));
    workspace.apply();
    psql(
        docker,
        &tenant,
        "erp",
        "CREATE TABLE offsite_marker (v text); INSERT INTO offsite_marker VALUES ('copied off site')",
    );
    let snapshot = backed_up(&cli, &format!("{tenant}/erp"));
    let refreshed = workspace.apply_with(&["-refresh-only"]);
    assert!(!refreshed.stdout.contains(&password) && !refreshed.stderr.contains(&password));
    let copied = workspace.state_attribute("atrium_app_instance.erp", "latest_offsite_copy");
    let copied = copied.as_str().unwrap_or_default();
    assert!(copied.starts_with(&format!("snapshot {snapshot} copied at 20")), "{copied}");

    // The instance and its data are destroyed on lyon-onprem.
    workspace.write("main.tf", &configuration(""));
    workspace.apply();
    assert_eq!(tenant_leftovers(&tenant).trim(), "", "nothing of it is left on lyon-onprem");

    // It comes back on cloud-fra1 from the off-site copy.
    let restore = "restore = { snapshot = \"latest\", offsite_of = \"lyon-onprem\" }";
    workspace.write("main.tf", &configuration(&erp("cloud-fra1", restore)));
    let applied = workspace.apply();
    assert!(!applied.stdout.contains(&password) && !applied.stderr.contains(&password));
    assert_eq!(
        psql(
            |arguments| docker_on("ATRIUM_TEST_DOCKER_HOST_2", arguments),
            &tenant,
            "erp",
            "SELECT v FROM offsite_marker"
        )
        .trim(),
        "copied off site"
    );
    workspace.assert_plan_empty("after the restore from the off-site copy");
    let state = workspace.read("terraform.tfstate");
    assert!(state.contains("offsite_of") && !state.contains(&password), "the password is in no state");

    workspace.write("main.tf", &configuration(""));
    workspace.apply();
    let left =
        docker_on("ATRIUM_TEST_DOCKER_HOST_2", &["ps", "-aq", "--filter", &format!("label=atrium.tenant={tenant}")]);
    assert_eq!(left.trim(), "", "nothing of it is left on cloud-fra1");
}
