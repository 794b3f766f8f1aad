//! A domain's planned change carried out, with what follows it for the app
//! it serves: the app told its new addresses, its waiting welcome email sent
//! once its domain is live, and what the user should know (a custom domain
//! waiting for its verification record). Both front doors call this; it
//! needs the app instances' apply, which the domain's own does not.

use crate::apply::app_instance::AppContext;
use crate::apply::domain::{DomainApplyContext, DomainApplyError, domain_document};
use crate::backends::error_chain;
use crate::model::app_instance::AppInstanceId;
use crate::model::attribute::{AttributePath, ValidationError};
use crate::model::domain::{DomainDocument, DomainSpec, DomainStatus, Hostname};
use crate::model::ownership::CreateToken;
use crate::model::timeouts::Timeouts;
use crate::plan::domain::{DomainDecision, pending_warning};

/// What applying a domain's planned change answers: the domain as a state
/// holds it (`None` after a destroy), and what the user should know.
#[derive(Debug)]
pub struct AppliedDomain {
    pub document: Option<DomainDocument>,
    pub warnings: Vec<ValidationError>,
}

fn warning(summary: &str, detail: String) -> ValidationError {
    ValidationError::new(AttributePath::default(), summary, detail)
}

/// Tells the app its addresses after one of its domains went live or away;
/// a failure is a warning (the domain itself serves), and the instance's
/// next deployment tells it again.
async fn announce_address(apps: &AppContext<'_>, instance: &AppInstanceId) -> Option<ValidationError> {
    let error = apps.announce_address_of(instance).await.err()?;
    Some(warning(
        "The app was not told its public address",
        format!(
            "{}; its links and trusted host names may still name its old address. The next deployment of app instance {instance} tells it again",
            error_chain(&error)
        ),
    ))
}

/// Carries out a domain's planned change: `desired` `None` destroys the
/// domain `hostname`; otherwise the plan's decision (its status) is applied.
pub async fn apply_planned(
    context: &DomainApplyContext<'_>,
    apps: &AppContext<'_>,
    hostname: &Hostname,
    desired: Option<&DomainSpec>,
    decision: Option<&DomainDecision>,
    create: Option<&CreateToken>,
    timeouts: Option<Timeouts>,
) -> Result<AppliedDomain, DomainApplyError> {
    let served_before = context.registry.get_domain(hostname).await.ok().flatten().map(|r| r.spec.app_instance_id);
    let Some(spec) = desired else {
        context.destroy(hostname).await?;
        let warnings = match served_before {
            Some(instance) => announce_address(apps, &instance).await.into_iter().collect(),
            None => Vec::new(),
        };
        return Ok(AppliedDomain { document: None, warnings });
    };
    // The plan decided the status; apply never looks the verification up again.
    let status = decision
        .map(|decision| decision.status)
        .ok_or_else(|| DomainApplyError::NoDecision { hostname: spec.hostname.to_string() })?;
    let started = tokio::time::Instant::now();
    let record = context.apply(spec, status, create).await?;
    tracing::info!(
        domain = %spec.hostname,
        status = record.status.as_str(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "domain applied"
    );
    let records = context.desired_records(&spec.hostname, record.kind, &record.target)?;
    let mut warnings = Vec::new();
    // The instance the domain left, if it moved, no longer has this name.
    if let Some(before) = served_before.filter(|before| *before != spec.app_instance_id) {
        warnings.extend(announce_address(apps, &before).await);
    }
    // Every apply: a name that went live, or stopped being live, changes its addresses.
    warnings.extend(announce_address(apps, &spec.app_instance_id).await);
    if record.status == DomainStatus::Active {
        let undelivered = match apps.deliver_waiting_welcome(&spec.app_instance_id).await {
            Ok(undelivered) => undelivered,
            Err(error) => Some(format!("{}; the next apply of the app instance sends it again", error_chain(&error))),
        };
        if let Some(detail) = undelivered {
            warnings.push(warning("Welcome email not sent", detail));
        }
    }
    let tenant = spec.app_instance_id.tenant_id.to_string();
    if record.status == DomainStatus::PendingVerification {
        let address = context.targets.public_address(&record.target).ok();
        warnings.push(pending_warning(&tenant, &spec.hostname, address));
    }
    let suspended =
        record.status == DomainStatus::Active && context.tenant_suspended(&spec.app_instance_id.tenant_id).await;
    let status = if suspended { "suspended" } else { record.status.as_str() };
    let document = domain_document(&record, &records, status, record.certificate_expires_at.clone(), timeouts);
    Ok(AppliedDomain { document: Some(document), warnings })
}
