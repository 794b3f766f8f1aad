//! Integration tests: domains on the real PowerDNS, Caddy and Pebble that
//! `scripts/services.sh` starts, in front of `hello` instances on the real
//! Docker engine.

use std::collections::BTreeMap;
use std::time::Duration;

use atrium_engine::apply::app_instance::AppContext;
use atrium_engine::apply::domain::{DomainApplyContext, DomainApplyError};
use atrium_engine::apply::platform_certificate::PlatformCertificate;
use atrium_engine::backends::acme::AcmeSettings;
use atrium_engine::backends::dns::DnsZones;
use atrium_engine::backends::powerdns::PowerDns;
use atrium_engine::backends::resolver::DnsResolver;
use atrium_engine::backends::targets::Targets;
use atrium_engine::catalog::Catalog;
use atrium_engine::model::domain::{DomainSpec, DomainStatus, Hostname, TlsMode, verification_for};
use atrium_engine::observe::{AppObservations, DomainObservations};
use atrium_engine::registry::Registry;
use atrium_engine::test_services::{hello_spec, registry_with_tenant, service_variable, test_target};

struct Fixture {
    _directory: tempfile::TempDir,
    registry: Registry,
    catalog: Catalog,
    targets: Targets,
    app_observations: AppObservations,
    domain_observations: DomainObservations,
    dns: PowerDns,
    resolver: DnsResolver,
    tenant: String,
    zone: String,
}

/// One call to the PowerDNS API with reqwest: (status, body).
async fn powerdns(method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> (u16, String) {
    let url = format!("{}/api/v1/servers/localhost{path}", service_variable("ATRIUM_TEST_PDNS_URL"));
    let mut request =
        reqwest::Client::new().request(method, url).header("X-API-Key", service_variable("ATRIUM_TEST_PDNS_API_KEY"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("PowerDNS answers");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

impl Fixture {
    async fn new(short_name: &str) -> Fixture {
        let directory = tempfile::tempdir().unwrap();
        let id = std::process::id() % 100_000;
        let tenant = format!("{short_name}-{id}");
        let zone = format!("{short_name}{id}.atrium.test");
        let body =
            serde_json::json!({"name": format!("{zone}."), "kind": "Native", "nameservers": ["ns1.atrium.test."]});
        let (status, answer) = powerdns(reqwest::Method::POST, "/zones", Some(body)).await;
        assert!(status == 201 || status == 409, "create zone: {status} {answer}");
        let registry = registry_with_tenant(directory.path(), &tenant).await;
        let targets = Targets::new(BTreeMap::from([("local".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST"))]));
        Fixture {
            _directory: directory,
            registry,
            catalog: Catalog::built_in(),
            targets,
            app_observations: AppObservations::default(),
            domain_observations: DomainObservations::default(),
            dns: PowerDns::new(
                &service_variable("ATRIUM_TEST_PDNS_URL"),
                &service_variable("ATRIUM_TEST_PDNS_API_KEY"),
                "localhost",
            ),
            resolver: DnsResolver::new(Some(&service_variable("ATRIUM_TEST_PDNS_DNS_ADDRESS"))).unwrap(),
            tenant,
            zone,
        }
    }

    fn apps(&self) -> AppContext<'_> {
        let (_, cancelled) = tokio::sync::watch::channel(false);
        AppContext {
            registry: &self.registry,
            observations: &self.app_observations,
            catalog: &self.catalog,
            targets: &self.targets,
            mailer: None,
            platform_dns: None,
            owner: atrium_engine::test_services::test_owner(),
            deadline: Duration::from_secs(30),
            cancelled,
        }
    }

    fn domains(&self, deadline: Duration) -> DomainApplyContext<'_> {
        self.domains_with(deadline, None)
    }

    /// Domains served by the platform zone's wildcard `certificate`, when given.
    fn domains_with<'a>(
        &'a self,
        deadline: Duration,
        certificate: Option<&'a PlatformCertificate>,
    ) -> DomainApplyContext<'a> {
        let (_, cancelled) = tokio::sync::watch::channel(false);
        DomainApplyContext {
            registry: &self.registry,
            observations: &self.domain_observations,
            targets: &self.targets,
            dns: Some(&self.dns as &dyn DnsZones),
            resolver: &self.resolver,
            platform_zone: Some(&self.zone),
            platform_certificate: certificate,
            owner: atrium_engine::test_services::test_owner(),
            deadline,
            cancelled,
        }
    }

    fn spec(&self, hostname: &str, tls: TlsMode) -> DomainSpec {
        DomainSpec {
            hostname: Hostname::parse(hostname).unwrap(),
            app_instance_id: hello_spec(&self.tenant, "1.0").id,
            tls,
        }
    }

    async fn caddy_route_ids(&self) -> Vec<String> {
        let url = format!("{}/config/apps/http/servers", service_variable("ATRIUM_TEST_CADDY_ADMIN_URL"));
        let servers: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        let mut ids: Vec<String> = servers
            .as_object()
            .into_iter()
            .flat_map(|servers| servers.values())
            .flat_map(|server| server["routes"].as_array().cloned().unwrap_or_default())
            .filter_map(|route| route["@id"].as_str().map(str::to_owned))
            .filter(|id| id.contains(&self.zone) || id.contains(&self.tenant))
            .collect();
        ids.sort();
        ids
    }

    /// The zone's wildcard certificate from the test ACME CA (Pebble).
    fn platform_certificate(&self) -> PlatformCertificate {
        let settings = AcmeSettings {
            directory_url: service_variable("ATRIUM_TEST_ACME_DIRECTORY"),
            trusted_roots_file: Some(service_variable("ATRIUM_TEST_ACME_CA_FILE").into()),
            contact_email: Some("ops@example.net".to_owned()),
        };
        PlatformCertificate::new(settings, &self.zone)
    }

    /// Takes the zone's wildcard out of the shared Caddy again.
    async fn unload_platform_certificate(&self) {
        let admin = service_variable("ATRIUM_TEST_CADDY_ADMIN_URL");
        let url = format!("{admin}/config/apps/tls/certificates/load_pem");
        let loaded: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        let tag = format!("atrium-platform-{}", self.zone);
        let entries = loaded.as_array().cloned().unwrap_or_default();
        for (index, entry) in entries.iter().enumerate().rev() {
            if entry["tags"].as_array().is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag.as_str()))) {
                let response = reqwest::Client::new().delete(format!("{url}/{index}")).send().await.unwrap();
                assert!(response.status().is_success(), "unload: {}", response.status());
            }
        }
    }

    async fn drop_zone(&self) {
        let _ = powerdns(reqwest::Method::DELETE, &format!("/zones/{}.", self.zone), None).await;
    }
}

/// Sends `request` until it gets an answer: another test's config change
/// reloads Caddy, which resets connections, so a reset request is sent
/// again (20 times at most).
async fn send_past_reloads(request: impl Fn() -> reqwest::RequestBuilder) -> reqwest::Response {
    let mut attempts = 0;
    loop {
        match request().send().await {
            Ok(response) => return response,
            Err(error) if error.is_connect() && attempts < 20 => attempts += 1,
            Err(error) => panic!("request to the test Caddy: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A plain HTTP GET through the test Caddy with a Host header: (status, body).
async fn through_caddy(hostname: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{}/", service_variable("ATRIUM_TEST_CADDY_HTTP_PORT"));
    let client = reqwest::Client::new();
    let response = send_past_reloads(|| client.get(&url).header("Host", hostname)).await;
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_follow_their_app_instance_through_an_upgrade() {
    let fixture = Fixture::new("follow").await;
    let apps = fixture.apps();
    apps.deploy(&hello_spec(&fixture.tenant, "1.0"), None, None).await.unwrap();
    let hostname = format!("web.{}", fixture.zone);
    let domains = fixture.domains(Duration::from_secs(30));
    let record = domains.apply(&fixture.spec(&hostname, TlsMode::None), DomainStatus::Active, None).await.unwrap();
    assert_eq!(record.status, DomainStatus::Active);
    assert!(through_caddy(&hostname).await.1.contains("hello 1.0"));

    // The upgrade switches the route to the new container before the old one goes.
    apps.deploy(&hello_spec(&fixture.tenant, "1.1"), None, None).await.unwrap();
    assert!(through_caddy(&hostname).await.1.contains("hello 1.1"));
    let observed = domains.observe(&record.spec.hostname).await.unwrap().unwrap();
    assert_eq!(observed.status, "active");

    domains.destroy(&record.spec.hostname).await.unwrap();
    assert_eq!(through_caddy(&hostname).await.0, 404);
    assert!(fixture.caddy_route_ids().await.is_empty());
    apps.destroy(&hello_spec(&fixture.tenant, "1.1").id).await.unwrap();
    fixture.drop_zone().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_custom_domain_create_leaves_no_route_or_row() {
    let fixture = Fixture::new("undo").await;
    let apps = fixture.apps();
    apps.deploy(&hello_spec(&fixture.tenant, "1.0"), None, None).await.unwrap();
    // A custom domain whose verification record is published but whose name
    // points nowhere: the ACME CA cannot validate it, so no certificate comes.
    let customer_zone = format!("{}-customer.test", fixture.tenant);
    let body =
        serde_json::json!({"name": format!("{customer_zone}."), "kind": "Native", "nameservers": ["ns1.atrium.test."]});
    powerdns(reqwest::Method::POST, "/zones", Some(body)).await;
    let hostname = Hostname::parse(&format!("shop.{customer_zone}")).unwrap();
    let verification = verification_for(&fixture.tenant, &hostname);
    let publish = serde_json::json!({"rrsets": [{"name": format!("{}.", verification.name), "type": "TXT", "ttl": 60,
        "changetype": "REPLACE", "records": [{"content": format!("\"{}\"", verification.value), "disabled": false}]}]});
    let (status, answer) = powerdns(reqwest::Method::PATCH, &format!("/zones/{customer_zone}."), Some(publish)).await;
    assert_eq!(status, 204, "{answer}");

    let domains = fixture.domains(Duration::from_secs(6));
    let spec = fixture.spec(hostname.as_str(), TlsMode::Acme);
    let error = domains.apply(&spec, DomainStatus::Active, None).await.unwrap_err();
    assert!(matches!(error, DomainApplyError::CertificateTimeout { .. }), "{error}");
    assert!(fixture.registry.get_domain(&hostname).await.unwrap().is_none(), "the row was undone");
    assert!(fixture.caddy_route_ids().await.is_empty(), "the route was undone");

    // Without the verification record, going live is refused before anything is touched.
    let unverified = fixture.spec(&format!("other.{customer_zone}"), TlsMode::None);
    let error = domains.apply(&unverified, DomainStatus::Active, None).await.unwrap_err();
    assert!(matches!(error, DomainApplyError::VerificationMissing { .. }), "{error}");
    // Pending is fine: the row exists, no route.
    let pending = domains.apply(&unverified, DomainStatus::PendingVerification, None).await.unwrap();
    assert_eq!(pending.status, DomainStatus::PendingVerification);
    assert!(fixture.caddy_route_ids().await.is_empty());
    domains.destroy(&unverified.hostname).await.unwrap();
    assert!(fixture.registry.list_domains().await.unwrap().is_empty());

    apps.destroy(&hello_spec(&fixture.tenant, "1.0").id).await.unwrap();
    let _ = powerdns(reqwest::Method::DELETE, &format!("/zones/{customer_zone}."), None).await;
    fixture.drop_zone().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_platform_create_leaves_no_route_record_claim_or_row() {
    let mut fixture = Fixture::new("undop").await;
    // The platform record points at an address where no proxy answers, so
    // the ACME CA cannot validate the name and no certificate comes.
    let mut target = test_target("ATRIUM_TEST_DOCKER_HOST");
    target.public_address = Some("127.0.0.2".to_owned());
    fixture.targets = Targets::new(BTreeMap::from([("local".to_owned(), target)]));
    fixture.apps().deploy(&hello_spec(&fixture.tenant, "1.0"), None, None).await.unwrap();
    let hostname = Hostname::parse(&format!("shop.{}", fixture.zone)).unwrap();
    let spec = fixture.spec(hostname.as_str(), TlsMode::Acme);
    let token = atrium_engine::model::ownership::CreateToken::new();
    let error =
        fixture.domains(Duration::from_secs(6)).apply(&spec, DomainStatus::Active, Some(&token)).await.unwrap_err();
    assert!(matches!(error, DomainApplyError::CertificateTimeout { .. }), "{error}");
    assert!(fixture.registry.get_domain(&hostname).await.unwrap().is_none(), "the row was undone");
    assert!(fixture.caddy_route_ids().await.is_empty(), "the route was undone");
    let (status, zone) = powerdns(reqwest::Method::GET, &format!("/zones/{}.", fixture.zone), None).await;
    assert_eq!(status, 200, "{zone}");
    assert!(!zone.contains(&format!("{hostname}.")), "the platform record was undone: {zone}");
    let claim =
        fixture.registry.get_claim(atrium_engine::model::ownership::ObjectKind::Domain, hostname.as_str()).await;
    assert_eq!(claim.unwrap(), None, "the name is free again");
    fixture.apps().destroy(&hello_spec(&fixture.tenant, "1.0").id).await.unwrap();
    fixture.drop_zone().await;
}

/// An HTTPS GET through the test Caddy, verified against the test CA's
/// issuing root: (body, the DNS names of the certificate served).
async fn https_through_caddy(hostname: &str) -> (String, Vec<String>) {
    let port: u16 = service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT").parse().unwrap();
    let root = std::fs::read(service_variable("ATRIUM_TEST_ACME_ROOT_FILE")).unwrap();
    let client = reqwest::Client::builder()
        .resolve(hostname, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
        .tls_info(true)
        .build()
        .unwrap();
    let url = format!("https://{hostname}:{port}/");
    let response = send_past_reloads(|| client.get(&url)).await;
    let leaf = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .map(<[u8]>::to_vec)
        .expect("the server sent a certificate");
    let (_, certificate) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let names = certificate
        .subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(name) => Some((*name).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    (response.text().await.unwrap(), names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_subdomains_share_one_wildcard_certificate_obtained_by_dns_01() {
    let fixture = Fixture::new("wild").await;
    let apps = fixture.apps();
    apps.deploy(&hello_spec(&fixture.tenant, "1.0"), None, None).await.unwrap();
    let certificate = fixture.platform_certificate();
    let domains = fixture.domains_with(Duration::from_secs(60), Some(&certificate));
    let hostnames: Vec<String> = ["a", "b", "c", "d"].iter().map(|label| format!("{label}.{}", fixture.zone)).collect();
    let specs: Vec<DomainSpec> = hostnames.iter().map(|hostname| fixture.spec(hostname, TlsMode::Acme)).collect();
    let records =
        futures_util::future::join_all(specs.iter().map(|spec| domains.apply(spec, DomainStatus::Active, None))).await;
    let stored = fixture.registry.get_platform_certificate(&fixture.zone).await.unwrap().expect("stored");
    for record in records {
        let record = record.unwrap();
        assert_eq!(record.certificate_expires_at.as_deref(), Some(stored.not_after.as_str()));
    }
    // Four subdomains, one order: every name is served the wildcard, checked
    // against the CA's root, and the challenge record is gone again.
    assert_eq!(certificate.orders(), 1);
    let wildcard = format!("*.{}", fixture.zone);
    for hostname in &hostnames {
        let (body, names) = https_through_caddy(hostname).await;
        assert!(body.contains("hello 1.0"), "{hostname}: {body}");
        assert_eq!(names, std::slice::from_ref(&wildcard), "{hostname}");
    }
    let records = fixture.dns.list(&format!("{}.", fixture.zone)).await.unwrap();
    assert!(!records.iter().any(|set| set.name.starts_with("_acme-challenge")), "{records:?}");

    // Another process (the CLI beside Terraform) finds it in the registry and orders nothing.
    let second = fixture.platform_certificate();
    let other = fixture.domains_with(Duration::from_secs(60), Some(&second));
    let hostname = format!("e.{}", fixture.zone);
    other.apply(&fixture.spec(&hostname, TlsMode::Acme), DomainStatus::Active, None).await.unwrap();
    assert_eq!(second.orders(), 0);
    assert_eq!(https_through_caddy(&hostname).await.1, [wildcard]);

    for hostname in hostnames.iter().chain([&hostname]) {
        domains.destroy(&Hostname::parse(hostname).unwrap()).await.unwrap();
    }
    assert!(fixture.caddy_route_ids().await.is_empty());
    apps.destroy(&hello_spec(&fixture.tenant, "1.0").id).await.unwrap();
    fixture.unload_platform_certificate().await;
    fixture.drop_zone().await;
}

/// Puts a self-signed wildcard for the fixture's zone with 10 of its 90
/// days left in the registry, as if an earlier apply had stored it then.
async fn store_aging_wildcard(fixture: &Fixture) -> atrium_engine::registry::PlatformCertificateRecord {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![format!("*.{}", fixture.zone)]).unwrap();
    params.not_before = now - time::Duration::days(80);
    params.not_after = now + time::Duration::days(10);
    let old = params.self_signed(&key).unwrap();
    let format = |moment: time::OffsetDateTime| moment.format(&time::format_description::well_known::Rfc3339).unwrap();
    let aging = atrium_engine::registry::PlatformCertificateRecord {
        zone: fixture.zone.clone(),
        certificate_pem: old.pem(),
        key_pem: key.serialize_pem(),
        not_before: format(params.not_before),
        not_after: format(params.not_after),
        obtained_at: format(params.not_before),
    };
    fixture.registry.delete_platform_certificate(&fixture.zone).await.unwrap();
    assert_eq!(fixture.registry.put_platform_certificate(&aging).await.unwrap(), aging);
    aging
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_certificate_with_a_third_of_its_life_left_is_renewed_and_reloaded() {
    let fixture = Fixture::new("renew").await;
    let apps = fixture.apps();
    apps.deploy(&hello_spec(&fixture.tenant, "1.0"), None, None).await.unwrap();
    let hostname = format!("web.{}", fixture.zone);
    let spec = fixture.spec(&hostname, TlsMode::Acme);
    let wildcard = format!("*.{}", fixture.zone);

    // A create finds it due: renewed before the route is written.
    let aging = store_aging_wildcard(&fixture).await;
    let certificate = fixture.platform_certificate();
    let domains = fixture.domains_with(Duration::from_secs(60), Some(&certificate));
    let record = domains.apply(&spec, DomainStatus::Active, None).await.unwrap();
    assert_eq!(certificate.orders(), 1);
    let renewed = fixture.registry.get_platform_certificate(&fixture.zone).await.unwrap().unwrap();
    assert!(renewed.not_after > aging.not_after, "{renewed:?}");
    assert_eq!(record.certificate_expires_at.as_deref(), Some(renewed.not_after.as_str()));
    // Caddy serves the renewed one, which the CA's root verifies (the old one was self-signed).
    let (body, names) = https_through_caddy(&hostname).await;
    assert!(body.contains("hello 1.0"));
    assert_eq!(names, std::slice::from_ref(&wildcard));

    // A live domain whose wildcard falls due shows it (so a plan shows an
    // update), and the next apply renews and reloads it.
    store_aging_wildcard(&fixture).await;
    let later = fixture.platform_certificate();
    let domains = fixture.domains_with(Duration::from_secs(60), Some(&later));
    assert_eq!(domains.observe(&record.spec.hostname).await.unwrap().unwrap().status, "renewal_due");
    domains.apply(&spec, DomainStatus::Active, None).await.unwrap();
    assert_eq!(later.orders(), 1);
    let again = fixture.registry.get_platform_certificate(&fixture.zone).await.unwrap().unwrap();
    assert!(again.not_after > aging.not_after && again.certificate_pem != renewed.certificate_pem);
    let observed = domains.observe(&record.spec.hostname).await.unwrap().unwrap();
    assert_eq!((observed.status, observed.certificate_expires_at), ("active", Some(again.not_after.clone())));
    assert_eq!(https_through_caddy(&hostname).await.1, [wildcard]);

    // The CA down while the certificate falls due: it still serves, so the
    // domain applies with it, and the process does not retry each time.
    let aging = store_aging_wildcard(&fixture).await;
    let down = PlatformCertificate::new(unreachable_ca(), &fixture.zone);
    let domains = fixture.domains_with(Duration::from_secs(20), Some(&down));
    let other = fixture.spec(&format!("www.{}", fixture.zone), TlsMode::Acme);
    for spec in [&spec, &other] {
        let applied = domains.apply(spec, DomainStatus::Active, None).await.unwrap();
        assert_eq!(applied.certificate_expires_at.as_deref(), Some(aging.not_after.as_str()));
    }
    assert_eq!(down.orders(), 0);
    assert_eq!(fixture.registry.get_platform_certificate(&fixture.zone).await.unwrap(), Some(aging));
    assert_eq!(domains.observe(&record.spec.hostname).await.unwrap().unwrap().status, "renewal_due");

    domains.destroy(&record.spec.hostname).await.unwrap();
    domains.destroy(&other.hostname).await.unwrap();
    apps.destroy(&hello_spec(&fixture.tenant, "1.0").id).await.unwrap();
    fixture.unload_platform_certificate().await;
    fixture.drop_zone().await;
}

/// An ACME directory where nothing listens.
fn unreachable_ca() -> AcmeSettings {
    AcmeSettings {
        directory_url: "https://127.0.0.1:9/dir".to_owned(),
        trusted_roots_file: Some(service_variable("ATRIUM_TEST_ACME_CA_FILE").into()),
        contact_email: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_acme_ca_fails_a_platform_subdomain_before_anything_is_made() {
    let fixture = Fixture::new("noca").await;
    let apps = fixture.apps();
    apps.deploy(&hello_spec(&fixture.tenant, "1.0"), None, None).await.unwrap();
    let certificate = PlatformCertificate::new(unreachable_ca(), &fixture.zone);
    let domains = fixture.domains_with(Duration::from_secs(10), Some(&certificate));
    let hostname = format!("web.{}", fixture.zone);
    let error = domains.apply(&fixture.spec(&hostname, TlsMode::Acme), DomainStatus::Active, None).await.unwrap_err();
    assert!(matches!(error, DomainApplyError::PlatformCertificate { .. }), "{error:?}");
    let text = atrium_engine::backends::error_chain(&error);
    assert!(text.contains(&format!("*.{}", fixture.zone)) && text.contains("127.0.0.1:9"), "{text}");
    assert!(fixture.registry.get_domain(&Hostname::parse(&hostname).unwrap()).await.unwrap().is_none());
    assert!(fixture.caddy_route_ids().await.is_empty());
    assert!(fixture.registry.get_platform_certificate(&fixture.zone).await.unwrap().is_none());
    apps.destroy(&hello_spec(&fixture.tenant, "1.0").id).await.unwrap();
    fixture.drop_zone().await;
}
