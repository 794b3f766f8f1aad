//! Integration tests: domains on the real PowerDNS, Caddy and Pebble that
//! `scripts/services.sh` starts, in front of `hello` instances on the real
//! Docker engine.

use std::collections::BTreeMap;
use std::time::Duration;

use atrium_engine::apply::app_instance::AppContext;
use atrium_engine::apply::domain::{DomainApplyContext, DomainApplyError};
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
            owner: atrium_engine::test_services::test_owner(),
            deadline: Duration::from_secs(30),
            cancelled,
        }
    }

    fn domains(&self, deadline: Duration) -> DomainApplyContext<'_> {
        let (_, cancelled) = tokio::sync::watch::channel(false);
        DomainApplyContext {
            registry: &self.registry,
            observations: &self.domain_observations,
            targets: &self.targets,
            dns: Some(&self.dns as &dyn DnsZones),
            resolver: &self.resolver,
            platform_zone: Some(&self.zone),
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

    async fn drop_zone(&self) {
        let _ = powerdns(reqwest::Method::DELETE, &format!("/zones/{}.", self.zone), None).await;
    }
}

/// A plain HTTP GET through the test Caddy with a Host header: (status, body).
async fn through_caddy(hostname: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{}/", service_variable("ATRIUM_TEST_CADDY_HTTP_PORT"));
    let response = reqwest::Client::new().get(url).header("Host", hostname).send().await.unwrap();
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
