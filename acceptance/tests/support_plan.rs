//! `atrium_support_plan` through the real terraform CLI, with the real
//! Redmine as the support tracker.

use atrium_acceptance::{
    RegistryChoice, Workspace, example, import_arguments, provider_example_with_test_services, redmine,
};

struct Names {
    tenant: String,
    manager: String,
}

impl Names {
    fn new(short: &str) -> Names {
        let id = std::process::id();
        Names { tenant: format!("{short}-{id}"), manager: format!("lead-{short}-{id}@support.example") }
    }

    fn example(&self) -> String {
        example("resources/atrium_support_plan/resource.tf")
            .replace("name         = \"acme\"", &format!("name         = \"{}\"", self.tenant))
            .replace("it-lead@acme.example", &self.manager)
    }
}

/// The tenant's support project in Redmine: (its "Support level", its members' names), or None.
fn support_project(tenant: &str) -> Option<(String, Vec<String>)> {
    let (status, body) = redmine("GET", &format!("/projects/atrium-{tenant}.json"), None);
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "{body}");
    let project: serde_json::Value = serde_json::from_str(&body).unwrap();
    let level = project["project"]["custom_fields"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["name"] == "Support level"))
        .and_then(|f| f["value"].as_str())
        .unwrap_or_default()
        .to_owned();
    let (status, body) = redmine("GET", &format!("/projects/atrium-{tenant}/memberships.json"), None);
    assert_eq!(status, 200, "{body}");
    let memberships: serde_json::Value = serde_json::from_str(&body).unwrap();
    let members = memberships["memberships"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["user"]["name"].as_str().map(str::to_owned))
        .collect();
    Some((level, members))
}

/// The Redmine user with this login (locked ones included), if any.
fn tracker_user_id(login: &str) -> Option<u64> {
    let (status, body) = redmine("GET", &format!("/users.json?status=&name={login}"), None);
    assert_eq!(status, 200, "{body}");
    let users: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    users["users"].as_array()?.iter().find(|u| u["login"] == login).and_then(|u| u["id"].as_u64())
}

#[tokio::test]
async fn support_plan_lifecycle_with_the_tracker() {
    let names = Names::new("sup");
    let workspace = Workspace::new("support_plan", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_services("apps.atrium.test"));
    let resource = names.example();
    workspace.write("main.tf", &resource);
    let address = "atrium_support_plan.acme";

    // Create: the plan, the tenant's private support project with its level, the manager a member.
    workspace.apply();
    assert_eq!(workspace.state_attribute(address, "first_response_minutes"), 60);
    assert_eq!(workspace.state_attribute(address, "status"), "active");
    assert!(workspace.state_attribute(address, "hours").as_str().is_some_and(|h| h.contains("around the clock")));
    let (level, members) = support_project(&names.tenant).expect("the support project exists");
    assert_eq!(level, "premium_24x7");
    assert_eq!(members, ["Dana Fischer"]);
    assert!(tracker_user_id(&names.manager).is_some());
    workspace.assert_plan_empty("after create");

    // In place: the standard level (without phone), recorded in the tracker too.
    let standard = resource
        .replace("\"premium_24x7\"", "\"standard_8x5\"")
        .replace("[\"chat\", \"email\", \"phone\"]", "[\"email\", \"forum\"]");
    workspace.write("main.tf", &standard);
    let plan = workspace.plan(true).expect_code(2, "plan of a level change");
    assert!(plan.stdout.contains("updated in-place"), "{}", plan.stdout);
    workspace.apply();
    assert_eq!(support_project(&names.tenant).unwrap().0, "standard_8x5");
    assert_eq!(workspace.state_attribute(address, "first_response_minutes"), 480);
    workspace.assert_plan_empty("after the level change");

    // Drift: the membership removed in Redmine shows in plan and the next apply restores it.
    let (status, body) = redmine("GET", &format!("/projects/atrium-{}/memberships.json", names.tenant), None);
    assert_eq!(status, 200, "{body}");
    let memberships: serde_json::Value = serde_json::from_str(&body).unwrap();
    let membership = memberships["memberships"][0]["id"].as_u64().unwrap();
    assert_eq!(redmine("DELETE", &format!("/memberships/{membership}.json"), None).0, 204);
    let plan = workspace.plan(true).expect_code(2, "plan after the membership was removed");
    assert!(plan.stdout.contains("tracker_access") && plan.stdout.contains("false -> true"), "{}", plan.stdout);
    workspace.apply();
    assert_eq!(support_project(&names.tenant).unwrap().1, ["Dana Fischer"]);
    workspace.assert_plan_empty("after repairing drift");

    // Access off: the manager leaves the project (and the tracker).
    workspace.write("main.tf", &standard.replace("tracker_access = true", "tracker_access = false"));
    workspace.apply();
    assert!(support_project(&names.tenant).unwrap().1.is_empty());
    assert!(tracker_user_id(&names.manager).is_none());
    workspace.write("main.tf", &standard);
    workspace.apply();

    // Import with the command from import.sh, then with an import block and generated configuration.
    workspace.terraform(&["state", "rm", address]).expect_code(0, "state rm");
    let arguments: Vec<String> = import_arguments(&example("resources/atrium_support_plan/import.sh"))
        .into_iter()
        .map(|a| if a == "acme" { names.tenant.clone() } else { a })
        .collect();
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    workspace.terraform(&arguments).expect_code(0, "terraform import");
    workspace.assert_plan_empty("after terraform import");
    workspace.terraform(&["state", "rm", address]).expect_code(0, "state rm");
    let start = standard.find("resource \"atrium_support_plan\"").unwrap();
    let end = standard[start..].find("\n}\n").unwrap() + start + 3;
    let tenant_only = standard[..start].to_owned() + &standard[end..].replace("atrium_support_plan.acme.hours", "\"\"");
    workspace
        .write("main.tf", &format!("{tenant_only}\nimport {{\n  to = {address}\n  id = \"{}\"\n}}\n", names.tenant));
    workspace
        .terraform(&["plan", "-input=false", "-generate-config-out=generated.tf"])
        .expect_code(0, "plan -generate-config-out");
    let applied = workspace.apply();
    assert!(applied.stdout.contains("1 imported"), "{}", applied.stdout);
    workspace.assert_plan_empty("after an import block with generated config");
    workspace.remove("generated.tf");
    workspace.write("main.tf", &standard);
    workspace.apply();
    workspace.assert_plan_empty("back on the example config");

    // Forced replacement: the plan moves to another tenant.
    let other = format!("{}-b", names.tenant);
    let moved = format!(
        "{standard}\nresource \"atrium_tenant\" \"other\" {{\n  name         = \"{other}\"\n  display_name = \"Other\"\n  tier         = \"business\"\n  manager = {{\n    email = \"{}\"\n    name  = \"Olga Other\"\n  }}\n}}\n",
        names.manager.replace("lead-", "other-")
    )
    .replace("tenant_id      = atrium_tenant.acme.id", "tenant_id      = atrium_tenant.other.id");
    workspace.write("main.tf", &moved);
    let plan = workspace.plan(true).expect_code(2, "plan of a replacement");
    assert!(plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    workspace.apply();
    assert!(support_project(&names.tenant).is_none(), "the first tenant's project is gone");
    assert!(support_project(&other).is_some());

    // Destroy: nothing is left in the tracker or the registry.
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert!(support_project(&other).is_none());
    assert!(tracker_user_id(&names.manager.replace("lead-", "other-")).is_none());
    assert!(workspace.registry().await.list_support_plans().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_support_plans_fail_at_plan_naming_the_attribute() {
    let names = Names::new("supbad");
    let workspace = Workspace::new("support_plan_bad", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_services("apps.atrium.test"));
    let resource = names.example().replace("tracker_access = true", "tracker_access = false");
    let cases = [
        ("\"premium_24x7\"", "\"standard_8x5\"", "Phone support needs the premium level", "channels"),
        ("\"premium_24x7\"", "\"gold\"", "Unknown support level", "standard_8x5"),
        ("[\"chat\", \"email\", \"phone\"]", "[\"fax\"]", "Unknown support channel", "\"forum\""),
    ];
    for (good, bad, summary, hint) in cases {
        workspace.write("main.tf", &resource.replace(good, bad));
        let output = workspace.plan(true).expect_code(1, &format!("plan with {bad}")).flat_output();
        assert!(output.contains(summary) && output.contains(hint), "{summary} / {hint}:\n{output}");
    }

    // The tier decides the levels: once the tenant exists, a basic tenant cannot have premium...
    workspace.write("main.tf", &resource.replace("\"business\"", "\"basic\""));
    let start = resource.find("resource \"atrium_support_plan\"").unwrap();
    let tenant_only = resource[..start].replace("\"business\"", "\"basic\"");
    workspace.write("main.tf", &tenant_only);
    workspace.apply();
    workspace.write("main.tf", &resource.replace("\"business\"", "\"basic\""));
    let output = workspace.plan(true).expect_code(2, "plan of premium for a basic tenant").flat_output();
    assert!(output.contains("Warning: Support level not allowed for the tier"), "{output}");
    let output = workspace
        .terraform(&["apply", "-auto-approve", "-input=false"])
        .expect_code(1, "apply of premium for a basic tenant")
        .flat_output();
    assert!(
        output.contains("cannot have the premium_24x7 support level") && output.contains("standard_8x5"),
        "{output}"
    );
    assert!(workspace.registry().await.list_support_plans().await.unwrap().is_empty(), "nothing was recorded");
    // ...and a tier downgrade that would strand the plan's level is refused, saying what to change.
    workspace.write("main.tf", &resource);
    workspace.apply();
    workspace.write("main.tf", &resource.replace("\"business\"", "\"basic\""));
    let output = workspace.plan(true).expect_code(2, "plan of a tier downgrade").flat_output();
    assert!(
        output.contains("Warning: Tier does not allow the tenant's support level") && output.contains("standard_8x5"),
        "{output}"
    );
    let output = workspace
        .terraform(&["apply", "-auto-approve", "-input=false"])
        .expect_code(1, "apply of a tier downgrade")
        .flat_output();
    assert!(output.contains("a basic tenant cannot have") && output.contains("standard_8x5"), "{output}");
    // A second plan for the same tenant is refused.
    let second =
        resource.replace("resource \"atrium_support_plan\" \"acme\"", "resource \"atrium_support_plan\" \"second\"");
    let start = second.find("resource \"atrium_support_plan\" \"second\"").unwrap();
    let end = second[start..].find("\n}\n").unwrap() + start + 3;
    workspace.write("main.tf", &format!("{resource}\n{}", &second[start..end]));
    // The name is this configuration's already: apply refuses the second one.
    let output = workspace
        .terraform(&["apply", "-auto-approve", "-input=false"])
        .expect_code(1, "apply of a second support plan")
        .flat_output();
    assert!(output.contains("The support plan is managed already") && output.contains("the name is taken"), "{output}");
    assert_eq!(workspace.registry().await.list_support_plans().await.unwrap().len(), 1, "the first plan is kept");
    workspace.write("main.tf", &resource);
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert!(support_project(&names.tenant).is_none());
}
