//! How tests find the real services that `scripts/services.sh` started.
//!
//! The script writes an env file; tests read it (from `ATRIUM_SERVICES_ENV`, or
//! `.services/env` at the repository root) and fail with a clear message when
//! a service they need is missing. They never skip silently.

use std::collections::HashMap;
use std::path::PathBuf;

use sqlx::{ConnectOptions, Connection, Executor};

/// A service variable when the services are running, `None` otherwise: for
/// what works without them (the tenant benchmark passes keys only if there).
pub fn service_variable_if_running(name: &str) -> Option<String> {
    if let Ok(value) = std::env::var(name)
        && !value.is_empty()
    {
        return Some(value);
    }
    let text = std::fs::read_to_string(env_file_path()).ok()?;
    parse_env(&text).get(name).cloned()
}

/// The services env file's variables, merged over the process environment.
pub fn service_variable(name: &str) -> String {
    if let Ok(value) = std::env::var(name)
        && !value.is_empty()
    {
        return value;
    }
    let path = env_file_path();
    let variables = std::fs::read_to_string(&path).map(|text| parse_env(&text)).unwrap_or_default();
    match variables.get(name) {
        Some(value) => value.clone(),
        None => panic!(
            "this test needs {name}, which the services script provides: run `scripts/services.sh start` \
             (it writes {}), or set ATRIUM_SERVICES_ENV to the env file of a running set of services",
            path.display()
        ),
    }
}

fn env_file_path() -> PathBuf {
    if let Ok(path) = std::env::var("ATRIUM_SERVICES_ENV") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.services/env")
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// Creates a fresh PostgreSQL database for one test and returns its URL.
pub async fn fresh_postgres_database(test_name: &str) -> String {
    let admin_url = service_variable("ATRIUM_TEST_POSTGRES_URL");
    let database = format!(
        "atrium_{}_{}_{}",
        test_name.replace(|c: char| !c.is_ascii_alphanumeric(), "_").to_ascii_lowercase(),
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000
    );
    let options: sqlx::postgres::PgConnectOptions = admin_url.parse().expect("ATRIUM_TEST_POSTGRES_URL parses");
    let mut connection = options.connect().await.unwrap_or_else(|e| {
        panic!("cannot reach the test PostgreSQL at {admin_url} ({e}); is `scripts/services.sh start` running?")
    });
    connection.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"))).await.expect("create test database");
    let _ = connection.close().await;
    let mut url = url::Url::parse(&admin_url).expect("postgres URL");
    url.set_path(&database);
    url.to_string()
}

/// The owner engine tests create objects as.
pub fn test_owner() -> &'static crate::model::ownership::Owner {
    static OWNER: std::sync::OnceLock<crate::model::ownership::Owner> = std::sync::OnceLock::new();
    OWNER.get_or_init(|| crate::model::ownership::Owner::terraform("engine-tests"))
}

/// A local on-premises target on the test Docker engine named by `variable`,
/// with the test Caddy beside it and 127.0.0.1 as its public address.
pub fn test_target(variable: &str) -> crate::config::TargetDocument {
    crate::config::TargetDocument {
        location: crate::config::Location::Onprem,
        docker_host: service_variable(variable),
        docker_cert_path: None,
        orchestrator: None,
        encrypted_networks: None,
        ingress_admin_url: Some(service_variable("ATRIUM_TEST_CADDY_ADMIN_URL")),
        public_address: Some("127.0.0.1".to_owned()),
        ingress_https_address: Some(format!("127.0.0.1:{}", service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT"))),
        offsite_backups: None,
    }
}

/// A fresh SQLite registry in `directory` holding one basic tenant (user quota 10).
pub async fn registry_with_tenant(directory: &std::path::Path, tenant: &str) -> crate::registry::Registry {
    use crate::model::TenantId;
    use crate::model::tenant::{Manager, TenantSpec, Tier};
    let registry = crate::registry::Registry::connect(&format!("sqlite://{}", directory.join("registry.db").display()))
        .await
        .expect("open a test registry");
    let spec = TenantSpec {
        name: TenantId::parse(tenant).expect("a valid test tenant name"),
        display_name: "Test".into(),
        tier: Tier::Basic,
        user_quota: 10,
        expires_on: None,
        manager: Manager { email: "m@test.example".into(), name: "M".into() },
        welcome_email: false,
    };
    registry.insert_tenant(&spec, "terraform").await.expect("insert the test tenant");
    registry
}

/// The `hello` app as instance `web` of `tenant` on target `local`.
pub fn hello_spec(tenant: &str, version: &str) -> crate::model::app_instance::AppInstanceSpec {
    use crate::model::TenantId;
    use crate::model::app_instance::{AppInstanceId, AppInstanceSpec};
    AppInstanceSpec {
        id: AppInstanceId { tenant_id: TenantId::parse(tenant).expect("a valid test tenant name"), name: "web".into() },
        app: "hello".into(),
        channel: "stable".into(),
        version: version.into(),
        target: "local".into(),
        users: 5,
        replicas: 1,
        resources: None,
        environment: std::collections::BTreeMap::new(),
        extra_volumes: std::collections::BTreeMap::new(),
        files: std::collections::BTreeMap::new(),
        admin_password: None,
        password_version: 0,
        delete_data_on_destroy: false,
        backup: None,
        restore: None,
    }
}

/// Runs `docker ARGUMENTS` against the test engine named by `variable`
/// (e.g. `ATRIUM_TEST_DOCKER_HOST_2`); its output. Panics with docker's
/// error when it fails: a test helper never hides a failure.
pub fn docker_on(variable: &str, arguments: &[&str]) -> String {
    let host = service_variable(variable);
    let output = std::process::Command::new("docker")
        .args(["-H", &host])
        .args(arguments)
        .output()
        .unwrap_or_else(|error| panic!("docker {arguments:?} did not run: {error}"));
    assert!(output.status.success(), "docker {arguments:?} on {host}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The test swarm's nodes (host names, sorted) where a task of `service`
/// runs now; panics when docker fails.
pub fn swarm_nodes_running(service: &str) -> Vec<String> {
    let arguments =
        ["service", "ps", service, "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}"];
    let listed = docker_on("ATRIUM_TEST_SWARM_HOST", &arguments);
    let mut nodes: Vec<String> = listed
        .lines()
        .filter(|line| line.contains(" Running"))
        .filter_map(|line| line.split(' ').next().map(str::to_owned))
        .collect();
    nodes.sort();
    nodes
}

/// `docker ARGUMENTS` on `host` as a test's cleanup runs it (also after a
/// panic): the words it printed, or nothing, with what failed said on stderr
/// rather than raised.
pub fn docker_in_cleanup(host: &str, arguments: &[&str]) -> Vec<String> {
    match std::process::Command::new("docker").arg("-H").arg(host).args(arguments).output() {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_owned).collect()
        }
        Ok(output) => {
            eprintln!("cleanup: docker {arguments:?} on {host} failed: {}", String::from_utf8_lossy(&output.stderr));
            Vec::new()
        }
        Err(error) => {
            eprintln!("cleanup: docker {arguments:?} did not run: {error}");
            Vec::new()
        }
    }
}

/// The context of app instance operations on the given parts, never cancelled.
pub fn app_context<'a>(
    registry: &'a crate::registry::Registry,
    observations: &'a crate::observe::AppObservations,
    catalog: &'a crate::catalog::Catalog,
    targets: &'a crate::backends::targets::Targets,
    deadline: std::time::Duration,
) -> crate::apply::app_instance::AppContext<'a> {
    let (_, cancelled) = tokio::sync::watch::channel(false);
    crate::apply::app_instance::AppContext {
        registry,
        observations,
        catalog,
        targets,
        mailer: None,
        platform_dns: None,
        owner: test_owner(),
        deadline,
        cancelled,
    }
}

/// Removes the containers (with their restart policy), networks and volumes
/// that `filter` (e.g. `label=atrium.tenant=T`) finds on the test engine
/// named by `variable`. It runs when a test ends, even in a panic, so what
/// cannot be removed is said, not raised.
pub fn remove_docker_objects(variable: &str, filter: &str) {
    let host = service_variable(variable);
    let docker = |arguments: &[&str]| docker_in_cleanup(&host, arguments);
    for (list, remove) in [
        (["ps", "-aq", "--filter"].as_slice(), ["rm", "-f", "-v"].as_slice()),
        (["network", "ls", "-q", "--filter"].as_slice(), ["network", "rm"].as_slice()),
        (["volume", "ls", "-q", "--filter"].as_slice(), ["volume", "rm", "-f"].as_slice()),
    ] {
        let found = docker(&[list, &[filter]].concat());
        if !found.is_empty() {
            let names: Vec<&str> = found.iter().map(String::as_str).collect();
            docker(&[remove, &names].concat());
        }
    }
}

/// What an off-site test leaves on the second test engine, removed when it
/// goes (even in a panic): its tenant's objects and the off-site store.
pub struct SecondEngineCleanup {
    pub tenant: String,
}

impl Drop for SecondEngineCleanup {
    fn drop(&mut self) {
        remove_docker_objects("ATRIUM_TEST_DOCKER_HOST_2", &format!("label=atrium.tenant={}", self.tenant));
        remove_docker_objects("ATRIUM_TEST_DOCKER_HOST_2", "label=atrium.role=backup-store");
    }
}

/// `hello` with a PostgreSQL sidecar, backups of both and a migration that
/// does nothing: the cheapest entry whose restore has every step of a real
/// app's (data staged, put in, migrated, the app started until healthy).
const HELLO_DATABASE: &str = r#"
sidecars = {
  postgres = {
    image = "atrium/postgres:15"
    resources = {
      basic      = { cpus = 0.5, memory_mb = 256 }
      business   = { cpus = 0.5, memory_mb = 256 }
      enterprise = { cpus = 0.5, memory_mb = 256 }
    }
    environment = {
      POSTGRES_DB       = "hello"
      POSTGRES_USER     = "hello"
      POSTGRES_PASSWORD = "{secret.postgres_password}"
    }
    volumes = {
      data = "/var/lib/postgresql/data"
    }
    health = {
      command      = ["pg_isready", "-q", "-h", "127.0.0.1", "-U", "hello", "-d", "hello"]
      interval     = "1s"
      timeout      = "5s"
      retries      = 5
      start_period = "1m"
    }
  }
}

upgrade = {
  migrate = ["/bin/sh", "-c", "true"]
}

backup = {
  sidecar = "postgres"
  environment = {
    PGPASSWORD = "{secret.postgres_password}"
  }
  dump    = ["pg_dump", "--host={sidecar.postgres}", "--username=hello", "--format=custom", "hello"]
  restore = [
    "sh", "-c",
    "set -eu; dropdb --host={sidecar.postgres} --username=hello --force --if-exists hello; createdb --host={sidecar.postgres} --username=hello hello; pg_restore --host={sidecar.postgres} --username=hello --dbname=hello --exit-on-error --single-transaction --no-owner"
  ]
}
"#;

/// A catalog whose `hello` (an operator's entry, written into `directory`)
/// keeps nothing: no volume, so that nothing pins it to a node of a swarm.
pub fn hello_stateless(directory: &std::path::Path) -> crate::catalog::Catalog {
    let volumes = "volumes = {\n  data = \"/www/data\"\n}\n";
    let built_in = include_str!("../catalog/hello.hcl");
    assert!(built_in.contains(volumes), "hello.hcl declares its volume as {volumes:?}");
    std::fs::write(directory.join("hello.hcl"), built_in.replace(volumes, "")).expect("write the operator's entry");
    crate::catalog::Catalog::with_directory(directory).unwrap_or_else(|error| panic!("{error}"))
}

/// A catalog whose `hello` (an operator's entry, written into `directory`)
/// has a PostgreSQL sidecar, backups of both and a migration that does
/// nothing: the cheapest app whose upgrade and restore have every step a
/// real app's have.
pub fn hello_with_database(directory: &std::path::Path) -> crate::catalog::Catalog {
    let volumes = "volumes = {\n  data = \"/www/data\"\n}\n";
    let built_in = include_str!("../catalog/hello.hcl");
    assert!(built_in.contains(volumes), "hello.hcl declares its volume as {volumes:?}");
    let text = built_in.replace(volumes, &format!("{volumes}{HELLO_DATABASE}"));
    std::fs::write(directory.join("hello.hcl"), text).expect("write the operator's hello entry");
    crate::catalog::Catalog::with_directory(directory).unwrap_or_else(|error| panic!("{error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse_key_value_lines() {
        let parsed = parse_env("# comment\nA=1\nB = two=2\n\n");
        assert_eq!(parsed["A"], "1");
        assert_eq!(parsed["B"], "two=2");
        assert_eq!(parsed.len(), 2);
    }
}
