//! Integration tests: the Caddy ingress against the Caddy, Pebble and
//! PowerDNS that `scripts/services.sh` starts.
//!
//! Tests share that one Caddy and run in parallel, so each owns hostnames
//! named after its test and this process (`<label>-<pid>.apps.atrium.test`),
//! and its `Leftovers` remove them (routes and DNS records) when it ends,
//! passed or failed. No test removes or changes the catch-all routes: the
//! other tests rely on them.

use std::time::{Duration, Instant};

use atrium_engine::backends::caddy::CaddyIngress;
use atrium_engine::backends::ingress::{
    Ingress, IngressError, ObservedRoute, RouteHandler, RouteSpec, ServedCertificate,
};
use atrium_engine::test_services::service_variable;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(30);
const NO_APP_HERE: &str = "atrium: no app here\n";

fn ingress() -> CaddyIngress {
    let https_address = format!("127.0.0.1:{}", service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT"));
    CaddyIngress::new("local", &service_variable("ATRIUM_TEST_CADDY_ADMIN_URL"), &https_address)
}

/// A hostname that belongs to one test of this process.
fn hostname(label: &str) -> String {
    format!("{label}-{}.apps.atrium.test", std::process::id())
}

fn proxy(hostname: &str, tls: bool, upstream: &str) -> RouteSpec {
    RouteSpec {
        hostname: hostname.to_owned(),
        tls,
        handler: RouteHandler::Proxy { upstreams: vec![upstream.to_owned()] },
    }
}

/// What a test put into the shared services, removed when the test ends.
#[derive(Default)]
struct Leftovers {
    hostnames: Vec<String>,
    hand_made_route_ids: Vec<String>,
    dns_names: Vec<String>,
}

impl Leftovers {
    fn routes_of(hostname: &str) -> Leftovers {
        Leftovers { hostnames: vec![hostname.to_owned()], hand_made_route_ids: Vec::new(), dns_names: Vec::new() }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let hostnames = std::mem::take(&mut self.hostnames);
        let hand_made_route_ids = std::mem::take(&mut self.hand_made_route_ids);
        let dns_names = std::mem::take(&mut self.dns_names);
        // Drop cannot wait on the test's runtime (it may be unwinding from a
        // panic inside it), so the cleanup runs on a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async {
                let ingress = ingress();
                for hostname in &hostnames {
                    if let Err(error) = ingress.remove_route(hostname, DEADLINE).await {
                        eprintln!("leftover route of {hostname} not removed: {error}");
                    }
                }
                for id in &hand_made_route_ids {
                    raw_admin(reqwest::Method::DELETE, &format!("/id/{id}"), None).await;
                }
                for name in &dns_names {
                    change_a_record(name, "DELETE").await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A stand-in for an app instance: answers every request with `body` over HTTP/1.0.
async fn start_upstream(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind an upstream port");
    let address = listener.local_addr().expect("the upstream's address").to_string();
    tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0; 1024];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match connection.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let response = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = connection.write_all(response.as_bytes()).await;
                let _ = connection.shutdown().await;
            });
        }
    });
    address
}

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// A request through Caddy for `hostname`: plain HTTP, or HTTPS trusting only Pebble's root.
async fn get_through_caddy(hostname: &str, https: bool) -> Answer {
    let (scheme, port) = if https {
        ("https", service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT"))
    } else {
        ("http", service_variable("ATRIUM_TEST_CADDY_HTTP_PORT"))
    };
    let caddy_address = format!("127.0.0.1:{port}").parse().expect("a socket address");
    let mut client =
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).resolve(hostname, caddy_address);
    if https {
        let root = std::fs::read(service_variable("ATRIUM_TEST_ACME_ROOT_FILE")).expect("read Pebble's root");
        client = client.tls_certs_only([reqwest::Certificate::from_pem(&root).expect("Pebble's root parses")]);
    }
    let client = client.build().expect("a client");
    let response = with_reload_retries(&format!("GET {scheme}://{hostname}"), true, || {
        client.get(format!("{scheme}://{hostname}:{port}/")).send()
    })
    .await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Answer { status, content_type, body: response.text().await.expect("a body") }
}

/// Sends a request again when its connection fails: every admin write (other
/// tests write all the time) makes Caddy reload, and connections that meet a
/// reload, to the admin API or to the proxy's own ports, may be reset. A
/// request that is not `idempotent` is sent again only when it never left.
async fn with_reload_retries<F>(what: &str, idempotent: bool, send: impl Fn() -> F) -> reqwest::Response
where
    F: Future<Output = reqwest::Result<reqwest::Response>>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        match send().await {
            Ok(response) => return response,
            Err(error) if attempts < 10 && (error.is_connect() || idempotent && error.is_request()) => {
                tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
            }
            Err(error) => panic!("{what}: {error:?}"),
        }
    }
}

/// `served_certificate`, asked again when a reload (see
/// [`with_reload_retries`]) resets the handshake; any other error fails the test.
async fn served_certificate_through_reloads(ingress: &CaddyIngress, hostname: &str) -> Option<ServedCertificate> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match ingress.served_certificate(hostname).await {
            Ok(certificate) => return certificate,
            Err(error) if attempts < 10 && error.is_retryable() => {
                eprintln!("certificate check for {hostname}: {error} (a reload, probably)");
                tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
            }
            Err(error) => panic!("certificate check for {hostname}: {error:?}"),
        }
    }
}

/// A request to Caddy's admin API that bypasses `CaddyIngress`.
async fn raw_admin(method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", service_variable("ATRIUM_TEST_CADDY_ADMIN_URL"));
    let client = reqwest::Client::new();
    let response = with_reload_retries(&format!("{method} {url}"), method == reqwest::Method::GET, || {
        let request = client.request(method.clone(), &url);
        match &body {
            Some(body) => request.json(body).send(),
            None => request.send(),
        }
    })
    .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// How many routes with the hostname's id each server has: (`atrium`, `atrium_http`).
async fn copies(hostname: &str) -> (usize, usize) {
    let (_, servers) = raw_admin(reqwest::Method::GET, "/config/apps/http/servers", None).await;
    let count = |server: &str| {
        servers[server]["routes"]
            .as_array()
            .expect("the server has routes")
            .iter()
            .filter(|route| route["@id"] == format!("atrium-{hostname}"))
            .count()
    };
    (count("atrium"), count("atrium_http"))
}

async fn observed(ingress: &CaddyIngress, hostname: &str) -> Vec<ObservedRoute> {
    let routes = ingress.list_routes().await.expect("list routes");
    routes.into_iter().filter(|route| route.hostname == hostname).collect()
}

/// Replaces (`REPLACE`) or deletes (`DELETE`) `name A 127.0.0.1` in the test zone.
async fn change_a_record(name: &str, changetype: &str) {
    let url = format!(
        "{}/api/v1/servers/{}/zones/apps.atrium.test.",
        service_variable("ATRIUM_TEST_PDNS_URL"),
        service_variable("ATRIUM_TEST_PDNS_SERVER_ID")
    );
    let rrset = json!({
        "name": format!("{name}."),
        "type": "A",
        "ttl": 60,
        "changetype": changetype,
        "records": [{"content": "127.0.0.1", "disabled": false}],
    });
    let response = reqwest::Client::new()
        .patch(&url)
        .header("X-API-Key", service_variable("ATRIUM_TEST_PDNS_API_KEY"))
        .json(&json!({"rrsets": [rrset]}))
        .send()
        .await
        .unwrap_or_else(|error| panic!("PowerDNS at {url}: {error}"));
    assert!(response.status().is_success(), "{changetype} {name} A: {}", response.text().await.unwrap_or_default());
}

#[tokio::test]
async fn put_route_serves_the_host_and_an_identical_put_writes_nothing() {
    let ingress = ingress();
    let host = hostname("serve");
    let _leftovers = Leftovers::routes_of(&host);
    let upstream = start_upstream("hello from serve\n").await;
    let spec = proxy(&host, false, &upstream);

    ingress.put_route(&spec, DEADLINE).await.expect("put the route");
    assert_eq!(
        observed(&ingress, &host).await,
        [ObservedRoute { hostname: host.clone(), tls: false, handler: Some(spec.handler.clone()) }]
    );
    let answer = get_through_caddy(&host, false).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "hello from serve\n"));
    let unknown = get_through_caddy(&hostname("serve-unknown"), false).await;
    assert_eq!((unknown.status, unknown.body.as_str()), (404, NO_APP_HERE));

    let calls_before = ingress.api_calls();
    ingress.put_route(&spec, DEADLINE).await.expect("put the same route again");
    assert_eq!(ingress.api_calls(), calls_before + 1, "an unchanged route costs one read and no write");

    ingress.remove_route(&host, DEADLINE).await.expect("remove the route");
    assert_eq!(observed(&ingress, &host).await, []);
    let answer = get_through_caddy(&host, false).await;
    assert_eq!((answer.status, answer.body.as_str()), (404, NO_APP_HERE));
    let calls_before = ingress.api_calls();
    ingress.remove_route(&host, DEADLINE).await.expect("removing a missing route is fine");
    assert_eq!(ingress.api_calls(), calls_before + 1, "a missing route costs one read and no write");
}

#[tokio::test]
async fn parallel_puts_and_removes_lose_no_route_and_touch_no_other() {
    let ingress = std::sync::Arc::new(ingress());
    let mut leftovers = Leftovers::default();
    let upstream = start_upstream("hello from parallel\n").await;

    // A bystander of ours and a route made by hand, neither of which may change.
    let bystander = proxy(&hostname("parallel-bystander"), false, &upstream);
    leftovers.hostnames.push(bystander.hostname.clone());
    ingress.put_route(&bystander, DEADLINE).await.expect("put the bystander");
    let hand_made_host = hostname("parallel-hand-made");
    let hand_made_id = format!("hand-made-{}", std::process::id());
    leftovers.hand_made_route_ids.push(hand_made_id.clone());
    let hand_made_route = json!({
        "@id": hand_made_id,
        "match": [{"host": [hand_made_host]}],
        "handle": [{"handler": "static_response", "status_code": 200, "body": "made by hand\n"}],
    });
    let (status, _) = raw_admin(reqwest::Method::PUT, "/id/atrium-catch-all-http", Some(hand_made_route.clone())).await;
    assert_eq!(status, 200, "insert the hand-made route");

    let specs: Vec<RouteSpec> =
        (0..10).map(|index| proxy(&hostname(&format!("parallel-{index}")), false, &upstream)).collect();
    leftovers.hostnames.extend(specs.iter().map(|spec| spec.hostname.clone()));
    let calls_before = ingress.api_calls();
    let started = Instant::now();
    let mut puts = tokio::task::JoinSet::new();
    for spec in specs.clone() {
        let ingress = ingress.clone();
        puts.spawn(async move { ingress.put_route(&spec, DEADLINE).await });
    }
    for result in puts.join_all().await {
        result.expect("a parallel put");
    }
    let requests = ingress.api_calls() - calls_before;
    eprintln!("10 parallel puts: {:?}, {requests} admin requests", started.elapsed());
    // Batched: far fewer than the 3 to 6 requests each put costs alone.
    assert!(requests <= 12, "10 parallel puts cost {requests} admin requests");

    let routes = ingress.list_routes().await.expect("list routes");
    for spec in &specs {
        let expected =
            ObservedRoute { hostname: spec.hostname.clone(), tls: false, handler: Some(spec.handler.clone()) };
        assert_eq!(routes.iter().filter(|route| **route == expected).count(), 1, "{} once", spec.hostname);
        assert_eq!(copies(&spec.hostname).await, (0, 1));
    }
    assert_eq!(get_through_caddy(&specs[7].hostname, false).await.body, "hello from parallel\n");

    let calls_before = ingress.api_calls();
    let started = Instant::now();
    let mut removes = tokio::task::JoinSet::new();
    for spec in specs.clone() {
        let ingress = ingress.clone();
        removes.spawn(async move { ingress.remove_route(&spec.hostname, DEADLINE).await });
    }
    for result in removes.join_all().await {
        result.expect("a parallel remove");
    }
    let requests = ingress.api_calls() - calls_before;
    eprintln!("10 parallel removes: {:?}, {requests} admin requests", started.elapsed());
    assert!(requests <= 12, "10 parallel removes cost {requests} admin requests");

    let routes = ingress.list_routes().await.expect("list routes");
    for spec in &specs {
        assert!(routes.iter().all(|route| route.hostname != spec.hostname), "{} is gone", spec.hostname);
        assert_eq!(copies(&spec.hostname).await, (0, 0));
    }
    assert_eq!(observed(&ingress, &bystander.hostname).await.len(), 1, "the bystander stays");
    let (status, still_there) = raw_admin(reqwest::Method::GET, &format!("/id/{hand_made_id}"), None).await;
    assert_eq!((status, still_there), (200, hand_made_route), "the hand-made route is untouched");
    assert!(routes.iter().all(|route| route.hostname != hand_made_host), "a route without our id is not listed");
    let answer = get_through_caddy(&hand_made_host, false).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "made by hand\n"));
}

#[tokio::test]
async fn tls_route_gets_a_certificate_from_pebble_and_serves_https() {
    let ingress = ingress();
    let host = hostname("tls");
    let mut leftovers = Leftovers::routes_of(&host);
    leftovers.dns_names.push(host.clone());
    let upstream = start_upstream("hello over https\n").await;
    // Pebble validates HTTP-01 at whatever the name resolves to through PowerDNS.
    change_a_record(&host, "REPLACE").await;
    assert_eq!(served_certificate_through_reloads(&ingress, &host).await, None, "no certificate before the route");

    ingress.put_route(&proxy(&host, true, &upstream), DEADLINE).await.expect("put the route");
    let started = Instant::now();
    let certificate = loop {
        match ingress.served_certificate(&host).await {
            Ok(Some(certificate)) => break certificate,
            Ok(None) => {}
            Err(error) if error.is_retryable() => eprintln!("certificate check: {error} (a reload, probably)"),
            Err(error) => panic!("certificate check: {error:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no certificate for {host} after 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("certificate for {host} served after {:?}: {certificate:?}", started.elapsed());
    assert!(certificate.issuer.contains("Pebble"), "{certificate:?}");
    assert!(certificate.not_after > time::OffsetDateTime::now_utc(), "{certificate:?}");

    let answer = get_through_caddy(&host, true).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "hello over https\n"));
}

#[tokio::test]
async fn served_certificate_is_none_for_names_without_one_and_connect_when_nothing_listens() {
    let ingress = ingress();
    assert_eq!(served_certificate_through_reloads(&ingress, &hostname("no-certificate")).await, None);
    // Caddy also serves the certificate of its Pebble listener (127.0.0.1 and
    // localhost), which does not count for other names.
    assert_eq!(
        served_certificate_through_reloads(&ingress, "localhost").await.map(|c| c.issuer).as_deref(),
        Some("atrium-test-pebble-listener-ca")
    );

    let closed = CaddyIngress::new("local", &service_variable("ATRIUM_TEST_CADDY_ADMIN_URL"), "127.0.0.1:1");
    let error = closed.served_certificate(&hostname("closed")).await.expect_err("nothing listens on port 1");
    assert!(matches!(error, IngressError::Connect { .. }), "{error:?}");
}

#[tokio::test]
async fn an_unreachable_admin_api_is_a_retryable_connect_error_after_retries() {
    let ingress = CaddyIngress::new("local", "http://127.0.0.1:1", "127.0.0.1:1");
    let started = Instant::now();
    let error = ingress
        .put_route(&proxy(&hostname("unreachable"), false, "127.0.0.1:9"), Duration::from_millis(400))
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(error, IngressError::Connect { .. }) && error.is_retryable(), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "gave up within the deadline: {:?}", started.elapsed());
    assert!(ingress.api_calls() > 2, "retried: {} requests", ingress.api_calls());
}

#[tokio::test]
async fn hostnames_that_would_take_a_catch_alls_id_are_refused_without_a_request() {
    let ingress = ingress();
    for hostname in ["catch-all", "catch-all-http"] {
        let error =
            ingress.put_route(&proxy(hostname, false, "127.0.0.1:9"), DEADLINE).await.expect_err("a catch-all's id");
        assert!(matches!(error, IngressError::Api { status: 400, .. }) && !error.is_retryable(), "{error:?}");
        let error = ingress.remove_route(hostname, DEADLINE).await.expect_err("a catch-all's id");
        assert!(matches!(error, IngressError::Api { status: 400, .. }), "{error:?}");
    }
    assert_eq!(ingress.api_calls(), 0);
    assert_eq!(get_through_caddy(&hostname("catch-all-check"), false).await.body, NO_APP_HERE);
}

#[tokio::test]
async fn suspended_route_answers_503_with_the_message() {
    let ingress = ingress();
    let host = hostname("suspended");
    let _leftovers = Leftovers::routes_of(&host);
    let message = "Suspended: ask billing & <support> about {env.HOME}";
    let spec = RouteSpec {
        hostname: host.clone(),
        tls: false,
        handler: RouteHandler::Suspended { message: message.to_owned() },
    };

    ingress.put_route(&spec, DEADLINE).await.expect("put the route");
    let answer = get_through_caddy(&host, false).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.content_type, "text/html; charset=utf-8");
    assert!(
        answer.body.contains("Suspended: ask billing &amp; &lt;support&gt; about &#123;env.HOME&#125;"),
        "the message, escaped and with no placeholder expanded: {}",
        answer.body
    );
    assert_eq!(
        observed(&ingress, &host).await,
        [ObservedRoute { hostname: host.clone(), tls: false, handler: Some(spec.handler.clone()) }]
    );
    let calls_before = ingress.api_calls();
    ingress.put_route(&spec, DEADLINE).await.expect("put the same route again");
    assert_eq!(ingress.api_calls(), calls_before + 1, "the page reads back as written");
}

#[tokio::test]
async fn switching_tls_moves_the_route_between_servers_without_a_second_copy() {
    let ingress = ingress();
    let host = hostname("switch");
    let _leftovers = Leftovers::routes_of(&host);
    let upstream = start_upstream("hello from switch\n").await;

    for (tls, expected_copies) in [(false, (0, 1)), (true, (1, 0)), (false, (0, 1))] {
        let spec = proxy(&host, tls, &upstream);
        ingress.put_route(&spec, DEADLINE).await.expect("put the route");
        assert_eq!(copies(&host).await, expected_copies, "tls: {tls}");
        assert_eq!(
            observed(&ingress, &host).await,
            [ObservedRoute { hostname: host.clone(), tls, handler: Some(spec.handler.clone()) }]
        );
    }
    assert_eq!(get_through_caddy(&host, false).await.body, "hello from switch\n");
    ingress.remove_route(&host, DEADLINE).await.expect("remove the route");
    assert_eq!(copies(&host).await, (0, 0));
}

#[tokio::test]
async fn second_put_after_a_crash_leaves_one_copy_of_a_duplicated_route() {
    let ingress = ingress();
    let host = hostname("duplicates");
    let _leftovers = Leftovers::routes_of(&host);
    let old_upstream = start_upstream("old\n").await;
    let new_upstream = start_upstream("new\n").await;

    // As a crash or a hand could leave them: two copies with the old upstream
    // on the HTTP server, and a third on the HTTPS server.
    let old_route = json!({
        "@id": format!("atrium-{host}"),
        "match": [{"host": [host]}],
        "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": old_upstream}]}],
        "terminal": true,
    });
    for catch_all in ["atrium-catch-all-http", "atrium-catch-all-http", "atrium-catch-all"] {
        let (status, _) = raw_admin(reqwest::Method::PUT, &format!("/id/{catch_all}"), Some(old_route.clone())).await;
        assert_eq!(status, 200);
    }
    assert_eq!(copies(&host).await, (1, 2));
    assert_eq!(observed(&ingress, &host).await.len(), 3);

    ingress.put_route(&proxy(&host, false, &new_upstream), DEADLINE).await.expect("put the route");
    assert_eq!(copies(&host).await, (0, 1));
    assert_eq!(get_through_caddy(&host, false).await.body, "new\n");
}
