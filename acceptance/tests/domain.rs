//! `atrium_domain` through the real terraform CLI, on real PowerDNS, Caddy
//! and Pebble (certificates by HTTP-01), with the `hello` app behind it.

use atrium_acceptance::{
    RegistryChoice, TestZone, Workspace, caddy, docker, example, http_get_host, https_get, import_arguments,
    provider_example_with_test_services, routes_mentioning,
};

/// The example with the test's own names: tenant, platform zone and the customer's domain.
struct Names {
    tenant: String,
    platform_zone: String,
    customer_zone: String,
}

impl Names {
    fn new(short: &str) -> Names {
        let id = std::process::id();
        Names {
            tenant: format!("{short}-{id}"),
            platform_zone: format!("{short}{id}.atrium.test"),
            customer_zone: format!("{short}{id}-customer.test"),
        }
    }

    fn platform_host(&self) -> String {
        format!("acme.{}", self.platform_zone)
    }

    fn custom_host(&self) -> String {
        format!("erp.{}", self.customer_zone)
    }

    fn example(&self) -> String {
        example("resources/atrium_domain/resource.tf")
            .replace("name         = \"acme\"", &format!("name         = \"{}\"", self.tenant))
            .replace("acme.apps.example.net", &self.platform_host())
            .replace("erp.acme.com", &self.custom_host())
    }
}

fn a_records(zone: &TestZone, name: &str) -> Vec<String> {
    zone.record_sets()
        .iter()
        .filter(|set| set["name"] == name && set["type"] == "A")
        .flat_map(|set| set["records"].as_array().cloned().unwrap_or_default())
        .filter_map(|record| record["content"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_lifecycle_with_dns_routes_and_certificates() {
    let names = Names::new("dom");
    let platform = TestZone::create(&names.platform_zone);
    let customer = TestZone::create(&names.customer_zone);
    let workspace = Workspace::new("domain", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_services(&names.platform_zone));
    let resource = names.example();
    workspace.write("main.tf", &resource);
    let (web, erp) = ("atrium_domain.web", "atrium_domain.erp");
    let (platform_host, custom_host) = (names.platform_host(), names.custom_host());

    // Create: the platform subdomain answers over HTTPS with a certificate from
    // the ACME CA; the custom domain waits for its verification record.
    let applied = workspace.apply();
    let output = applied.flat_output();
    assert!(output.contains("Custom domain waiting for verification"), "{output}");
    let verification = workspace.state_attribute(erp, "verification");
    let (txt_name, txt_value) =
        (verification["name"].as_str().unwrap().to_owned(), verification["value"].as_str().unwrap().to_owned());
    assert!(output.contains(&txt_name) && output.contains(&txt_value), "the warning says what to publish: {output}");
    assert_eq!(workspace.state_attribute(erp, "status"), "pending_verification");
    assert_eq!(workspace.state_attribute(web, "status"), "active");
    assert!(workspace.state_attribute(web, "certificate_expires_at").as_str().is_some_and(|at| at.starts_with("20")));
    assert_eq!(a_records(&platform, &format!("{platform_host}.")), ["127.0.0.1"]);
    let (status, page) = https_get(&platform_host, "/");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Hello from Atrium"), "{page}");
    // Served by the platform zone's wildcard, which Atrium ordered: no certificate of its own.
    let wildcard = format!("*.{}", names.platform_zone);
    assert_eq!(atrium_acceptance::served_certificate_names(&platform_host), [wildcard]);
    assert_eq!(https_get(&custom_host, "/").0, 0, "no route, so no certificate, for a pending custom domain");
    // The app was told the address it is reached at (the catalog's public_address).
    assert_eq!(https_get(&platform_host, "/address").1.trim(), format!("https://{platform_host}"));
    assert_eq!(https_get(&platform_host, "/hosts").1.trim(), platform_host);
    workspace.assert_plan_empty("after create");

    // The customer publishes the record (and points her name at the platform): the next apply activates it.
    customer.publish(&format!("{txt_name}."), "TXT", &format!("\"{txt_value}\""));
    customer.publish(&format!("{custom_host}."), "A", "127.0.0.1");
    let plan = workspace.plan(true).expect_code(2, "plan after publishing the verification record");
    assert!(plan.stdout.contains("\"pending_verification\" -> \"active\""), "{}", plan.stdout);
    workspace.apply();
    assert_eq!(workspace.state_attribute(erp, "status"), "active");
    assert!(https_get(&custom_host, "/").1.contains("Hello from Atrium"));
    // A customer's own domain keeps a certificate of its own from the proxy's issuer.
    assert_eq!(atrium_acceptance::served_certificate_names(&custom_host), std::slice::from_ref(&custom_host));
    // Her own domain is now the app's address; both names are live.
    assert_eq!(https_get(&custom_host, "/address").1.trim(), format!("https://{custom_host}"));
    assert_eq!(https_get(&custom_host, "/hosts").1.trim(), format!("{custom_host} {platform_host}"));
    workspace.assert_plan_empty("after activation");

    // In place: plain HTTP, and a move to another app instance of the tenant.
    let second_instance = "\nresource \"atrium_app_instance\" \"other\" {\n  tenant_id = atrium_tenant.acme.id\n  name      = \"other\"\n  app       = \"hello\"\n  target    = \"lyon-onprem\"\n  users     = 5\n  version   = \"1.0\"\n}\n";
    let updated = resource.replacen(
        "  hostname        = \"".to_owned().as_str(),
        "  tls             = \"none\"\n  hostname        = \"",
        1,
    );
    let updated = format!("{updated}{second_instance}").replacen(
        "app_instance_id = atrium_app_instance.web.id",
        "app_instance_id = atrium_app_instance.other.id",
        1,
    );
    workspace.write("main.tf", &updated);
    let plan = workspace.plan(true).expect_code(2, "plan of an in-place update");
    assert!(plan.stdout.contains("atrium_domain.web will be updated in-place"), "{}", plan.stdout);
    workspace.apply();
    let (status, page) = http_get_host(&platform_host, "/");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("hello 1.0"), "the route follows the domain to the other instance: {page}");
    assert_eq!(http_get_host(&platform_host, "/address").1.trim(), format!("http://{platform_host}"));
    assert_eq!(
        https_get(&custom_host, "/hosts").1.trim(),
        custom_host,
        "the instance the domain left is told it has one name left"
    );
    assert_eq!(workspace.state_attribute(web, "certificate_expires_at"), serde_json::Value::Null);
    workspace.assert_plan_empty("after the in-place update");
    workspace.write("main.tf", &resource);
    workspace.apply();
    assert!(https_get(&platform_host, "/").1.contains("hello 1.1"));

    // Forced replacement: another hostname; the old name's route and record go.
    let renamed = resource.replace(&platform_host, &format!("acme2.{}", names.platform_zone));
    workspace.write("main.tf", &renamed);
    let plan = workspace.plan(true).expect_code(2, "plan of a replacement");
    assert!(plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    workspace.apply();
    assert!(a_records(&platform, &format!("{platform_host}.")).is_empty());
    assert!(routes_mentioning(&platform_host).iter().all(|id| id.contains("acme2.")));
    workspace.write("main.tf", &resource);
    workspace.apply();
    workspace.assert_plan_empty("back on the example's hostname");

    // Import with the command from import.sh, then with an import block and generated configuration.
    workspace.terraform(&["state", "rm", web]).expect_code(0, "state rm");
    let arguments: Vec<String> = import_arguments(&example("resources/atrium_domain/import.sh"))
        .into_iter()
        .map(|a| a.replace("acme.apps.example.net", &platform_host))
        .collect();
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    workspace.terraform(&arguments).expect_code(0, "terraform import");
    workspace.assert_plan_empty("after terraform import");
    workspace.terraform(&["state", "rm", web]).expect_code(0, "state rm");
    let start = resource.find("# A platform subdomain").unwrap();
    let end = resource[start..].find("\n}\n").unwrap() + start + 3;
    let without_web = resource[..start].to_owned() + &resource[end..];
    let without_web = without_web.replace("https://${atrium_domain.web.hostname}/", "none");
    workspace.write("main.tf", &format!("{without_web}\nimport {{\n  to = {web}\n  id = \"{platform_host}\"\n}}\n"));
    workspace
        .terraform(&["plan", "-input=false", "-generate-config-out=generated.tf"])
        .expect_code(0, "plan -generate-config-out");
    let applied = workspace.apply();
    assert!(applied.stdout.contains("1 imported"), "{}", applied.stdout);
    workspace.assert_plan_empty("after an import block with generated config");
    workspace.remove("generated.tf");
    workspace.write("main.tf", &resource);
    workspace.apply();
    workspace.assert_plan_empty("back on the example config");

    // Drift: the route deleted in Caddy, then the record changed in PowerDNS; each shows and is repaired.
    let (status, body) = caddy("DELETE", &format!("/id/atrium-{platform_host}"), None);
    assert_eq!(status, 200, "{body}");
    let plan = workspace.plan(true).expect_code(2, "plan after the route was deleted");
    assert!(plan.stdout.contains("\"drifted\" -> \"active\""), "{}", plan.stdout);
    workspace.apply();
    assert!(https_get(&platform_host, "/").1.contains("Hello from Atrium"));
    let record = format!(
        r#"{{"rrsets": [{{"name": "{platform_host}.", "type": "A", "ttl": 300, "changetype": "REPLACE", "records": [{{"content": "192.0.2.66", "disabled": false}}]}}]}}"#
    );
    let (status, body) =
        atrium_acceptance::powerdns("PATCH", &format!("/zones/{}.", names.platform_zone), Some(&record));
    assert_eq!(status, 204, "{body}");
    let plan = workspace.plan(true).expect_code(2, "plan after the record was changed");
    assert!(plan.stdout.contains("192.0.2.66"), "{}", plan.stdout);
    workspace.apply();
    assert_eq!(a_records(&platform, &format!("{platform_host}.")), ["127.0.0.1"]);
    workspace.assert_plan_empty("after repairing drift");

    // Destroy: exactly this tenant's routes and records go; a neighbour's stay.
    platform.publish(&format!("neighbour.{}.", names.platform_zone), "A", "192.0.2.1");
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert!(routes_mentioning(&names.platform_zone).is_empty(), "{:?}", routes_mentioning(&names.platform_zone));
    assert!(routes_mentioning(&names.customer_zone).is_empty());
    assert!(a_records(&platform, &format!("{platform_host}.")).is_empty());
    assert_eq!(a_records(&platform, &format!("neighbour.{}.", names.platform_zone)), ["192.0.2.1"]);
    let registry = workspace.registry().await;
    assert!(registry.list_domains().await.unwrap().is_empty());
    let volume = format!("atrium-{}-web-data", names.tenant);
    docker(&["volume", "rm", &volume, &format!("atrium-{}-other-data", names.tenant)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_domain_inputs_fail_at_plan_naming_the_attribute() {
    let names = Names::new("dombad");
    let _platform = TestZone::create(&names.platform_zone);
    let workspace = Workspace::new("domain_bad_input", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example_with_test_services(&names.platform_zone));
    let resource = names.example();
    let platform_host = names.platform_host();
    let cases = [
        (
            platform_host.clone(),
            "Invalid hostname".to_owned(),
            "erp_1.example.com".to_owned(),
            "full lowercase host name",
        ),
        (
            platform_host.clone(),
            "Hostname does not fit the platform zone".to_owned(),
            format!("a.b.{}", names.platform_zone),
            "one label deep",
        ),
        (
            platform_host.clone(),
            "Hostname does not fit the platform zone".to_owned(),
            names.platform_zone.clone(),
            "the platform zone itself",
        ),
    ];
    for (good, summary, bad, hint) in cases {
        workspace.write("main.tf", &resource.replace(&good, &bad));
        let run = workspace.plan(true).expect_code(1, &format!("plan with hostname {bad}"));
        let output = run.flat_output();
        assert!(output.contains(&summary), "{summary} missing:\n{output}");
        assert!(output.contains(hint), "{hint} missing:\n{output}");
        assert!(output.contains("hostname"), "the attribute is named:\n{output}");
    }
    workspace.write(
        "main.tf",
        &resource.replace("hostname        = \"", "tls             = \"letsencrypt\"\n  hostname        = \""),
    );
    let output = workspace.plan(true).expect_code(1, "plan with a bad tls").flat_output();
    assert!(output.contains("Invalid TLS mode") && output.contains("\"acme\""), "{output}");
    let registry = workspace.registry().await;
    assert!(registry.list_domains().await.unwrap().is_empty(), "nothing was created");

    // A hostname another tenant already has is refused at plan, once the instance is known.
    let start = resource.find("# The customer's own domain").unwrap();
    let platform_only =
        resource[..start].replacen("hostname        = \"", "tls             = \"none\"\n  hostname        = \"", 1);
    let other_tenant = format!("{}-b", names.tenant);
    let second = format!(
        "{platform_only}\nresource \"atrium_tenant\" \"other\" {{\n  name         = \"{other_tenant}\"\n  display_name = \"Other\"\n  tier         = \"basic\"\n  manager = {{\n    email = \"it@other.example\"\n    name  = \"Other\"\n  }}\n}}\n\nresource \"atrium_app_instance\" \"other\" {{\n  tenant_id = atrium_tenant.other.id\n  name      = \"web\"\n  app       = \"hello\"\n  target    = \"lyon-onprem\"\n  users     = 5\n}}\n"
    );
    workspace.write("main.tf", &second);
    workspace.apply();
    let claim = format!(
        "{second}\nresource \"atrium_domain\" \"claim\" {{\n  app_instance_id = atrium_app_instance.other.id\n  tls             = \"none\"\n  hostname        = \"{platform_host}\"\n}}\n"
    );
    workspace.write("main.tf", &claim);
    let output = workspace.plan(true).expect_code(1, "plan claiming another tenant's hostname").flat_output();
    assert!(output.contains("Hostname already in use") && output.contains(&names.tenant), "{output}");
    workspace.write("main.tf", &second);
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    for tenant in [&names.tenant, &other_tenant] {
        docker(&["volume", "rm", &format!("atrium-{tenant}-web-data")]);
    }
}
