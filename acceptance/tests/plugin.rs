//! The plugin contract with the real binary and the real terraform CLI:
//! schema descriptions, the magic cookie, required client certificates and
//! debug (reattach) mode.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use atrium_acceptance::{RegistryChoice, Workspace, example, provider_binary, provider_example};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

fn walk_attributes(block: &serde_json::Value, path: &str, missing: &mut Vec<String>, count: &mut usize) {
    let attributes = block.get("attributes").and_then(|a| a.as_object());
    for (name, attribute) in attributes.into_iter().flatten() {
        *count += 1;
        let here = format!("{path}.{name}");
        if attribute["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
            missing.push(here.clone());
        }
        if let Some(nested) = attribute.get("nested_type") {
            walk_attributes(nested, &here, missing, count);
        }
    }
}

#[tokio::test]
async fn providers_schema_json_describes_every_attribute() {
    let workspace = Workspace::new("schema_json", RegistryChoice::Sqlite).await;
    workspace.write("provider.tf", &provider_example());
    workspace.write("main.tf", &example("resources/atrium_tenant/resource.tf"));
    let run = workspace.terraform(&["providers", "schema", "-json"]).expect_code(0, "providers schema -json");
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let provider = &schema["provider_schemas"]["registry.terraform.io/atrium-hosting/atrium"];
    let mut missing = Vec::new();
    let mut count = 0;
    walk_attributes(&provider["provider"]["block"], "provider", &mut missing, &mut count);
    let resources = provider["resource_schemas"].as_object().expect("resource schemas");
    assert!(
        resources.contains_key("atrium_tenant") && resources.contains_key("atrium_app_instance"),
        "{:?}",
        resources.keys()
    );
    for (type_name, resource) in resources {
        walk_attributes(&resource["block"], type_name, &mut missing, &mut count);
    }
    let tenant = &provider["resource_schemas"]["atrium_tenant"]["block"];
    assert!(missing.is_empty(), "attributes without a description: {missing:?}");
    assert!(count >= 25, "only {count} attributes seen");
    assert_eq!(tenant["attributes"]["dns"], serde_json::Value::Null);
    assert_eq!(
        provider["provider"]["block"]["attributes"]["dns"]["nested_type"]["attributes"]["api_key"]["sensitive"],
        true
    );
}

#[test]
fn running_the_binary_by_hand_explains_itself() {
    let output = Command::new(provider_binary()).env_remove("TF_PLUGIN_MAGIC_COOKIE").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("This binary is a plugin"), "{stderr}");
    assert!(stderr.contains("--debug"), "{stderr}");
}

struct Plugin {
    child: Child,
    socket: String,
    server_certificate: Vec<u8>,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_plugin(client_certificate_pem: &str) -> Plugin {
    let mut child = Command::new(provider_binary())
        .env("TF_PLUGIN_MAGIC_COOKIE", "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2")
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env("PLUGIN_CLIENT_CERT", client_certificate_pem)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let parts: Vec<&str> = line.trim().split('|').collect();
    assert_eq!(&parts[..3], ["1", "6", "unix"], "handshake line {line:?}");
    assert_eq!(parts[4], "grpc");
    use base64::Engine as _;
    let server_certificate =
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(parts[5]).expect("raw std base64 certificate");
    Plugin { child, socket: parts[3].to_owned(), server_certificate }
}

fn self_signed() -> (rcgen::Certificate, rcgen::KeyPair) {
    // Terraform's go-plugin uses ECDSA P-521 client certificates.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    (params.self_signed(&key).unwrap(), key)
}

/// Completes a TLS handshake with the plugin and makes one read, which
/// surfaces a rejected client certificate (TLS 1.3 reports it after the handshake).
async fn connect(plugin: &Plugin, client: Option<(&rcgen::Certificate, &rcgen::KeyPair)>) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(plugin.server_certificate.clone())).map_err(|e| e.to_string())?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((certificate, key)) => builder
            .with_client_auth_cert(
                vec![certificate.der().clone()],
                PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?,
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let stream = tokio::net::UnixStream::connect(&plugin.socket).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls =
        connector.connect(ServerName::try_from("localhost").unwrap(), stream).await.map_err(|e| e.to_string())?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The HTTP/2 preface; a server that accepted us answers with its SETTINGS frame.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .map_err(|e| e.to_string())?;
    let mut buffer = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut buffer))
        .await
        .map_err(|_| "no answer".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[tokio::test]
async fn plugin_requires_terraforms_client_certificate() {
    let (terraform_certificate, terraform_key) = self_signed();
    let plugin = start_plugin(&terraform_certificate.pem());
    connect(&plugin, Some((&terraform_certificate, &terraform_key)))
        .await
        .expect("Terraform's certificate is accepted");
    let refused_without = connect(&plugin, None).await;
    assert!(refused_without.is_err(), "a client without a certificate was served");
    let (other_certificate, other_key) = self_signed();
    let refused_other = connect(&plugin, Some((&other_certificate, &other_key))).await;
    assert!(refused_other.is_err(), "a client with another certificate was served");
}

#[tokio::test]
async fn debug_mode_prints_a_reattach_value_terraform_can_use() {
    // A provider in debug mode reads its environment itself, not Terraform's:
    // it gets the test's own registry, never one in the working directory.
    let workspace = Workspace::new("debug_mode", RegistryChoice::Sqlite).await;
    let mut child = Command::new(provider_binary())
        .arg("--debug")
        .env("ATRIUM_REGISTRY_URL", &workspace.registry_url)
        .env("ATRIUM_DNS_API_KEY", atrium_engine::test_services::service_variable("ATRIUM_TEST_PDNS_API_KEY"))
        .env("ATRIUM_TRACKER_API_KEY", atrium_engine::test_services::service_variable("ATRIUM_TEST_REDMINE_API_KEY"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut reattach = None;
    for _ in 0..10 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(value) = line.trim().strip_prefix("TF_REATTACH_PROVIDERS='") {
            reattach = Some(value.trim_end_matches('\'').to_owned());
            break;
        }
    }
    let reattach = reattach.expect("debug mode prints TF_REATTACH_PROVIDERS");
    workspace.write("provider.tf", &provider_example());
    workspace.write("main.tf", &example("resources/atrium_tenant/resource.tf"));
    let output = workspace
        .command(&["apply", "-auto-approve", "-no-color"])
        .env("TF_REATTACH_PROVIDERS", &reattach)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("1 added"), "{stdout}");
    // The same long-lived process serves a second command.
    let output = workspace
        .command(&["plan", "-detailed-exitcode", "-no-color"])
        .env("TF_REATTACH_PROVIDERS", &reattach)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
    // SAFETY: signalling the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "debug mode stops cleanly on Ctrl-C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_plans_or_state() {
    let id = std::process::id();
    let zone_name = format!("secret{id}.atrium.test");
    let zone = atrium_acceptance::TestZone::create(&zone_name);
    let workspace = Workspace::new("secrets_in_logs", RegistryChoice::Postgres).await;
    // The test PostgreSQL trusts every login, so a password in the URL is accepted and ignored.
    let url_with_password =
        workspace.registry_url.replacen("postgres://postgres@", "postgres://postgres:hunter2-registry@", 1);
    assert_ne!(url_with_password, workspace.registry_url);
    let dns_key = atrium_engine::test_services::service_variable("ATRIUM_TEST_PDNS_API_KEY");
    let smtp_password = "smtp-pa55word-never-shown";
    // The secrets come from the environment, as the examples advise: a literal
    // in a .tf file is part of every plan file, whatever the schema says.
    let provider =
        atrium_acceptance::with_test_smtp(&atrium_acceptance::provider_example_with_test_services(&zone_name))
            .replace("    from = ", "    username = \"relay-user\"\n    from = ");
    assert!(!provider.contains(&dns_key) && !provider.contains(smtp_password), "{provider}");
    workspace.write("provider.tf", &provider);
    let with_secrets = |arguments: &[&str]| {
        let mut command = workspace.command(arguments);
        command
            .env("ATRIUM_REGISTRY_URL", &url_with_password)
            .env("ATRIUM_DNS_API_KEY", &dns_key)
            .env("ATRIUM_SMTP_PASSWORD", smtp_password);
        command
    };
    let tenant = format!("secret-{id}");
    let config = format!(
        "resource \"atrium_tenant\" \"acme\" {{\n  name         = \"{tenant}\"\n  display_name = \"ACME\"\n  tier         = \"basic\"\n  manager = {{\n    email = \"it@{tenant}.example\"\n    name  = \"Dana\"\n  }}\n}}\nresource \"atrium_app_instance\" \"web\" {{\n  tenant_id = atrium_tenant.acme.id\n  name      = \"web\"\n  app       = \"hello\"\n  target    = \"lyon-onprem\"\n  users     = 5\n}}\nresource \"atrium_domain\" \"web\" {{\n  app_instance_id = atrium_app_instance.web.id\n  hostname        = \"web.{zone_name}\"\n  tls             = \"none\"\n}}\n"
    );
    workspace.write("main.tf", &config);
    // Every secret is used for real: the registry, PowerDNS (the record), the
    // SMTP relay (which does not offer AUTH here, so the welcome email is a warning).
    let output = with_secrets(&["apply", "-auto-approve", "-no-color"]).env("TF_LOG", "trace").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        zone.record_sets().iter().any(|set| set["name"] == format!("web.{zone_name}.")),
        "the DNS key was used: the record exists"
    );
    assert!(stdout.contains("Welcome email not sent"), "the SMTP relay was tried: {stdout}");
    let provider_lines: Vec<&str> =
        stderr.lines().filter(|l| l.contains("provider.terraform-provider-atrium")).collect();
    assert!(!provider_lines.is_empty(), "no provider log lines at TF_LOG=trace");
    // A saved plan and its JSON, and the state.
    workspace.write("main.tf", &config.replace("\"ACME\"", "\"ACME GmbH\""));
    let planned = with_secrets(&["plan", "-out=change.tfplan", "-input=false", "-no-color"]).output().unwrap();
    assert!(planned.status.success(), "{}", String::from_utf8_lossy(&planned.stderr));
    let shown = with_secrets(&["show", "-json", "change.tfplan"]).output().unwrap();
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let plan_json = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(plan_json.contains("ACME GmbH"), "the plan holds the change: {plan_json}");
    let state = workspace.read("terraform.tfstate");
    for secret in ["hunter2-registry", dns_key.as_str(), smtp_password] {
        assert!(!provider_lines.iter().any(|l| l.contains(secret)), "{secret} appears in a provider log line");
        assert!(!stdout.contains(secret), "{secret} appears in the apply output");
        if let Some(at) = plan_json.find(secret) {
            let context = &plan_json[at.saturating_sub(300)..(at + 100).min(plan_json.len())];
            panic!("{secret} appears in terraform show -json of a plan: …{context}…");
        }
        assert!(!state.contains(secret), "{secret} appears in the state");
    }
    let destroyed = with_secrets(&["destroy", "-auto-approve", "-input=false"]).output().unwrap();
    assert!(destroyed.status.success(), "{}", String::from_utf8_lossy(&destroyed.stderr));
}

#[test]
fn sigterm_stops_the_provider_and_removes_its_socket() {
    let (certificate, _) = self_signed();
    let mut plugin = start_plugin(&certificate.pem());
    assert!(std::path::Path::new(&plugin.socket).exists(), "the socket {} exists while serving", plugin.socket);
    // SAFETY: signalling the child we started.
    assert_eq!(unsafe { libc::kill(plugin.child.id() as i32, libc::SIGTERM) }, 0);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = plugin.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the provider still runs 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the provider exits cleanly on SIGTERM: {status:?}");
    assert!(!std::path::Path::new(&plugin.socket).exists(), "the socket {} is removed", plugin.socket);
}
