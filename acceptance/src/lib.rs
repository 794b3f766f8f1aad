//! The acceptance harness: runs the real `terraform` CLI against the freshly
//! built provider, in a temporary directory per test, with its own registry.
//!
//! Terraform installs the provider as a user's configuration would: `terraform
//! init` from a local filesystem mirror laid out as a registry release
//! (`scripts/provider-mirror.sh`), which pins the version in
//! `.terraform.lock.hcl`; no network, `CHECKPOINT_DISABLE=1`. The binary
//! packed into the mirror is `ATRIUM_PROVIDER_BIN`, or
//! `terraform-provider-atrium` next to the test binary's `deps/` directory
//! (what `cargo build --workspace` produces).

pub mod bench;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use atrium_engine::registry::Registry;
use atrium_engine::test_services::service_variable;

/// Which registry a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryChoice {
    Sqlite,
    Postgres,
}

/// The repository root (for examples).
pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository root")
}

/// A binary under test: `$variable`, or `name` beside the test binary's
/// `deps/` directory (what `cargo build --workspace` produces).
fn binary_under_test(variable: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(variable) {
        return PathBuf::from(path);
    }
    let executable = std::env::current_exe().expect("current test executable");
    let mut directory = executable.parent().expect("executable directory").to_path_buf();
    if directory.ends_with("deps") {
        directory.pop();
    }
    let binary = directory.join(name);
    assert!(
        binary.is_file(),
        "{} is missing: build it first (`cargo build --workspace`, which scripts/test.sh runs) or set {variable}",
        binary.display()
    );
    binary
}

/// The provider binary under test.
pub fn provider_binary() -> PathBuf {
    binary_under_test("ATRIUM_PROVIDER_BIN", "terraform-provider-atrium")
}

/// The CLI configuration that installs the provider from a local filesystem
/// mirror, laid out as a registry release, packed once per test process from
/// the binary under test (so the mirror is never older than the build).
pub fn provider_mirror_configuration() -> String {
    static MIRROR: std::sync::OnceLock<(tempfile::TempDir, String)> = std::sync::OnceLock::new();
    let (_, configuration) = MIRROR.get_or_init(|| {
        let directory = tempfile::Builder::new().prefix("atrium-provider-mirror-").tempdir().expect("mirror dir");
        let script = repository_root().join("scripts/provider-mirror.sh");
        let output = Command::new(&script)
            .arg(format!("binary={}", provider_binary().display()))
            .arg(directory.path())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "packing the provider into a mirror failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let configuration = String::from_utf8(output.stdout).expect("the CLI configuration is text");
        assert!(configuration.contains("filesystem_mirror"), "{configuration}");
        (directory, configuration)
    });
    configuration.clone()
}

/// The `atrium` CLI under test (`ATRIUM_CLI_BIN` overrides it).
pub fn atrium_binary() -> PathBuf {
    binary_under_test("ATRIUM_CLI_BIN", "atrium")
}

/// The terraform CLI: `TERRAFORM_BIN` or `terraform` on PATH.
pub fn terraform_binary() -> PathBuf {
    std::env::var("TERRAFORM_BIN").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("terraform"))
}

/// What one terraform command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the command exited with `expected`.
    pub fn expect_code(self, expected: i32, what: &str) -> Run {
        assert_eq!(
            self.code, expected,
            "{what}: the command exited {} (wanted {expected})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Both streams with line wrapping undone (Terraform wraps diagnostics at 78 columns).
    pub fn flat_output(&self) -> String {
        self.output().split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// The services' keys, when they run (configurations that use the services
/// fail loudly without them, when the platform is set up).
fn with_service_keys(command: &mut Command) {
    for (variable, service) in
        [("ATRIUM_DNS_API_KEY", "ATRIUM_TEST_PDNS_API_KEY"), ("ATRIUM_TRACKER_API_KEY", "ATRIUM_TEST_REDMINE_API_KEY")]
    {
        match atrium_engine::test_services::service_variable_if_running(service) {
            Some(key) => command.env(variable, key),
            None => command.env_remove(variable),
        };
    }
}

/// A temporary Terraform working directory with its own registry.
pub struct Workspace {
    directory: tempfile::TempDir,
    pub registry_url: String,
}

impl Workspace {
    /// A new working directory and a new, empty registry of the chosen kind.
    pub async fn new(test_name: &str, registry: RegistryChoice) -> Workspace {
        let directory = tempfile::Builder::new().prefix(&format!("atrium-{test_name}-")).tempdir().expect("temp dir");
        let registry_url = match registry {
            RegistryChoice::Sqlite => format!("sqlite://{}", directory.path().join("registry.db").display()),
            RegistryChoice::Postgres => atrium_engine::test_services::fresh_postgres_database(test_name).await,
        };
        std::fs::write(directory.path().join("cli.tfrc"), provider_mirror_configuration()).expect("write CLI config");
        Workspace { directory, registry_url }
    }

    /// A second working directory on `other`'s registry: another
    /// configuration (another team) sharing one control plane.
    pub async fn sharing_registry_of(test_name: &str, other: &Workspace) -> Workspace {
        let mut workspace = Workspace::new(test_name, RegistryChoice::Sqlite).await;
        workspace.registry_url = other.registry_url.clone();
        workspace
    }

    pub fn path(&self) -> &Path {
        self.directory.path()
    }

    /// Writes (or replaces) a file in the working directory.
    pub fn write(&self, name: &str, content: &str) {
        std::fs::write(self.path().join(name), content).expect("write file");
    }

    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.path().join(name));
    }

    pub fn read(&self, name: &str) -> String {
        let path = self.path().join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// A terraform command ready to run here, with the test's environment.
    /// The first one (but `init` itself) runs `terraform init` first, as a
    /// user does: the provider comes from the local mirror.
    pub fn command(&self, arguments: &[&str]) -> Command {
        if !matches!(arguments.first(), Some(&("init" | "version"))) {
            self.init();
        }
        self.bare_command(arguments)
    }

    /// Runs `terraform init` unless it ran already (benchmarks call it before
    /// their clocks start).
    pub fn init(&self) {
        if self.path().join(".terraform").exists() {
            return;
        }
        let output = self.bare_command(&["init", "-input=false", "-no-color"]).output().expect("run terraform init");
        assert!(
            output.status.success(),
            "terraform init failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn bare_command(&self, arguments: &[&str]) -> Command {
        let mut command = Command::new(terraform_binary());
        command
            .args(arguments)
            .current_dir(self.path())
            .env("TF_CLI_CONFIG_FILE", self.path().join("cli.tfrc"))
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("ATRIUM_REGISTRY_URL", &self.registry_url)
            .env_remove("TF_LOG")
            .env_remove("ATRIUM_SMTP_PASSWORD")
            .env_remove("TF_REATTACH_PROVIDERS")
            .stdin(Stdio::null());
        with_service_keys(&mut command);
        command
    }

    /// The `atrium` CLI ready to run here with `arguments`, on the test's
    /// registry (unless the configuration's `atrium` block names another) and
    /// the services' keys, without a terminal.
    pub fn atrium_command(&self, arguments: &[&str]) -> Command {
        let mut command = Command::new(atrium_binary());
        command
            .args(arguments)
            .current_dir(self.path())
            .env("ATRIUM_REGISTRY_URL", &self.registry_url)
            .env_remove("ATRIUM_SMTP_PASSWORD")
            .stdin(Stdio::null());
        with_service_keys(&mut command);
        command
    }

    /// Runs the `atrium` CLI here with `arguments` (see [`Workspace::atrium_command`]).
    pub fn atrium(&self, arguments: &[&str]) -> Run {
        let output = self
            .atrium_command(arguments)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", atrium_binary().display()));
        Run::from_output(output)
    }

    /// Runs terraform with `-no-color` added to commands that take it.
    pub fn terraform(&self, arguments: &[&str]) -> Run {
        let mut full: Vec<&str> = arguments.to_vec();
        if matches!(arguments.first(), Some(&("plan" | "apply" | "destroy" | "import" | "refresh" | "show"))) {
            full.push("-no-color");
        }
        let output =
            self.command(&full).output().unwrap_or_else(|e| panic!("cannot run terraform ({e}); set TERRAFORM_BIN"));
        Run::from_output(output)
    }

    pub fn apply(&self) -> Run {
        self.apply_with(&[])
    }

    /// `terraform apply -auto-approve` with more arguments (`-var`s).
    pub fn apply_with(&self, arguments: &[&str]) -> Run {
        let mut full = vec!["apply", "-auto-approve", "-input=false"];
        full.extend_from_slice(arguments);
        self.terraform(&full).expect_code(0, "terraform apply")
    }

    /// `terraform plan -detailed-exitcode`: 0 empty, 2 changes, 1 error.
    pub fn plan(&self, refresh: bool) -> Run {
        let mut arguments = vec!["plan", "-detailed-exitcode", "-input=false"];
        if !refresh {
            arguments.push("-refresh=false");
        }
        self.terraform(&arguments)
    }

    /// Asserts that plan is empty with and without refresh.
    pub fn assert_plan_empty(&self, when: &str) {
        self.plan(false).expect_code(0, &format!("plan -refresh=false {when}"));
        self.plan(true).expect_code(0, &format!("plan {when}"));
    }

    /// Resource addresses in the state: none when no state file was ever
    /// written; any failure of `terraform state list` fails the test.
    pub fn state_list(&self) -> Vec<String> {
        if !self.path().join("terraform.tfstate").exists() {
            return Vec::new();
        }
        let run = self.terraform(&["state", "list"]).expect_code(0, "terraform state list");
        run.stdout.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
    }

    /// The state as JSON (`terraform show -json`).
    pub fn state_json(&self) -> serde_json::Value {
        let run = self.terraform(&["show", "-json"]).expect_code(0, "terraform show -json");
        serde_json::from_str(&run.stdout).expect("show -json output")
    }

    /// One attribute of one resource in the state (`null` when either is absent).
    pub fn state_attribute(&self, address: &str, attribute: &str) -> serde_json::Value {
        let state = self.state_json();
        state["values"]["root_module"]["resources"]
            .as_array()
            .and_then(|resources| resources.iter().find(|r| r["address"] == address))
            .map(|r| r["values"][attribute].clone())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Opens the test's registry.
    pub async fn registry(&self) -> Registry {
        Registry::connect(&self.registry_url).await.expect("open the test registry")
    }
}

/// The provider block used by tests: the example's, which reads the registry from the environment.
pub fn provider_example() -> String {
    example("provider/provider.tf")
}

/// The example provider block with its `lyon-onprem` target pointed at the
/// test Docker engine that `scripts/services.sh` started.
pub fn provider_example_with_test_docker() -> String {
    let docker_host = atrium_engine::test_services::service_variable("ATRIUM_TEST_DOCKER_HOST");
    provider_example().replace("unix:///var/run/docker.sock", &docker_host)
}

/// The example provider block pointed at every test service: the `lyon-onprem`
/// target on the test Docker engine with the test Caddy beside it (public
/// address 127.0.0.1), PowerDNS as the DNS API and resolver, Pebble as the
/// ACME CA of the platform zone's wildcard certificate, and `platform_zone`
/// as given.
pub fn provider_example_with_test_services(platform_zone: &str) -> String {
    let https_port = service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT");
    provider_example_with_test_docker()
        .replace("apps.example.net", platform_zone)
        .replace("http://127.0.0.1:2019", &service_variable("ATRIUM_TEST_CADDY_ADMIN_URL"))
        .replace("https://support.example.net", &service_variable("ATRIUM_TEST_REDMINE_URL"))
        .replace(
            "public_address    = \"203.0.113.10\"",
            &format!("public_address    = \"127.0.0.1\"\n      ingress_https_address = \"127.0.0.1:{https_port}\""),
        )
        .replace(
            "acme_directory_url = \"https://acme-v02.api.letsencrypt.org/directory\"",
            &format!(
                "acme_directory_url = \"{}\"\n    trusted_roots_file = \"{}\"",
                service_variable("ATRIUM_TEST_ACME_DIRECTORY"),
                service_variable("ATRIUM_TEST_ACME_CA_FILE")
            ),
        )
        .replace(
            "api_url = \"http://127.0.0.1:8081\"",
            &format!(
                "api_url = \"{}\"\n    resolver = \"{}\"",
                service_variable("ATRIUM_TEST_PDNS_URL"),
                service_variable("ATRIUM_TEST_PDNS_DNS_ADDRESS")
            ),
        )
}

/// The emails the test SMTP sink holds for `recipient`, as raw text.
pub fn mails_to(recipient: &str) -> Vec<String> {
    let directory = PathBuf::from(service_variable("ATRIUM_TEST_SMTP_MAILDIR")).join("new");
    let entries =
        std::fs::read_dir(&directory).unwrap_or_else(|e| panic!("read the SMTP sink's {}: {e}", directory.display()));
    let mut mails: Vec<String> = entries
        .map(|entry| {
            let path = entry.expect("a maildir entry").path();
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        })
        .collect();
    mails.retain(|mail| mail.contains(&format!("X-RcptTo: {recipient}")));
    mails
}

/// The example provider block with an `smtp` block on the test SMTP sink added.
pub fn with_test_smtp(provider: &str) -> String {
    provider.replacen(
        "provider \"atrium\" {",
        &format!(
            "provider \"atrium\" {{\n  smtp = {{\n    url  = \"{}\"\n    from = \"Atrium <noreply@atrium.test>\"\n  }}\n",
            service_variable("ATRIUM_TEST_SMTP_URL")
        ),
        1,
    )
}

/// One call to the test Redmine's REST API through curl, as its administrator: (HTTP status, body).
pub fn redmine(method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut command = Command::new("curl");
    command.args(["-s", "-X", method, "-H"]);
    command.arg(format!("X-Redmine-API-Key: {}", service_variable("ATRIUM_TEST_REDMINE_API_KEY")));
    if let Some(body) = body {
        command.args(["-H", "Content-Type: application/json", "--data", body]);
    }
    curl_status(command.arg(format!("{}{path}", service_variable("ATRIUM_TEST_REDMINE_URL"))))
}

/// One call to the test PowerDNS API through curl: (HTTP status, body).
pub fn powerdns(method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let url = format!("{}/api/v1/servers/localhost{path}", service_variable("ATRIUM_TEST_PDNS_URL"));
    let mut command = Command::new("curl");
    command.args(["-s", "-X", method, "-H"]);
    command.arg(format!("X-API-Key: {}", service_variable("ATRIUM_TEST_PDNS_API_KEY")));
    if let Some(body) = body {
        command.args(["-H", "Content-Type: application/json", "--data", body]);
    }
    curl_status(command.arg(url))
}

/// A zone of the test's own in PowerDNS (`name` without the trailing dot), deleted on drop.
pub struct TestZone {
    pub name: String,
}

impl TestZone {
    pub fn create(name: &str) -> TestZone {
        let body = format!(r#"{{"name": "{name}.", "kind": "Native", "nameservers": ["ns1.atrium.test."]}}"#);
        let (status, answer) = powerdns("POST", "/zones", Some(&body));
        assert!(status == 201 || status == 409, "create zone {name}: HTTP {status} {answer}");
        TestZone { name: name.to_owned() }
    }

    /// Replaces one record set (`name` absolute, with the trailing dot), unmarked: as a customer would.
    pub fn publish(&self, name: &str, record_type: &str, content: &str) {
        let body = format!(
            r#"{{"rrsets": [{{"name": "{name}", "type": "{record_type}", "ttl": 60, "changetype": "REPLACE", "records": [{{"content": {}, "disabled": false}}]}}]}}"#,
            serde_json::Value::String(content.to_owned())
        );
        let (status, answer) = powerdns("PATCH", &format!("/zones/{}.", self.name), Some(&body));
        assert_eq!(status, 204, "publish {name} {record_type}: {answer}");
    }

    /// The zone's record sets as PowerDNS returns them.
    pub fn record_sets(&self) -> Vec<serde_json::Value> {
        let (status, answer) = powerdns("GET", &format!("/zones/{}.", self.name), None);
        assert_eq!(status, 200, "read zone {}: {answer}", self.name);
        let zone: serde_json::Value = serde_json::from_str(&answer).expect("zone JSON");
        zone["rrsets"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for TestZone {
    fn drop(&mut self) {
        let _ = powerdns("DELETE", &format!("/zones/{}.", self.name), None);
    }
}

/// Fetches `https://HOST:PORT/PATH` from the test Caddy with curl, resolving
/// the host to 127.0.0.1 and trusting only Pebble's root: (HTTP status, body).
pub fn https_get(hostname: &str, path: &str) -> (u16, String) {
    https_get_as(hostname, path, None)
}

/// Like [`https_get`], with basic auth as `user:password` when given.
pub fn https_get_as(hostname: &str, path: &str, login: Option<&str>) -> (u16, String) {
    match login {
        Some(login) => https_request(hostname, path, &["-u", login]),
        None => https_request(hostname, path, &[]),
    }
}

/// One HTTPS request to `HOST/PATH` through the test Caddy, as [`https_get`]
/// makes it, with more curl arguments (method, headers, body, cookie jar):
/// (HTTP status, body; status 0 when curl got no answer).
pub fn https_request(hostname: &str, path: &str, curl_arguments: &[&str]) -> (u16, String) {
    let port = service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT");
    curl_status(
        Command::new("curl")
            .args(curl_arguments)
            .args(["-s", "--max-time", "30", "--cacert"])
            .arg(service_variable("ATRIUM_TEST_ACME_ROOT_FILE"))
            .arg("--resolve")
            .arg(format!("{hostname}:{port}:127.0.0.1"))
            .arg(format!("https://{hostname}:{port}{path}")),
    )
}

/// The DNS names of the certificate the test Caddy serves for `hostname`
/// (by SNI), read with openssl.
pub fn served_certificate_names(hostname: &str) -> Vec<String> {
    let port = service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT");
    let output = Command::new("bash")
        .args([
            "-c",
            "set -o pipefail; openssl s_client -connect \"127.0.0.1:$1\" -servername \"$2\" </dev/null 2>/dev/null \
             | openssl x509 -noout -ext subjectAltName",
            "bash",
            &port,
            hostname,
        ])
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "read the certificate served for {hostname}: {text}");
    text.split([',', '\n']).filter_map(|part| part.trim().strip_prefix("DNS:")).map(str::to_owned).collect()
}

/// Fetches `http://HOST/PATH` from the test Caddy's plain HTTP server: (HTTP status, body).
pub fn http_get_host(hostname: &str, path: &str) -> (u16, String) {
    let port = service_variable("ATRIUM_TEST_CADDY_HTTP_PORT");
    curl_status(
        Command::new("curl")
            .args(["-s", "--max-time", "10", "-H"])
            .arg(format!("Host: {hostname}"))
            .arg(format!("http://127.0.0.1:{port}{path}")),
    )
}

/// Atrium's route ids on the test Caddy that mention `fragment`.
pub fn routes_mentioning(fragment: &str) -> Vec<String> {
    let (status, body) = caddy("GET", "/config/apps/http/servers", None);
    assert_eq!(status, 200, "{body}");
    let servers: serde_json::Value = serde_json::from_str(&body).expect("Caddy's servers as JSON");
    let mut ids = Vec::new();
    for server in servers.as_object().into_iter().flat_map(|s| s.values()) {
        for route in server["routes"].as_array().into_iter().flatten() {
            if let Some(id) = route["@id"].as_str().filter(|id| id.contains(fragment)) {
                ids.push(id.to_owned());
            }
        }
    }
    ids.sort();
    ids
}

/// One call to the test Caddy's admin API through curl: (HTTP status, body).
pub fn caddy(method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut command = Command::new("curl");
    command.args(["-s", "-X", method]);
    if let Some(body) = body {
        command.args(["-H", "Content-Type: application/json", "--data", body]);
    }
    curl_status(command.arg(format!("{}{path}", service_variable("ATRIUM_TEST_CADDY_ADMIN_URL"))))
}

/// Runs a curl command with the status appended to its output: (HTTP status, body).
fn curl_status(command: &mut Command) -> (u16, String) {
    let output = command.args(["-w", "\n%{http_code}"]).output().expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// Runs the docker CLI against the test engine and returns its stdout; a
/// failing command fails the test (with what docker said).
pub fn docker(arguments: &[&str]) -> String {
    let (success, stdout, stderr) = docker_run(arguments);
    assert!(success, "docker {} failed: {stderr}", arguments.join(" "));
    stdout
}

/// Runs the docker CLI against the test engine where failing is an answer
/// (an object that should be gone): (success, stdout).
pub fn docker_status(arguments: &[&str]) -> (bool, String) {
    let (success, stdout, _) = docker_run(arguments);
    (success, stdout)
}

fn docker_run(arguments: &[&str]) -> (bool, String, String) {
    let docker_host = atrium_engine::test_services::service_variable("ATRIUM_TEST_DOCKER_HOST");
    let output =
        Command::new("docker").arg("-H").arg(docker_host).args(arguments).output().expect("run the docker CLI");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Fetches `url` (plain HTTP/1.0, `http://host:port/path`) and returns the whole response.
pub fn http_get(url: &str) -> String {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".to_owned()));
    let Ok(mut stream) = std::net::TcpStream::connect(authority) else { return String::new() };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// A file under `examples/`.
pub fn example(relative: &str) -> String {
    let path = repository_root().join("examples").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The terraform arguments of the `terraform import ...` line in an `import.sh` example.
pub fn import_arguments(import_script: &str) -> Vec<String> {
    let line = import_script
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("terraform import"))
        .expect("import.sh has a terraform import line");
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

/// The attributes of bulk tenant number `count.index`, shared by the
/// `atrium_tenant` configurations and the `terraform_data` baseline so both
/// carry the same data.
pub const BULK_TENANT_ATTRIBUTES: &str = r#"name         = format("bulk-%04d", count.index)
  display_name = "Bulk customer ${count.index}"
  tier         = "basic"
  manager = {
    email = "manager-${count.index}@bulk.example"
    name  = "Manager ${count.index}"
  }"#;

/// `count` tenants named `bulk-0000`, `bulk-0001`, …
pub fn bulk_tenants(count: usize) -> String {
    format!("resource \"atrium_tenant\" \"bulk\" {{\n  count        = {count}\n  {BULK_TENANT_ATTRIBUTES}\n}}\n")
}
