//! The platform's configuration: where the registry lives, the platform DNS
//! zone, the hosting targets, DNS and SMTP. The Terraform provider block and
//! the CLI's config file are two spellings of this one document.

use std::collections::BTreeMap;
use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::attribute::{AttributePath, ValidationError};

/// The registry used when neither `registry_url` nor `ATRIUM_REGISTRY_URL` is set:
/// an embedded SQLite file in the working directory.
pub const DEFAULT_REGISTRY_URL: &str = "sqlite://atrium.db";

/// The environment variable that supplies `registry_url` when the configuration leaves it unset.
pub const REGISTRY_URL_ENV: &str = "ATRIUM_REGISTRY_URL";

/// The environment variable that supplies `dns.api_key` when the configuration leaves it unset.
pub const DNS_API_KEY_ENV: &str = "ATRIUM_DNS_API_KEY";

impl DnsDocument {
    /// The API key in force: the attribute, else the environment variable.
    pub fn effective_api_key(&self, environment_value: Option<String>) -> Option<String> {
        self.api_key.clone().or(environment_value.filter(|key| !key.trim().is_empty()))
    }
}

/// Where a target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Onprem,
    Cloud,
}

/// How a target runs containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Orchestrator {
    Docker,
    Swarm,
}

/// A named hosting location: a Docker engine or Swarm cluster with a Caddy reverse proxy beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetDocument {
    /// `onprem` (the customer's premises) or `cloud`.
    pub location: Location,
    /// The Docker endpoint: `unix:///var/run/docker.sock`, or `tcp://host:2376` (with TLS when
    /// `docker_cert_path` is set, as for a daemon started with `--tlsverify`).
    pub docker_host: String,
    /// A directory holding `ca.pem`, `cert.pem` and `key.pem` (Docker's `DOCKER_CERT_PATH` layout) for a
    /// `tcp://` endpoint that requires TLS client certificates.
    #[serde(default)]
    pub docker_cert_path: Option<String>,
    /// `docker` for a single engine (default) or `swarm` for a Docker Swarm cluster. On a swarm,
    /// `docker_host` is a manager, and every node carries the label `atrium.engine` with its own Docker
    /// endpoint (reached with the same `docker_cert_path`), for volumes and one-shot jobs beside the data.
    #[serde(default)]
    pub orchestrator: Option<Orchestrator>,
    /// Swarm targets: whether each tenant's overlay network encrypts the traffic between its containers on
    /// different nodes (IPsec, which needs the nodes' kernels to support it). Default: true.
    #[serde(default)]
    pub encrypted_networks: Option<bool>,
    /// The Caddy admin API beside the target, e.g. `http://127.0.0.1:2019`.
    #[serde(default)]
    pub ingress_admin_url: Option<String>,
    /// The address DNS records point at for apps on this target: an IP address (A record) or a host name (CNAME).
    #[serde(default)]
    pub public_address: Option<String>,
    /// Where the reverse proxy serves HTTPS, `host:port`, to read the certificate it serves for each domain.
    /// Default: `public_address` on port 443.
    #[serde(default)]
    pub ingress_https_address: Option<String>,
    /// Where a copy of every backup taken on this target is sent: a store on another target (off-site
    /// copies, e.g. from an on-prem target to a cloud one). Unset: backups stay on this target.
    #[serde(default)]
    pub offsite_backups: Option<OffsiteBackupsDocument>,
}

/// The off-site store of a target's backups: Atrium runs it (rclone's restic REST server, image
/// `atrium/backup-store:1.60`) on another target, and each backup taken on this target is copied
/// there, into one repository per instance, encrypted with the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsiteBackupsDocument {
    /// The target the store runs on: another target of this configuration.
    pub target: String,
    /// `HOST:PORT` where the store is published on that target's host (on every address of it), as the
    /// containers of every target reach it, e.g. `"198.51.100.7:8765"`.
    pub address: String,
    /// The store's password: it encrypts the off-site repositories and signs in to the store. Keep it
    /// outside Atrium too: with the target's own backups lost, it is what reads the copies. 16 or more
    /// letters, digits, `-`, `.`, `_` or `~` (e.g. `openssl rand -hex 24`). Secret: never shown in
    /// plans, state or logs. Unset: the `ATRIUM_OFFSITE_BACKUP_PASSWORD` environment variable.
    #[serde(default)]
    #[schemars(extend("x-atrium-sensitive" = true))]
    pub password: Option<String>,
}

impl std::fmt::Debug for OffsiteBackupsDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsiteBackupsDocument")
            .field("target", &self.target)
            .field("address", &self.address)
            .field("password", &self.password.as_ref().map(|_| "(secret)"))
            .finish()
    }
}

/// The environment variable that supplies `offsite_backups.password` when the configuration leaves it unset.
pub const OFFSITE_BACKUP_PASSWORD_ENV: &str = "ATRIUM_OFFSITE_BACKUP_PASSWORD";

/// Checks an off-site store's password: long enough, and safe in a URL as it is.
pub fn check_offsite_password(password: &str) -> Result<(), String> {
    let safe = password.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if password.len() >= 16 && safe {
        Ok(())
    } else {
        Err("write 16 or more letters, digits, '-', '.', '_' or '~' (e.g. the output of `openssl rand -hex 24`)"
            .to_owned())
    }
}

impl TargetDocument {
    /// Where the reverse proxy serves HTTPS: the configured address, else `public_address:443`.
    pub fn https_address(&self) -> Option<String> {
        self.ingress_https_address.clone().or_else(|| {
            self.public_address.as_ref().map(|address| match address.parse::<IpAddr>() {
                Ok(IpAddr::V6(v6)) => format!("[{v6}]:443"),
                _ => format!("{}:443", address.trim_end_matches('.')),
            })
        })
    }
}

/// The PowerDNS HTTP API that serves the platform zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsDocument {
    /// The API's base URL, e.g. `http://127.0.0.1:8081`.
    pub api_url: String,
    /// The API key (`X-API-Key`). Secret: never shown in plans or logs. Unset: the
    /// `ATRIUM_DNS_API_KEY` environment variable, which keeps the key out of configuration files.
    #[serde(default)]
    #[schemars(extend("x-atrium-sensitive" = true))]
    pub api_key: Option<String>,
    /// The PowerDNS server id. Default `localhost`.
    #[serde(default)]
    pub server_id: Option<String>,
    /// The DNS server, `host:port`, asked whether customers have published their verification TXT
    /// records. Default: the system's resolver.
    #[serde(default)]
    pub resolver: Option<String>,
}

/// The ACME CA that issues the platform zone's wildcard certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformCertificateDocument {
    /// The CA's ACME directory, e.g. `https://acme-v02.api.letsencrypt.org/directory`. Atrium orders
    /// `*.<platform_zone>` there by the DNS-01 challenge, written through the `dns` block's API, and
    /// hands it to every target's reverse proxy: platform subdomains then need no certificate of
    /// their own. Customers' own domains keep theirs.
    pub acme_directory_url: String,
    /// A PEM file with the root certificate that signs the directory's HTTPS certificate, for a CA
    /// outside the system's trust store (a private or test CA). Default: the system's roots.
    #[serde(default)]
    pub trusted_roots_file: Option<String>,
    /// Where the CA sends notices about the certificate, e.g. `ops@example.net`.
    #[serde(default)]
    pub contact_email: Option<String>,
}

/// The SMTP relay that sends welcome emails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpDocument {
    /// The relay, e.g. `smtp://127.0.0.1:2525`, `smtp://mail.example.net:587?tls=required` (STARTTLS) or
    /// `smtps://mail.example.net` (TLS). Put the relay's credentials in `username` and `password`, not here:
    /// this URL is shown in plans.
    pub url: String,
    /// The sender address of platform emails, e.g. `Atrium <noreply@example.net>`.
    pub from: String,
    /// The user name the relay wants, if it wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// The relay's password. Secret: never shown in plans, state or logs. Unset: the
    /// `ATRIUM_SMTP_PASSWORD` environment variable.
    #[serde(default)]
    #[schemars(extend("x-atrium-sensitive" = true))]
    pub password: Option<String>,
}

/// The environment variable that supplies `smtp.password` when the configuration leaves it unset.
pub const SMTP_PASSWORD_ENV: &str = "ATRIUM_SMTP_PASSWORD";

impl SmtpDocument {
    /// The password in force: the attribute, else the environment variable.
    pub fn effective_password(&self, environment_value: Option<String>) -> Option<String> {
        self.password.clone().or(environment_value.filter(|password| !password.is_empty()))
    }
}

/// The support tracker (Redmine's REST API) where tenants' managers get accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackerDocument {
    /// The tracker's base URL, e.g. `https://support.example.net`.
    pub url: String,
    /// An administrator's API key. Secret: never shown in plans or logs. Unset: the
    /// `ATRIUM_TRACKER_API_KEY` environment variable.
    #[serde(default)]
    #[schemars(extend("x-atrium-sensitive" = true))]
    pub api_key: Option<String>,
    /// The role managers get in their tenant's support project. Default `Reporter`.
    #[serde(default)]
    pub role: Option<String>,
}

/// The environment variable that supplies `tracker.api_key` when the configuration leaves it unset.
pub const TRACKER_API_KEY_ENV: &str = "ATRIUM_TRACKER_API_KEY";

impl TrackerDocument {
    /// The API key in force: the attribute, else the environment variable.
    pub fn effective_api_key(&self, environment_value: Option<String>) -> Option<String> {
        self.api_key.clone().or(environment_value.filter(|key| !key.trim().is_empty()))
    }
}

/// Atrium's configuration: the registry, the platform zone, hosting targets, DNS and SMTP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfigDocument {
    /// The control-plane registry: `sqlite://PATH` (the default, `sqlite://atrium.db` in the working
    /// directory) or `postgres://user@host:port/database`. Falls back to the `ATRIUM_REGISTRY_URL`
    /// environment variable. Sensitive, because a PostgreSQL URL may carry a password.
    #[serde(default)]
    #[schemars(extend("x-atrium-sensitive" = true))]
    pub registry_url: Option<String>,
    /// The name under which this configuration owns what it creates in the registry. A create never
    /// takes over an object of another owner: another Terraform configuration sharing the registry,
    /// or an `atrium` CLI owner. Default: the working directory (with the workspace, when it is not
    /// `default`); set it when the same configuration runs from different directories (CI runners).
    #[serde(default)]
    pub owner: Option<String>,
    /// The DNS zone under which platform subdomains are created, e.g. `apps.example.net`.
    #[serde(default)]
    pub platform_zone: Option<String>,
    /// The hosting targets by name, e.g. `lyon-onprem` or `cloud-fra1`.
    #[serde(default)]
    pub targets: Option<BTreeMap<String, TargetDocument>>,
    /// The DNS API that serves `platform_zone`.
    #[serde(default)]
    pub dns: Option<DnsDocument>,
    /// One wildcard certificate for every platform subdomain, obtained by Atrium from an ACME CA.
    /// Without it, the reverse proxy orders a certificate for each platform subdomain.
    #[serde(default)]
    pub platform_certificate: Option<PlatformCertificateDocument>,
    /// The SMTP relay for welcome emails.
    #[serde(default)]
    pub smtp: Option<SmtpDocument>,
    /// The support tracker where managers of tenants with `tracker_access` get accounts.
    #[serde(default)]
    pub tracker: Option<TrackerDocument>,
    /// A directory of the operator's own catalog entries (`*.hcl`), added to the built-in apps
    /// (an entry with a built-in app's name replaces it).
    #[serde(default)]
    pub catalog_dir: Option<String>,
}

impl PlatformConfigDocument {
    /// Every problem in the configuration, each naming its attribute.
    pub fn validate(&self) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        let mut push = |path: AttributePath, summary: &str, result: Result<(), String>| {
            if let Err(detail) = result {
                errors.push(ValidationError::new(path, summary, detail));
            }
        };
        if let Some(url) = &self.registry_url {
            push(AttributePath::root("registry_url"), "Invalid registry URL", check_registry_url(url));
        }
        if let Some(owner) = &self.owner {
            push(AttributePath::root("owner"), "Invalid owner", check_owner(owner));
        }
        if let Some(zone) = &self.platform_zone {
            push(AttributePath::root("platform_zone"), "Invalid DNS zone", check_dns_name(zone));
        }
        for (name, target) in self.targets.iter().flatten() {
            let path = AttributePath::root("targets").key(name);
            push(path.clone(), "Invalid target name", check_target_name(name));
            push(path.attribute("docker_host"), "Invalid Docker endpoint", check_docker_host(&target.docker_host));
            if let Some(directory) = &target.docker_cert_path {
                push(
                    path.attribute("docker_cert_path"),
                    "Invalid Docker certificate directory",
                    check_cert_path(directory, &target.docker_host),
                );
            }
            if let Some(url) = &target.ingress_admin_url {
                push(path.attribute("ingress_admin_url"), "Invalid Caddy admin URL", check_http_url(url));
            }
            if let Some(address) = &target.public_address {
                push(path.attribute("public_address"), "Invalid public address", check_public_address(address));
            }
            if let Some(address) = &target.ingress_https_address {
                push(path.attribute("ingress_https_address"), "Invalid HTTPS address", check_socket_address(address));
            }
            if let Some(offsite) = &target.offsite_backups {
                let path = path.attribute("offsite_backups");
                let known = self.targets.iter().flatten().map(|(name, _)| name.as_str()).filter(|n| n != name);
                let known: Vec<&str> = known.collect();
                push(
                    path.attribute("target"),
                    "Invalid off-site backup target",
                    if offsite.target == *name {
                        Err(format!(
                            "a copy on target {name} itself is not off-site: name another target ({})",
                            list_or_none(&known)
                        ))
                    } else if known.contains(&offsite.target.as_str()) {
                        Ok(())
                    } else {
                        Err(format!(
                            "{:?} is not a target of this configuration: name one of {}",
                            offsite.target,
                            list_or_none(&known)
                        ))
                    },
                );
                push(
                    path.attribute("address"),
                    "Invalid off-site store address",
                    check_socket_address(&offsite.address),
                );
                if let Some(password) = &offsite.password {
                    push(
                        path.attribute("password"),
                        "Invalid off-site store password",
                        check_offsite_password(password),
                    );
                }
            }
        }
        // Every target sending its backups to one store agrees on how to reach it and its password.
        let mut stores: BTreeMap<&str, (&str, &OffsiteBackupsDocument)> = BTreeMap::new();
        for (name, target) in self.targets.iter().flatten() {
            let Some(offsite) = &target.offsite_backups else { continue };
            let Some((first, earlier)) = stores.get(offsite.target.as_str()) else {
                stores.insert(&offsite.target, (name, offsite));
                continue;
            };
            let path = AttributePath::root("targets").key(name).attribute("offsite_backups");
            if earlier.address != offsite.address {
                push(
                    path.attribute("address"),
                    "Conflicting off-site store address",
                    Err(format!(
                        "target {first} reaches the store on {} at {}: one store runs there, so give the same address",
                        offsite.target, earlier.address
                    )),
                );
            }
            if earlier.password != offsite.password {
                push(
                    path.attribute("password"),
                    "Conflicting off-site store password",
                    Err(format!(
                        "target {first} gives the store on {} another password: one store runs there, with one password",
                        offsite.target
                    )),
                );
            }
        }
        if let Some(dns) = &self.dns {
            push(AttributePath::root("dns").attribute("api_url"), "Invalid DNS API URL", check_http_url(&dns.api_url));
            if dns.api_key.as_deref().is_some_and(|key| key.trim().is_empty()) {
                push(
                    AttributePath::root("dns").attribute("api_key"),
                    "Empty DNS API key",
                    Err(format!(
                        "set the PowerDNS API key (the api-key of its configuration), or leave api_key out and set {DNS_API_KEY_ENV}"
                    )),
                );
            }
            if let Some(resolver) = &dns.resolver {
                push(
                    AttributePath::root("dns").attribute("resolver"),
                    "Invalid resolver address",
                    check_socket_address(resolver),
                );
            }
            if let Some(server_id) = &dns.server_id {
                let ok =
                    !server_id.is_empty() && server_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                push(
                    AttributePath::root("dns").attribute("server_id"),
                    "Invalid DNS server id",
                    if ok {
                        Ok(())
                    } else {
                        Err(format!("{server_id:?} is not a PowerDNS server id: usually \"localhost\""))
                    },
                );
            }
        }
        if let Some(certificate) = &self.platform_certificate {
            let path = AttributePath::root("platform_certificate");
            push(
                path.attribute("acme_directory_url"),
                "Invalid ACME directory URL",
                check_http_url(&certificate.acme_directory_url),
            );
            if self.platform_zone.is_none() || self.dns.is_none() {
                push(
                    path.clone(),
                    "Platform certificate without a platform zone",
                    Err("the wildcard certificate is for platform_zone and is validated through the dns block's API: set both, or remove platform_certificate".to_owned()),
                );
            }
            if let Some(file) = &certificate.trusted_roots_file {
                push(
                    path.attribute("trusted_roots_file"),
                    "Trusted roots file not found",
                    if std::path::Path::new(file).is_file() {
                        Ok(())
                    } else {
                        Err(format!("{file:?} is not a file: point trusted_roots_file at a PEM file of the CA's root"))
                    },
                );
            }
            if let Some(email) = &certificate.contact_email {
                push(path.attribute("contact_email"), "Invalid contact email", check_contact_email(email));
            }
        }
        if let Some(directory) = &self.catalog_dir {
            let is_directory = std::path::Path::new(directory).is_dir();
            push(
                AttributePath::root("catalog_dir"),
                "Catalog directory not found",
                if is_directory {
                    Ok(())
                } else {
                    Err(format!(
                        "{directory:?} is not a directory: point catalog_dir at a directory of *.hcl catalog files"
                    ))
                },
            );
        }
        if let Some(tracker) = &self.tracker {
            push(AttributePath::root("tracker").attribute("url"), "Invalid tracker URL", check_http_url(&tracker.url));
        }
        if let Some(smtp) = &self.smtp {
            push(AttributePath::root("smtp").attribute("url"), "Invalid SMTP URL", check_smtp_url(&smtp.url));
            push(AttributePath::root("smtp").attribute("from"), "Invalid sender address", check_sender(&smtp.from));
        }
        errors
    }

    /// The registry URL in force: the attribute, else the environment, else the embedded default.
    pub fn effective_registry_url(&self, environment_value: Option<String>) -> String {
        self.registry_url
            .clone()
            .or(environment_value.filter(|v| !v.is_empty()))
            .unwrap_or_else(|| DEFAULT_REGISTRY_URL.to_owned())
    }
}

/// Checks the CA's contact address: a bare address, without `mailto:`.
fn check_contact_email(email: &str) -> Result<(), String> {
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !email.contains(':')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(())
        }
        _ => Err(format!("{email:?} is not an email address: write it as ops@example.net (no mailto:)")),
    }
}

/// Checks an owner name: 1 to 200 printable characters.
fn check_owner(owner: &str) -> Result<(), String> {
    if owner.trim().is_empty() || owner.chars().count() > 200 || owner.chars().any(char::is_control) {
        return Err(format!(
            "{owner:?} cannot name an owner: write 1 to 200 printable characters, e.g. \"platform-prod\""
        ));
    }
    Ok(())
}

/// Checks a registry URL: `sqlite:` or `postgres(ql)://`.
pub fn check_registry_url(url: &str) -> Result<(), String> {
    let hint = "use sqlite://PATH (e.g. sqlite://atrium.db) or postgres://USER@HOST:PORT/DATABASE";
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(format!("{url:?} names no database file: {hint}"));
        }
        return Ok(());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let parsed = url::Url::parse(url).map_err(|e| format!("the URL does not parse ({e}): {hint}"))?;
        if parsed.host_str().is_none_or(str::is_empty) && !parsed.query_pairs().any(|(k, _)| k == "host") {
            return Err(format!("the PostgreSQL URL names no host: {hint}"));
        }
        return Ok(());
    }
    Err(format!("the registry must be SQLite or PostgreSQL: {hint}"))
}

fn check_dns_name(name: &str) -> Result<(), String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let labels_ok = !trimmed.is_empty()
        && trimmed.len() <= 253
        && trimmed.contains('.')
        && trimmed.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if labels_ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a DNS zone: write lowercase labels separated by dots, e.g. \"apps.example.net\""))
    }
}

/// `host:port`, e.g. `127.0.0.1:8443` or `ingress.example.net:443`.
fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() { "(there is no other target)".to_owned() } else { names.join(", ") }
}

fn check_socket_address(address: &str) -> Result<(), String> {
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if port_ok {
        Ok(())
    } else {
        Err(format!("{address:?} is not HOST:PORT: write it like \"127.0.0.1:8443\" or \"ingress.example.net:443\""))
    }
}

fn check_target_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a target name: use lowercase letters, digits, '-' and '_', starting with a letter (e.g. \"lyon-onprem\")"
        ))
    }
}

fn check_docker_host(host: &str) -> Result<(), String> {
    let hint = "use unix:///PATH/docker.sock, tcp://HOST:PORT or ssh://USER@HOST";
    if let Some(path) = host.strip_prefix("unix://") {
        return if path.starts_with('/') {
            Ok(())
        } else {
            Err(format!("{host:?} is not an absolute socket path: {hint}"))
        };
    }
    let parsed = url::Url::parse(host).map_err(|_| format!("{host:?} is not a Docker endpoint: {hint}"))?;
    match parsed.scheme() {
        "tcp" | "ssh" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err(format!("{host:?} is not a Docker endpoint: {hint}")),
    }
}

fn check_cert_path(directory: &str, docker_host: &str) -> Result<(), String> {
    if !docker_host.starts_with("tcp://") {
        return Err(format!("TLS certificates apply to tcp:// endpoints only; {docker_host:?} is not one"));
    }
    let missing: Vec<&str> = ["ca.pem", "cert.pem", "key.pem"]
        .into_iter()
        .filter(|file| !std::path::Path::new(directory).join(file).is_file())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("{directory:?} lacks {}: it must hold ca.pem, cert.pem and key.pem", missing.join(", ")))
    }
}

fn check_http_url(value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some() => Ok(()),
        _ => Err(format!(
            "{value:?} is not an http(s) URL: write it as http://HOST:PORT, e.g. \"http://127.0.0.1:2019\""
        )),
    }
}

fn check_public_address(value: &str) -> Result<(), String> {
    if value.parse::<IpAddr>().is_ok() || check_dns_name(value).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is neither an IP address nor a host name: e.g. \"203.0.113.10\" or \"edge.example.net\""
        ))
    }
}

fn check_smtp_url(value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(parsed) if parsed.password().is_some() => Err(
            "the URL carries a password, which would show in plans: move it to smtp.password (or the ATRIUM_SMTP_PASSWORD environment variable) and the user to smtp.username"
                .to_owned(),
        ),
        Ok(parsed) if matches!(parsed.scheme(), "smtp" | "smtps") && parsed.host_str().is_some() => Ok(()),
        _ => Err(format!(
            "{:?} is not an SMTP URL: write it as smtp://HOST:PORT or smtps://HOST",
            redact_url(value)
        )),
    }
}

fn check_sender(value: &str) -> Result<(), String> {
    let address = match (value.find('<'), value.rfind('>')) {
        (Some(start), Some(end)) if start < end && end == value.len() - 1 => &value[start + 1..end],
        (None, None) => value,
        _ => {
            return Err(format!(
                "{value:?} is not a sender: write \"noreply@example.net\" or \"Atrium <noreply@example.net>\""
            ));
        }
    };
    crate::model::validate::email(address.trim())
}

/// The registry URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(document: serde_json::Value) -> Vec<String> {
        let document: PlatformConfigDocument = serde_json::from_value(document).unwrap();
        document.validate().iter().map(|e| e.attribute.to_string()).collect()
    }

    #[test]
    fn provider_configuration_errors_point_at_the_attribute() {
        assert!(paths(serde_json::json!({})).is_empty());
        assert!(
            paths(serde_json::json!({
                "registry_url": "postgres://atrium@127.0.0.1:5432/atrium",
                "platform_zone": "apps.example.net.",
                "targets": {"lyon": {"location": "onprem", "docker_host": "unix:///run/docker.sock",
                                      "ingress_admin_url": "http://127.0.0.1:2019", "public_address": "203.0.113.7"},
                            "fra1": {"location": "cloud", "docker_host": "tcp://10.0.0.4:2376", "orchestrator": "swarm",
                                      "public_address": "edge.example.net"}},
                "dns": {"api_url": "http://127.0.0.1:8081", "api_key": "k"},
                "smtp": {"url": "smtp://127.0.0.1:2525", "from": "Atrium <noreply@example.net>"}
            }))
            .is_empty()
        );
        assert_eq!(paths(serde_json::json!({"registry_url": "mysql://x"})), ["registry_url"]);
        assert_eq!(paths(serde_json::json!({"registry_url": "sqlite://"})), ["registry_url"]);
        assert_eq!(paths(serde_json::json!({"platform_zone": "Apps"})), ["platform_zone"]);
        assert_eq!(
            paths(serde_json::json!({"targets": {"lyon": {"location": "onprem", "docker_host": "docker.sock",
                "ingress_admin_url": "ftp://x", "public_address": "not an address"}}})),
            [
                "targets[\"lyon\"].docker_host",
                "targets[\"lyon\"].ingress_admin_url",
                "targets[\"lyon\"].public_address"
            ]
        );
        assert_eq!(
            paths(serde_json::json!({"targets": {"Lyon": {"location": "cloud", "docker_host": "tcp://h:1"}}})),
            ["targets[\"Lyon\"]"]
        );
        assert_eq!(paths(serde_json::json!({"dns": {"api_url": "x", "api_key": " "}})), ["dns.api_url", "dns.api_key"]);
        assert_eq!(
            paths(serde_json::json!({"smtp": {"url": "http://x", "from": "nobody"}})),
            ["smtp.url", "smtp.from"]
        );
        assert_eq!(
            paths(serde_json::json!({"platform_certificate": {"acme_directory_url": "acme.example.net",
                "trusted_roots_file": "/nonexistent/root.pem", "contact_email": "mailto:ops@example.net"}})),
            [
                "platform_certificate.acme_directory_url",
                "platform_certificate",
                "platform_certificate.trusted_roots_file",
                "platform_certificate.contact_email"
            ]
        );
        assert!(
            paths(serde_json::json!({"platform_zone": "apps.example.net", "dns": {"api_url": "http://127.0.0.1:8081"},
                "platform_certificate": {"acme_directory_url": "https://acme.example.net/directory",
                                         "contact_email": "ops@example.net"}}))
            .is_empty()
        );
    }

    #[test]
    fn an_offsite_store_is_on_another_known_target_with_one_address_and_a_strong_password() {
        let target = |offsite: serde_json::Value| serde_json::json!({"location": "onprem", "docker_host": "unix:///run/docker.sock", "offsite_backups": offsite});
        let cloud = serde_json::json!({"location": "cloud", "docker_host": "tcp://10.0.0.4:2376"});
        let good =
            serde_json::json!({"target": "fra1", "address": "198.51.100.7:8765", "password": "0123456789abcdef-x"});
        assert!(paths(serde_json::json!({"targets": {"lyon": target(good.clone()), "fra1": cloud}})).is_empty());
        let lyon_offsite = |attribute: &str| format!("targets[\"lyon\"].offsite_backups.{attribute}");
        assert_eq!(
            paths(serde_json::json!({"targets": {"lyon": target(serde_json::json!(
                {"target": "lyon", "address": "198.51.100.7", "password": "short"}))}})),
            [lyon_offsite("target"), lyon_offsite("address"), lyon_offsite("password")]
        );
        assert_eq!(
            paths(serde_json::json!({"targets": {"lyon": target(serde_json::json!(
                {"target": "nowhere", "address": "h:1", "password": "with a space in it!"}))}})),
            [lyon_offsite("target"), lyon_offsite("password")]
        );
        // Two targets sending to one store must agree on it.
        let other =
            serde_json::json!({"target": "fra1", "address": "198.51.100.7:9999", "password": "fedcba9876543210-y"});
        let mut errors = paths(serde_json::json!({"targets": {"lyon": target(good.clone()), "paris": target(other),
            "fra1": {"location": "cloud", "docker_host": "tcp://10.0.0.4:2376"}}}));
        errors.sort();
        assert_eq!(
            errors,
            ["targets[\"paris\"].offsite_backups.address", "targets[\"paris\"].offsite_backups.password"]
        );
        let debug = format!("{:?}", serde_json::from_value::<OffsiteBackupsDocument>(good).unwrap());
        assert!(!debug.contains("0123456789abcdef-x"), "{debug}");
    }

    #[test]
    fn registry_url_falls_back_to_environment_then_default() {
        let empty = PlatformConfigDocument::default();
        assert_eq!(empty.effective_registry_url(None), DEFAULT_REGISTRY_URL);
        assert_eq!(empty.effective_registry_url(Some("sqlite://x.db".into())), "sqlite://x.db");
        let set = PlatformConfigDocument { registry_url: Some("sqlite://y.db".into()), ..Default::default() };
        assert_eq!(set.effective_registry_url(Some("sqlite://x.db".into())), "sqlite://y.db");
    }
}
