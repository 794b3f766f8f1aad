//! The customer's experience end to end, through the real terraform CLI:
//! a tenant with a `hello` app on its domain; exactly one welcome email whose
//! credentials open the manager area over HTTPS; an expiry date in the past
//! suspends everything (data kept), a later one resumes it.

use atrium_acceptance::{
    RegistryChoice, TestZone, Workspace, docker, https_get, https_get_as, mails_to,
    provider_example_with_test_services, redmine, with_test_smtp,
};
use atrium_engine::model::TenantId;

fn configuration(tenant: &str, manager: &str, zone: &str, expires_on: &str, user_quota: u32) -> String {
    format!(
        r#"resource "atrium_tenant" "customer" {{
  name         = "{tenant}"
  display_name = "Scenario GmbH"
  tier         = "business"
  user_quota   = {user_quota}
  expires_on   = "{expires_on}"

  manager = {{
    email = "{manager}"
    name  = "Sam Scenario"
  }}
}}

resource "atrium_app_instance" "app" {{
  tenant_id = atrium_tenant.customer.id
  name      = "app"
  app       = "hello"
  target    = "lyon-onprem"
  users     = 12
}}

resource "atrium_domain" "app" {{
  app_instance_id = atrium_app_instance.app.id
  hostname        = "{tenant}.{zone}"
}}

resource "atrium_support_plan" "customer" {{
  tenant_id      = atrium_tenant.customer.id
  level          = "premium_24x7"
  tracker_access = true
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_email_login_expiry_and_resumption_end_to_end() {
    let id = std::process::id();
    let tenant = format!("scn-{id}");
    // A long address: every email the provider accepts must log in to every app.
    let manager = format!("samantha.scenario-{id:07}.accounting-department@subsidiary-{id:07}.scenario.example");
    assert!((80..=90).contains(&manager.len()), "{} characters", manager.len());
    let zone = TestZone::create(&format!("scn{id}.atrium.test"));
    let workspace = Workspace::new("scenario", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &with_test_smtp(&provider_example_with_test_services(&zone.name)));
    let hostname = format!("{tenant}.{}", zone.name);
    workspace.write("main.tf", &configuration(&tenant, &manager, &zone.name, "2099-12-31", 25));

    // Order: exactly one welcome email, whose login opens the manager area over HTTPS on the domain.
    let applied = workspace.apply();
    let mails = mails_to(&manager);
    assert_eq!(mails.len(), 1, "exactly one welcome email\n{}", applied.flat_output());
    let password = mails[0]
        .lines()
        .find_map(|line| line.strip_prefix("Password: "))
        .expect("the email has the password")
        .trim()
        .to_owned();
    assert!(!workspace.read("terraform.tfstate").contains(&password), "the password is not in state");
    let login = format!("{manager}:{password}");
    let (status, page) = https_get_as(&hostname, "/manage/", Some(&login));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Manager area"), "{page}");
    assert_eq!(https_get(&hostname, "/manage/").0, 401, "refused without credentials");
    assert_eq!(https_get_as(&hostname, "/manage/", Some(&format!("{manager}:wrong-password"))).0, 401);
    // The email names the domain the customer can reach, never an internal address.
    assert!(mails[0].contains(&format!("https://{hostname}/manage/")), "{}", mails[0]);
    assert!(!mails[0].contains("http://127.0.0.1"), "{}", mails[0]);
    // The instance applied before its domain, so it waited; the domain sent it.
    assert_eq!(workspace.state_attribute("atrium_app_instance.app", "welcome_email_status"), "waiting_for_domain");
    workspace.terraform(&["apply", "-refresh-only", "-auto-approve", "-input=false"]).expect_code(0, "refresh");
    assert_eq!(workspace.state_attribute("atrium_app_instance.app", "welcome_email_status"), "sent");
    // The manager is a member of the tenant's support project in the tracker.
    let (status, body) = redmine("GET", &format!("/projects/atrium-{tenant}/memberships.json"), None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Sam Scenario"), "{body}");
    workspace.assert_plan_empty("after the order");
    let container = format!("atrium-{tenant}-app-g1");
    docker(&["exec", &container, "sh", "-c", "echo customer-data > /www/data/kept.txt"]);

    // A user quota below what the instance uses: a warning at plan (the same
    // apply could lower the instance first), refused at apply, nothing changed.
    workspace.write("main.tf", &configuration(&tenant, &manager, &zone.name, "2099-12-31", 10));
    let output = workspace.plan(true).expect_code(2, "plan lowering the quota below use").flat_output();
    assert!(output.contains("Warning: User quota below current use") && output.contains("12 users"), "{output}");
    let output = workspace
        .terraform(&["apply", "-auto-approve", "-input=false"])
        .expect_code(1, "apply lowering the quota below use")
        .flat_output();
    assert!(output.contains("more than the user quota of 10"), "{output}");
    let registry = workspace.registry().await;
    let quota = registry.get_tenant(&TenantId::parse(&tenant).unwrap()).await.unwrap().unwrap().spec.user_quota;
    assert_eq!(quota, 25, "the quota was not lowered");
    registry.close().await;

    // Expiry in the past: the plan says so, the apply stops the app and the domain answers 503.
    workspace.write("main.tf", &configuration(&tenant, &manager, &zone.name, "2020-01-31", 25));
    let plan = workspace.plan(true).expect_code(2, "plan after the expiry date passed");
    assert!(plan.stdout.contains("\"active\" -> \"suspended\""), "{}", plan.stdout);
    assert!(plan.flat_output().contains("Tenant expires"), "{}", plan.flat_output());
    workspace.apply();
    let running = docker(&["inspect", "--format", "{{.State.Running}}", &container]);
    assert_eq!(running.trim(), "false", "the container is stopped, not removed");
    let (status, page) = https_get(&hostname, "/");
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("suspended"), "{page}");
    assert_eq!(workspace.state_attribute("atrium_tenant.customer", "status"), "suspended");
    assert!(
        workspace
            .state_attribute("atrium_tenant.customer", "status_reason")
            .as_str()
            .is_some_and(|reason| reason.contains("2020-01-31")),
    );
    workspace.assert_plan_empty("while suspended");
    // A refresh records what the apps look like now.
    workspace.terraform(&["apply", "-refresh-only", "-auto-approve", "-input=false"]).expect_code(0, "refresh");
    workspace.assert_plan_empty("after the refresh");
    assert_eq!(workspace.state_attribute("atrium_app_instance.app", "status"), "suspended");
    assert_eq!(workspace.state_attribute("atrium_domain.app", "status"), "suspended");
    assert_eq!(workspace.state_attribute("atrium_support_plan.customer", "status"), "suspended");

    // A later date resumes everything, data intact; no second welcome email.
    workspace.write("main.tf", &configuration(&tenant, &manager, &zone.name, "2099-12-31", 25));
    let plan = workspace.plan(true).expect_code(2, "plan after extending expires_on");
    assert!(plan.stdout.contains("\"suspended\" -> \"active\""), "{}", plan.stdout);
    workspace.apply();
    let (status, page) = https_get(&hostname, "/data/kept.txt");
    assert_eq!((status, page.trim()), (200, "customer-data"), "data survived the suspension");
    assert_eq!(https_get_as(&hostname, "/manage/", Some(&login)).0, 200, "the same login works again");
    workspace.assert_plan_empty("after resuming");
    assert_eq!(mails_to(&manager).len(), 1, "never re-sent by later applies");

    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    docker(&["volume", "rm", &format!("atrium-{tenant}-app-data")]);
    assert_eq!(redmine("GET", &format!("/projects/atrium-{tenant}.json"), None).0, 404, "the support project is gone");
}
