//! Integration tests: the DNS role on the PowerDNS that `scripts/services.sh`
//! starts, and the resolver asking that PowerDNS over DNS. Each test creates a
//! zone of its own through the API and deletes it at the end (even when it
//! fails), so the tests run in parallel.

use std::net::IpAddr;
use std::time::Duration;

use atrium_engine::backends::dns::{DnsError, DnsZones, RecordSet};
use atrium_engine::backends::powerdns::PowerDns;
use atrium_engine::backends::resolver::DnsResolver;
use atrium_engine::test_services::service_variable;
use serde_json::json;

/// The test PowerDNS's API, called directly: to create and delete test zones,
/// and to make record sets that Atrium did not write.
#[derive(Clone)]
struct RawApi {
    client: reqwest::Client,
    zones_url: String,
    api_key: String,
}

impl RawApi {
    fn new() -> RawApi {
        RawApi {
            client: reqwest::Client::new(),
            zones_url: format!(
                "{}/api/v1/servers/{}/zones",
                service_variable("ATRIUM_TEST_PDNS_URL"),
                service_variable("ATRIUM_TEST_PDNS_SERVER_ID")
            ),
            api_key: service_variable("ATRIUM_TEST_PDNS_API_KEY"),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> (u16, String) {
        let mut request =
            self.client.request(method, format!("{}{path}", self.zones_url)).header("X-API-Key", &self.api_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the test PowerDNS answers");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }

    async fn delete_zone(&self, zone: &str) {
        let (status, body) = self.call(reqwest::Method::DELETE, &format!("/{zone}"), None).await;
        assert!(status == 204 || status == 404, "deleting test zone {zone}: HTTP {status} {body}");
    }
}

/// A zone that exists for one test, deleted when the test ends.
struct TestZone {
    name: String,
    api: RawApi,
}

impl TestZone {
    async fn create(case: &str) -> TestZone {
        let api = RawApi::new();
        let name = format!("t{}-{case}.test.", std::process::id());
        // A zone left by an earlier run whose process id this one reuses goes first.
        api.delete_zone(&name).await;
        let zone = json!({"name": name, "kind": "Native", "nameservers": ["ns1.atrium.test."]});
        let (status, body) = api.call(reqwest::Method::POST, "", Some(zone)).await;
        assert_eq!(status, 201, "creating test zone {name}: {body}");
        TestZone { name, api }
    }

    /// `label` inside this zone, absolute.
    fn name(&self, label: &str) -> String {
        format!("{label}.{}", self.name)
    }

    /// Writes a record set directly, without Atrium's comment, as an operator would.
    async fn put_unmarked(&self, name: &str, record_type: &str, content: &str) {
        let patch = json!({"rrsets": [{
            "name": name, "type": record_type, "ttl": 300, "changetype": "REPLACE",
            "records": [{"content": content, "disabled": false}],
            "comments": [{"content": "made by hand", "account": "ops"}],
        }]});
        let (status, body) = self.api.call(reqwest::Method::PATCH, &format!("/{}", self.name), Some(patch)).await;
        assert_eq!(status, 204, "writing an unmarked record set: {body}");
    }

    /// The comments of one record set, as PowerDNS stores them.
    async fn comments(&self, name: &str, record_type: &str) -> Vec<serde_json::Value> {
        let (status, body) = self.api.call(reqwest::Method::GET, &format!("/{}", self.name), None).await;
        assert_eq!(status, 200, "reading test zone {}: {body}", self.name);
        let zone: serde_json::Value = serde_json::from_str(&body).unwrap();
        let rrsets = zone["rrsets"].as_array().unwrap();
        let rrset = rrsets.iter().find(|rrset| rrset["name"] == name && rrset["type"] == record_type);
        rrset.and_then(|rrset| rrset["comments"].as_array().cloned()).unwrap_or_default()
    }
}

impl Drop for TestZone {
    /// Deletes the zone on a thread of its own, because `Drop` cannot await
    /// and the test's runtime may be the one this runs on.
    fn drop(&mut self) {
        let api = self.api.clone();
        let zone = self.name.clone();
        let deletion = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(api.delete_zone(&zone));
        });
        if deletion.join().is_err() && !std::thread::panicking() {
            panic!("could not delete test zone {}", self.name);
        }
    }
}

/// A fresh client for the test PowerDNS, so that each test counts its own API calls.
fn powerdns() -> PowerDns {
    PowerDns::new(
        &service_variable("ATRIUM_TEST_PDNS_URL"),
        &service_variable("ATRIUM_TEST_PDNS_API_KEY"),
        &service_variable("ATRIUM_TEST_PDNS_SERVER_ID"),
    )
}

fn resolver() -> DnsResolver {
    DnsResolver::new(Some(&service_variable("ATRIUM_TEST_PDNS_DNS_ADDRESS"))).expect("a resolver for the test PowerDNS")
}

fn record_set(name: &str, record_type: &str, contents: &[&str], tenant: &str) -> RecordSet {
    RecordSet {
        name: name.to_owned(),
        record_type: record_type.to_owned(),
        ttl: 60,
        contents: contents.iter().map(|content| content.to_string()).collect(),
        tenant: Some(tenant.to_owned()),
    }
}

async fn listed(powerdns: &PowerDns, zone: &TestZone, name: &str, record_type: &str) -> Option<RecordSet> {
    let record_sets = powerdns.list(&zone.name).await.expect("list the test zone");
    record_sets.into_iter().find(|set| set.name == name && set.record_type == record_type)
}

fn ip(address: &str) -> IpAddr {
    address.parse().unwrap()
}

#[tokio::test]
async fn a_record_put_is_listed_with_its_tenant_and_answered_over_dns() {
    let zone = TestZone::create("a-record").await;
    let powerdns = powerdns();
    let www = zone.name("www");
    // Given without the trailing dot and in capitals, the name is stored in PowerDNS's form.
    let given = record_set(&www.trim_end_matches('.').to_uppercase(), "a", &["10.1.2.3"], "acme");
    powerdns.put(&zone.name, &given).await.unwrap();

    assert_eq!(listed(&powerdns, &zone, &www, "A").await, Some(record_set(&www, "A", &["10.1.2.3"], "acme")));
    let soa = listed(&powerdns, &zone, &zone.name, "SOA").await.expect("the zone's SOA is listed");
    assert_eq!(soa.tenant, None, "record sets Atrium did not write have no tenant");
    assert_eq!(resolver().addresses(&www).await.unwrap(), vec![ip("10.1.2.3")]);
}

#[tokio::test]
async fn second_identical_put_reads_the_zone_and_writes_nothing() {
    let zone = TestZone::create("identical").await;
    let powerdns = powerdns();
    let set = record_set(&zone.name("www"), "AAAA", &["2001:DB8:0::1", "2001:db8::2"], "acme");
    powerdns.put(&zone.name, &set).await.unwrap();
    assert_eq!(powerdns.api_calls(), 2, "the first put reads the zone and writes once");

    // PowerDNS answers `2001:db8::1` for `2001:DB8:0::1`: still the same record set.
    powerdns.put(&zone.name, &set).await.unwrap();
    assert_eq!(powerdns.api_calls(), 3, "the second put only reads the zone");

    let mut new_ttl = set.clone();
    new_ttl.ttl = 120;
    powerdns.put(&zone.name, &new_ttl).await.unwrap();
    assert_eq!(powerdns.api_calls(), 5, "a changed TTL is written");
}

#[tokio::test]
async fn put_replaces_the_address_of_an_atrium_record_set() {
    let zone = TestZone::create("replace").await;
    let powerdns = powerdns();
    let www = zone.name("www");
    powerdns.put(&zone.name, &record_set(&www, "A", &["10.0.0.1"], "acme")).await.unwrap();
    assert_eq!(resolver().addresses(&www).await.unwrap(), vec![ip("10.0.0.1")]);
    // An operator notes something on Atrium's record set; the note outlives the replace.
    let mut comments = zone.comments(&www, "A").await;
    comments.push(json!({"content": "ticket 42", "account": "ops"}));
    let patch = json!({"rrsets": [{"name": www, "type": "A", "changetype": "REPLACE", "comments": comments}]});
    let (status, body) = zone.api.call(reqwest::Method::PATCH, &format!("/{}", zone.name), Some(patch)).await;
    assert_eq!(status, 204, "adding an operator's comment: {body}");

    powerdns.put(&zone.name, &record_set(&www, "A", &["10.0.0.2"], "beta")).await.unwrap();
    assert_eq!(listed(&powerdns, &zone, &www, "A").await, Some(record_set(&www, "A", &["10.0.0.2"], "beta")));
    assert_eq!(resolver().addresses(&www).await.unwrap(), vec![ip("10.0.0.2")], "DNS answers the new address at once");
    let accounts: Vec<String> =
        zone.comments(&www, "A").await.iter().map(|comment| comment["account"].as_str().unwrap().to_owned()).collect();
    assert_eq!(accounts, vec!["ops", "atrium"], "the operator's comment is kept beside Atrium's one mark");
}

#[tokio::test]
async fn cname_is_followed_to_the_addresses_of_its_target() {
    let zone = TestZone::create("cname").await;
    let powerdns = powerdns();
    let (erp, app) = (zone.name("erp"), zone.name("app"));
    powerdns.put(&zone.name, &record_set(&app, "A", &["10.0.0.7"], "acme")).await.unwrap();
    powerdns.put(&zone.name, &record_set(&erp, "CNAME", &[&app], "acme")).await.unwrap();

    assert_eq!(listed(&powerdns, &zone, &erp, "CNAME").await, Some(record_set(&erp, "CNAME", &[&app], "acme")));
    assert_eq!(resolver().addresses(&erp).await.unwrap(), vec![ip("10.0.0.7")]);
    assert_eq!(resolver().addresses(&zone.name("nothing-here")).await.unwrap(), Vec::<IpAddr>::new());
}

#[tokio::test]
async fn txt_record_is_looked_up_without_quotes_and_a_missing_one_is_empty() {
    let zone = TestZone::create("txt").await;
    let powerdns = powerdns();
    let challenge = zone.name("_atrium-challenge");
    let long_token = "t".repeat(300);
    let contents = ["\"token-123\"".to_owned(), format!("\"{}\" \"{}\"", &long_token[..255], &long_token[255..])];
    let contents: Vec<&str> = contents.iter().map(String::as_str).collect();
    powerdns.put(&zone.name, &record_set(&challenge, "TXT", &contents, "acme")).await.unwrap();

    let mut found = resolver().txt(&challenge).await.unwrap();
    found.sort();
    assert_eq!(found, vec!["token-123".to_owned(), long_token], "strings of one record are joined");
    assert_eq!(
        resolver().txt(&zone.name("missing")).await.unwrap(),
        Vec::<String>::new(),
        "a name that does not exist"
    );
    assert_eq!(resolver().txt(&zone.name).await.unwrap(), Vec::<String>::new(), "a name without TXT records");
}

#[tokio::test]
async fn remove_deletes_an_atrium_record_set_and_removing_again_is_fine() {
    let zone = TestZone::create("remove").await;
    let powerdns = powerdns();
    let www = zone.name("www");
    powerdns.put(&zone.name, &record_set(&www, "A", &["10.0.0.1"], "acme")).await.unwrap();

    powerdns.remove(&zone.name, &www, "A").await.unwrap();
    assert_eq!(listed(&powerdns, &zone, &www, "A").await, None);
    assert_eq!(resolver().addresses(&www).await.unwrap(), Vec::<IpAddr>::new());

    let calls_before = powerdns.api_calls();
    powerdns.remove(&zone.name, &www, "A").await.unwrap();
    assert_eq!(powerdns.api_calls(), calls_before + 1, "removing a missing record set only reads the zone");
}

#[tokio::test]
async fn unmarked_record_set_is_refused_by_put_and_remove_and_left_intact() {
    let zone = TestZone::create("unmarked").await;
    let powerdns = powerdns();
    let mail = zone.name("mail");
    zone.put_unmarked(&mail, "A", "192.0.2.25").await;
    let before = listed(&powerdns, &zone, &mail, "A").await.expect("the hand-made record set");
    assert_eq!(before.tenant, None);

    let put = powerdns.put(&zone.name, &record_set(&mail, "A", &["10.0.0.1"], "acme")).await.unwrap_err();
    assert!(matches!(&put, DnsError::NotManaged { name, record_type, .. } if *name == mail && record_type == "A"));
    assert!(!put.is_retryable());
    let remove = powerdns.remove(&zone.name, &mail, "A").await.unwrap_err();
    assert!(matches!(remove, DnsError::NotManaged { .. }), "{remove}");

    assert_eq!(listed(&powerdns, &zone, &mail, "A").await, Some(before), "the record set is unchanged");
    assert_eq!(resolver().addresses(&mail).await.unwrap(), vec![ip("192.0.2.25")]);
}

#[tokio::test]
async fn bad_api_key_is_unauthorized_and_never_shown() {
    let zone = TestZone::create("bad-key").await;
    let wrong_key = "wrong-key-0123456789abcdef";
    let powerdns = PowerDns::new(
        &service_variable("ATRIUM_TEST_PDNS_URL"),
        wrong_key,
        &service_variable("ATRIUM_TEST_PDNS_SERVER_ID"),
    );
    let set = record_set(&zone.name("www"), "A", &["10.0.0.1"], "acme");
    let errors = [
        powerdns.list(&zone.name).await.unwrap_err(),
        powerdns.put(&zone.name, &set).await.unwrap_err(),
        powerdns.remove(&zone.name, &set.name, "A").await.unwrap_err(),
    ];
    for error in errors {
        assert!(matches!(error, DnsError::Unauthorized { .. }), "{error}");
        assert!(!error.is_retryable());
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(wrong_key), "the key leaked: {shown}");
    }
    assert_eq!(powerdns.api_calls(), 3, "a 401 is not retried");
    assert!(!format!("{powerdns:?}").contains(wrong_key));
}

#[tokio::test]
async fn name_outside_the_zone_is_refused_with_powerdns_message() {
    let zone = TestZone::create("out-of-zone").await;
    let powerdns = powerdns();
    let error =
        powerdns.put(&zone.name, &record_set("www.elsewhere.test.", "A", &["10.0.0.1"], "acme")).await.unwrap_err();
    match &error {
        DnsError::Api { status: 422, message, zone: error_zone, .. } => {
            assert!(message.contains("out of zone"), "PowerDNS's own words: {message}");
            assert_eq!(*error_zone, zone.name);
        }
        other => panic!("expected a 422 from PowerDNS, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("www.elsewhere.test."), "{error}");
}

#[tokio::test]
async fn missing_zone_is_zone_missing_for_every_call() {
    let powerdns = powerdns();
    let zone = format!("t{}-never-created.test.", std::process::id());
    let set = record_set(&format!("www.{zone}"), "A", &["10.0.0.1"], "acme");
    let errors = [
        powerdns.list(&zone).await.unwrap_err(),
        powerdns.put(&zone, &set).await.unwrap_err(),
        powerdns.remove(&zone, &set.name, "A").await.unwrap_err(),
    ];
    for error in errors {
        assert!(matches!(&error, DnsError::ZoneMissing { zone: missing } if *missing == zone), "{error}");
        assert!(!error.is_retryable());
    }
}

#[tokio::test]
async fn unknown_server_id_is_reported_as_such_and_not_as_a_missing_zone() {
    let zone = TestZone::create("server-id").await;
    let powerdns = PowerDns::new(
        &service_variable("ATRIUM_TEST_PDNS_URL"),
        &service_variable("ATRIUM_TEST_PDNS_API_KEY"),
        "nosuch",
    );
    let error = powerdns.list(&zone.name).await.unwrap_err();
    assert!(
        matches!(&error, DnsError::Api { status: 404, message, .. } if message.contains("no server \"nosuch\"")),
        "{error}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn unreachable_api_is_a_retryable_connect_error_after_retries() {
    // Nothing listens on a port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let powerdns = PowerDns::new(&format!("http://127.0.0.1:{port}"), "key", "localhost")
        .with_retry_deadline(Duration::from_millis(500));
    let error = powerdns.list("acme.test.").await.unwrap_err();
    assert!(matches!(error, DnsError::Connect { .. }), "{error}");
    assert!(error.is_retryable());
    assert!((2..=6).contains(&powerdns.api_calls()), "retried within the deadline: {}", powerdns.api_calls());
}

/// Puts `address` at every name at once, answering each put's outcome by name.
async fn put_all_at_once(
    powerdns: &PowerDns,
    zone: &TestZone,
    names: &[String],
    address: &str,
) -> Vec<(String, Result<(), DnsError>)> {
    let puts = names.iter().map(|name| {
        let set = record_set(name, "A", &[address], "acme");
        async move { (name.clone(), powerdns.put(&zone.name, &set).await) }
    });
    futures_util::future::join_all(puts).await
}

#[tokio::test]
async fn concurrent_changes_share_zone_reads_and_writes_and_only_a_refused_one_fails() {
    let zone = TestZone::create("batched").await;
    let powerdns = powerdns();
    let names: Vec<String> = (0..20).map(|index| zone.name(&format!("n{index:02}"))).collect();
    for (name, outcome) in put_all_at_once(&powerdns, &zone, &names, "10.0.0.1").await {
        outcome.unwrap_or_else(|error| panic!("{name}: {error}"));
    }
    // One put alone reads the zone and writes once; the first of these goes
    // alone, the other 19 wait for it and share one read and one write.
    assert_eq!(powerdns.api_calls(), 4, "20 puts at once");

    // One record set that is not Atrium's and one PowerDNS refuses, among changes that are fine.
    let (taken, outside) = (zone.name("taken"), "www.elsewhere.test.".to_owned());
    zone.put_unmarked(&taken, "A", "10.9.9.9").await;
    let mut second = names.clone();
    second.extend([taken.clone(), outside.clone()]);
    for (name, outcome) in put_all_at_once(&powerdns, &zone, &second, "10.0.0.2").await {
        match outcome {
            Ok(()) => assert!(names.contains(&name), "{name} was written"),
            Err(DnsError::NotManaged { name: refused, .. }) => assert_eq!(refused, taken),
            Err(DnsError::Api { status: 422, message, .. }) => {
                assert_eq!(name, outside);
                assert!(message.contains("out of zone"), "PowerDNS's own words for that record set only: {message}");
            }
            Err(error) => panic!("{name}: {error}"),
        }
    }
    let listed = powerdns.list(&zone.name).await.unwrap();
    for name in &names {
        let set = listed.iter().find(|set| &set.name == name && set.record_type == "A");
        assert_eq!(set, Some(&record_set(name, "A", &["10.0.0.2"], "acme")), "{name}");
    }
    assert_eq!(zone.comments(&taken, "A").await[0]["account"], "ops", "the hand-made record set is untouched");

    // A put and a remove of one record set made at once happen in the order they were made.
    let first = record_set(&names[0], "A", &["10.0.0.3"], "acme");
    let (put, removed) = tokio::join!(powerdns.put(&zone.name, &first), powerdns.remove(&zone.name, &names[0], "A"));
    put.unwrap();
    removed.unwrap();
    let listed = powerdns.list(&zone.name).await.unwrap();
    assert!(!listed.iter().any(|set| set.name == names[0] && set.record_type == "A"), "removed last: {listed:?}");

    // A batch PowerDNS refuses, while a second change of one of its record
    // sets waits for the next round: the refusal reaches only its own call,
    // and the later change still comes last.
    let calls_before = powerdns.api_calls();
    let (early, later) =
        (record_set(&names[1], "A", &["10.0.0.4"], "acme"), record_set(&names[1], "A", &["10.0.0.5"], "acme"));
    let refused = record_set(&outside, "A", &["10.0.0.4"], "acme");
    let warm_up = record_set(&names[2], "A", &["10.0.0.4"], "acme");
    // futures' join polls in the order written (tokio's rotates), so the
    // warm-up takes the writer and the other three queue in this order.
    let (warmed, early_put, refused_put, later_put) = futures_util::join!(
        powerdns.put(&zone.name, &warm_up),
        powerdns.put(&zone.name, &early),
        powerdns.put(&zone.name, &refused),
        powerdns.put(&zone.name, &later),
    );
    warmed.unwrap();
    early_put.unwrap();
    later_put.unwrap();
    assert!(matches!(refused_put, Err(DnsError::Api { status: 422, .. })), "{refused_put:?}");
    // The warm-up alone (read, write); the refused round (read, refused
    // write, each of its two record sets alone); the later change (read, write).
    assert_eq!(powerdns.api_calls() - calls_before, 8);
    let listed = powerdns.list(&zone.name).await.unwrap();
    let set = listed.iter().find(|set| set.name == names[1] && set.record_type == "A");
    assert_eq!(set, Some(&later), "the later change is written last");
}
