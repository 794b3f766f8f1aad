//! The platform a front door works against, set up from the configuration
//! document (the provider block, or the CLI's `atrium` block): the registry,
//! the catalog, the targets and the backends, and the contexts every apply
//! takes. Both front doors set up the same platform from the same document,
//! so a configuration means the same thing through Terraform and the CLI.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::watch;

use crate::apply::app_instance::AppContext;
use crate::apply::domain::DomainApplyContext;
use crate::apply::platform_certificate::PlatformCertificate;
use crate::apply::support_plan::SupportPlanContext;
use crate::backends::acme::AcmeSettings;
use crate::backends::dns::DnsZones;
use crate::backends::error_chain;
use crate::backends::mailer::{Mailer, SmtpMailer};
use crate::backends::powerdns::PowerDns;
use crate::backends::redmine::Redmine;
use crate::backends::resolver::DnsResolver;
use crate::backends::targets::Targets;
use crate::backends::tracker::Tracker;
use crate::catalog::Catalog;
use crate::config::{
    DNS_API_KEY_ENV, OFFSITE_BACKUP_PASSWORD_ENV, PlatformConfigDocument, REGISTRY_URL_ENV, SMTP_PASSWORD_ENV,
    SmtpDocument, TRACKER_API_KEY_ENV, check_registry_url,
};
use crate::model::attribute::{AttributePath, ValidationError};
use crate::model::ownership::Owner;
use crate::observe::{AppObservations, DomainObservations};
use crate::registry::Registry;

/// The settings a configuration may leave to environment variables (so that
/// secrets stay out of configuration files).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub registry_url: Option<String>,
    pub dns_api_key: Option<String>,
    pub smtp_password: Option<String>,
    pub tracker_api_key: Option<String>,
    pub offsite_backup_password: Option<String>,
}

impl Environment {
    /// The values of this process's environment.
    pub fn of_process() -> Self {
        let var = |name: &str| std::env::var(name).ok();
        Self {
            registry_url: var(REGISTRY_URL_ENV),
            dns_api_key: var(DNS_API_KEY_ENV),
            smtp_password: var(SMTP_PASSWORD_ENV),
            tracker_api_key: var(TRACKER_API_KEY_ENV),
            offsite_backup_password: var(OFFSITE_BACKUP_PASSWORD_ENV),
        }
    }
}

/// The registry, the catalog, the targets and the backends a configuration names.
pub struct Platform {
    pub registry: Registry,
    /// The apps; the built-in catalog is parsed on first use (a configuration
    /// of tenants alone never pays for it), an operator's directory at once
    /// (its mistakes are configuration errors).
    catalog: OnceLock<Catalog>,
    pub targets: Targets,
    /// The platform zone's DNS, when the configuration has a `dns` block.
    pub dns: Option<PowerDns>,
    pub resolver: DnsResolver,
    pub platform_zone: Option<String>,
    /// The platform zone's wildcard certificate, when the configuration has a `platform_certificate` block.
    pub platform_certificate: Option<PlatformCertificate>,
    /// The SMTP relay for welcome emails, when the configuration has an `smtp` block.
    pub mailer: Option<SmtpMailer>,
    /// The support tracker, when the configuration has a `tracker` block.
    pub tracker: Option<Redmine>,
    /// The role managers get in their support project.
    pub tracker_role: String,
}

fn setup_error(path: AttributePath, summary: &str, detail: impl Into<String>) -> Vec<ValidationError> {
    vec![ValidationError::new(path, summary, detail)]
}

/// The SMTP relay's user name and password in force, when it wants them.
fn smtp_credentials(
    smtp: &SmtpDocument,
    environment: &Environment,
) -> Result<Option<(String, String)>, Vec<ValidationError>> {
    let password = smtp.effective_password(environment.smtp_password.clone());
    match (&smtp.username, password) {
        (None, None) => Ok(None),
        (Some(username), Some(password)) => Ok(Some((username.clone(), password))),
        (Some(_), None) => Err(setup_error(
            AttributePath::root("smtp").attribute("password"),
            "Missing SMTP password",
            format!(
                "smtp.username is set: set smtp.password, or the {SMTP_PASSWORD_ENV} environment variable, to its password"
            ),
        )),
        (None, Some(_)) => Err(setup_error(
            AttributePath::root("smtp").attribute("username"),
            "Missing SMTP user name",
            "an SMTP password is set (smtp.password or ATRIUM_SMTP_PASSWORD): set smtp.username to the user it belongs to",
        )),
    }
}

/// The targets with their off-site stores' passwords in force: the
/// attribute, else the environment variable (checked as the attribute is).
fn offsite_passwords(
    mut targets: std::collections::BTreeMap<String, crate::config::TargetDocument>,
    environment: &Environment,
) -> Result<std::collections::BTreeMap<String, crate::config::TargetDocument>, Vec<ValidationError>> {
    for (name, target) in &mut targets {
        let Some(offsite) = &mut target.offsite_backups else { continue };
        let path = AttributePath::root("targets").key(name).attribute("offsite_backups").attribute("password");
        if offsite.password.is_none() {
            let password = environment.offsite_backup_password.clone().filter(|p| !p.is_empty()).ok_or_else(|| {
                setup_error(
                    path.clone(),
                    "Missing off-site store password",
                    format!("set offsite_backups.password, or the {OFFSITE_BACKUP_PASSWORD_ENV} environment variable, to the off-site store's password"),
                )
            })?;
            crate::config::check_offsite_password(&password).map_err(|detail| {
                setup_error(
                    path.clone(),
                    "Invalid off-site store password",
                    format!("{OFFSITE_BACKUP_PASSWORD_ENV}: {detail}"),
                )
            })?;
            offsite.password = Some(password);
        }
    }
    Ok(targets)
}

impl Platform {
    /// Sets up the platform a configuration names: every problem is an error
    /// pointed at its attribute (the root path when no attribute caused it).
    pub async fn connect(
        document: &PlatformConfigDocument,
        environment: &Environment,
    ) -> Result<Platform, Vec<ValidationError>> {
        let errors = document.validate();
        if !errors.is_empty() {
            return Err(errors);
        }
        let url = document.effective_registry_url(environment.registry_url.clone());
        check_registry_url(&url).map_err(|detail| {
            setup_error(AttributePath::default(), "Invalid registry URL", format!("{REGISTRY_URL_ENV}: {detail}"))
        })?;
        let catalog = match &document.catalog_dir {
            None => OnceLock::new(),
            Some(directory) => {
                let catalog = Catalog::with_directory(std::path::Path::new(directory)).map_err(|error| {
                    setup_error(
                        AttributePath::root("catalog_dir"),
                        "Invalid catalog entry",
                        format!("{}. Fix the file or remove it from catalog_dir.", error_chain(&error)),
                    )
                })?;
                OnceLock::from(catalog)
            }
        };
        let targets = Targets::new(offsite_passwords(document.targets.clone().unwrap_or_default(), environment)?);
        let dns = match &document.dns {
            None => None,
            Some(dns) => {
                let api_key = dns.effective_api_key(environment.dns_api_key.clone()).ok_or_else(|| {
                    setup_error(
                        AttributePath::root("dns").attribute("api_key"),
                        "Missing DNS API key",
                        format!(
                            "set dns.api_key, or the {DNS_API_KEY_ENV} environment variable, to the PowerDNS API key"
                        ),
                    )
                })?;
                Some(PowerDns::new(&dns.api_url, &api_key, dns.server_id.as_deref().unwrap_or("localhost")))
            }
        };
        let resolver =
            DnsResolver::new(document.dns.as_ref().and_then(|dns| dns.resolver.as_deref())).map_err(|error| {
                setup_error(
                    AttributePath::root("dns").attribute("resolver"),
                    "Cannot set up the DNS resolver",
                    error_chain(&error),
                )
            })?;
        let mailer = match &document.smtp {
            None => None,
            Some(smtp) => {
                let credentials = smtp_credentials(smtp, environment)?;
                let mailer = SmtpMailer::new(&smtp.url, &smtp.from, credentials).map_err(|error| {
                    setup_error(AttributePath::root("smtp"), "Cannot use the SMTP relay", error_chain(&error))
                })?;
                Some(mailer)
            }
        };
        let tracker = match &document.tracker {
            None => None,
            Some(tracker) => {
                let api_key = tracker.effective_api_key(environment.tracker_api_key.clone()).ok_or_else(|| {
                    setup_error(
                        AttributePath::root("tracker").attribute("api_key"),
                        "Missing tracker API key",
                        format!(
                            "set tracker.api_key, or the {TRACKER_API_KEY_ENV} environment variable, to an administrator's API key"
                        ),
                    )
                })?;
                Some(Redmine::new(&tracker.url, &api_key))
            }
        };
        let platform_certificate = match (&document.platform_certificate, &document.platform_zone) {
            (Some(certificate), Some(zone)) => Some(PlatformCertificate::new(
                AcmeSettings {
                    directory_url: certificate.acme_directory_url.clone(),
                    trusted_roots_file: certificate.trusted_roots_file.clone().map(Into::into),
                    contact_email: certificate.contact_email.clone(),
                },
                zone,
            )),
            _ => None,
        };
        let tracker_role =
            document.tracker.as_ref().and_then(|t| t.role.clone()).unwrap_or_else(|| "Reporter".to_owned());
        let registry = Registry::connect(&url).await.map_err(|error| {
            let path = if document.registry_url.is_some() {
                AttributePath::root("registry_url")
            } else {
                AttributePath::default()
            };
            setup_error(
                path,
                "Cannot open the registry",
                format!(
                    "{}. Check registry_url (or {REGISTRY_URL_ENV}) and that the database is reachable.",
                    error_chain(&error)
                ),
            )
        })?;
        Ok(Platform {
            registry,
            catalog,
            targets,
            dns,
            resolver,
            platform_zone: document.platform_zone.clone(),
            platform_certificate,
            mailer,
            tracker,
            tracker_role,
        })
    }

    pub fn catalog(&self) -> &Catalog {
        self.catalog.get_or_init(Catalog::built_in)
    }

    /// What an app instance's apply and observation take.
    pub fn app_context<'a>(
        &'a self,
        observations: &'a AppObservations,
        owner: &'a Owner,
        deadline: Duration,
        cancelled: watch::Receiver<bool>,
    ) -> AppContext<'a> {
        AppContext {
            registry: &self.registry,
            observations,
            catalog: self.catalog(),
            targets: &self.targets,
            mailer: self.mailer.as_ref().map(|mailer| mailer as &dyn Mailer),
            platform_dns: self
                .dns
                .as_ref()
                .zip(self.platform_zone.as_deref())
                .map(|(dns, zone)| crate::apply::domain::PlatformDns { dns: dns as &dyn DnsZones, zone }),
            owner,
            deadline,
            cancelled,
        }
    }

    /// What a support plan's apply and observation take.
    pub fn support_plan_context<'a>(
        &'a self,
        owner: &'a Owner,
        deadline: Duration,
        cancelled: watch::Receiver<bool>,
    ) -> SupportPlanContext<'a> {
        SupportPlanContext {
            registry: &self.registry,
            tracker: self.tracker.as_ref().map(|tracker| tracker as &dyn Tracker),
            tracker_role: &self.tracker_role,
            owner,
            deadline,
            cancelled,
        }
    }

    /// What a domain's apply and observation take.
    pub fn domain_context<'a>(
        &'a self,
        observations: &'a DomainObservations,
        owner: &'a Owner,
        deadline: Duration,
        cancelled: watch::Receiver<bool>,
    ) -> DomainApplyContext<'a> {
        DomainApplyContext {
            registry: &self.registry,
            observations,
            targets: &self.targets,
            dns: self.dns.as_ref().map(|dns| dns as &dyn DnsZones),
            resolver: &self.resolver,
            platform_zone: self.platform_zone.as_deref(),
            platform_certificate: self.platform_certificate.as_ref(),
            owner,
            deadline,
            cancelled,
        }
    }
}
