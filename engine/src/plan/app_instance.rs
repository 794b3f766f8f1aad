//! Planning app instances: `plan_app_instance(desired, observed)`, pure and
//! deterministic, with the same `+ ~ -/+ -` text as tenants.
//!
//! The decision that matters most is whether a change needs a *new
//! deployment* (a new generation of the app container, health-checked beside
//! the old one) or only a new registry record, and why.

use std::collections::BTreeMap;

use crate::catalog::{CHANNELS, Catalog, CatalogEntry};
use crate::model::TenantId;
use crate::model::app_instance::{
    AppInstanceDocument, AppInstanceDraft, AppInstanceId, AppInstanceRecord, AppInstanceSpec, Customizations,
    InstanceHealth, MAX_ENVIRONMENT_VALUE_BYTES, MAX_FILE_BYTES, check_instance_name,
};
use crate::model::attribute::{AttributePath, ValidationError};
use crate::model::backup::{BackupSettings, MOST_KEPT, check_count, check_interval, check_keep_within};
use crate::model::markers;
use crate::model::password::Password;
use crate::model::tenant::{TenantRecord, TenantStatus};
use crate::plan::draft::{Draft, DraftPlan, Planned, marked_attributes, replaced, same};
use crate::plan::tenant::{Action, AttributeChange};
use crate::plan::text::ObjectChange;
use serde::{Deserialize, Serialize};

/// The attributes whose change replaces the object: the document's markers, read once.
static REPLACING: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| marked_attributes::<AppInstanceDocument>(markers::FORCES_REPLACEMENT));

/// A planned change to one app instance.
#[derive(Debug, Clone, PartialEq)]
pub struct AppChange {
    pub action: Action,
    pub id: AppInstanceId,
    pub attribute_changes: Vec<AttributeChange>,
    /// Whether the app container is deployed anew (create, replace, upgrade, repair).
    pub redeploy: bool,
    pub reason: String,
}

fn quoted(value: &str) -> String {
    format!("{value:?}")
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Files by path with a digest of each content: plan text stays short and
/// shows which file changed.
fn file_digests(files: &BTreeMap<String, String>) -> BTreeMap<&str, String> {
    files
        .iter()
        .map(|(path, content)| {
            let one = BTreeMap::from([(String::new(), content.clone())]);
            (path.as_str(), format!("sha256:{}", crate::catalog::files_digest(&one)))
        })
        .collect()
}

/// Compares what the registry records with what is desired, attribute by attribute.
fn attribute_changes(before: &AppInstanceSpec, after: &AppInstanceSpec) -> Vec<(AttributeChange, bool)> {
    // (attribute, before, after, forces replacement, redeploys)
    let fields: [(&'static str, String, String, bool, bool); 16] = [
        ("tenant_id", quoted(before.id.tenant_id.as_str()), quoted(after.id.tenant_id.as_str()), true, true),
        ("name", quoted(&before.id.name), quoted(&after.id.name), true, true),
        ("app", quoted(&before.app), quoted(&after.app), true, true),
        ("target", quoted(&before.target), quoted(&after.target), false, true),
        ("channel", quoted(&before.channel), quoted(&after.channel), false, true),
        ("version", quoted(&before.version), quoted(&after.version), false, true),
        ("users", before.users.to_string(), after.users.to_string(), false, true),
        // Scales the running generation.
        ("replicas", before.replicas.to_string(), after.replicas.to_string(), false, false),
        ("resources", json(&before.resources), json(&after.resources), false, true),
        ("customizations.environment", json(&before.environment), json(&after.environment), false, true),
        ("customizations.volumes", json(&before.extra_volumes), json(&after.extra_volumes), false, true),
        ("customizations.files", json(&file_digests(&before.files)), json(&file_digests(&after.files)), false, true),
        ("password_version", before.password_version.to_string(), after.password_version.to_string(), false, true),
        ("backup", json(&before.backup), json(&after.backup), false, true),
        // Carried out by the apply after any deployment, on the same containers.
        ("restore", json(&before.restore), json(&after.restore), false, false),
        (
            "delete_data_on_destroy",
            before.delete_data_on_destroy.to_string(),
            after.delete_data_on_destroy.to_string(),
            false,
            false,
        ),
    ];
    fields
        .into_iter()
        .filter(|(_, b, a, _, _)| b != a)
        .map(|(attribute, before, after, forces_replacement, redeploys)| {
            (AttributeChange { attribute: attribute.to_owned(), before, after, forces_replacement }, redeploys)
        })
        .collect()
}

/// Whether the apply restores an off-site copy into the instance (a new or
/// changed `restore` with `offsite_of`): one that is stranded then goes onto
/// another node.
fn restores_elsewhere(spec: &AppInstanceSpec, record: &AppInstanceRecord) -> bool {
    spec.restore != record.spec.restore && spec.restore.as_ref().is_some_and(|restore| restore.offsite_of.is_some())
}

/// Plans one app instance against what exists under its identity and how its container looks.
pub fn plan_app_instance(
    desired: Option<&AppInstanceSpec>,
    observed: Option<(&AppInstanceRecord, InstanceHealth)>,
) -> Option<AppChange> {
    let change = match (desired, observed) {
        (None, None) => return None,
        (Some(spec), None) => AppChange {
            action: Action::Create,
            id: spec.id.clone(),
            attribute_changes: Vec::new(),
            redeploy: true,
            reason: format!("{} {} is not deployed", spec.app, spec.version),
        },
        (None, Some((record, _))) => AppChange {
            action: Action::Delete,
            id: record.spec.id.clone(),
            attribute_changes: Vec::new(),
            redeploy: false,
            reason: if record.spec.delete_data_on_destroy {
                "the instance is no longer wanted; its data is deleted".into()
            } else {
                "the instance is no longer wanted; its data volumes are kept".into()
            },
        },
        (Some(spec), Some((record, health))) => {
            let changes = attribute_changes(&record.spec, spec);
            let replacing: Vec<&str> =
                changes.iter().filter(|(c, _)| c.forces_replacement).map(|(c, _)| c.attribute.as_str()).collect();
            let redeploying = changes.iter().any(|(_, redeploys)| *redeploys);
            let names: Vec<&str> = changes.iter().map(|(c, _)| c.attribute.as_str()).collect();
            let (action, redeploy, reason) = if !replacing.is_empty() {
                (Action::Replace, true, format!("changing {} forces replacement", replacing.join(", ")))
            } else if health == InstanceHealth::Stranded && record.spec.target == spec.target {
                let why = if restores_elsewhere(spec, record) {
                    "the swarm node holding its data is drained or down: the restore puts its off-site backup onto another node"
                } else {
                    "the swarm node holding its data is drained or down: the apply fails until the node runs tasks again, or change target to move it with its data, or restore its off-site backup onto another node"
                };
                (Action::Update, true, why.to_owned())
            } else if record.spec.target != spec.target {
                let others: Vec<&str> = names.iter().copied().filter(|name| *name != "target").collect();
                let also = if others.is_empty() { String::new() } else { format!("; {} changed", others.join(", ")) };
                let moving = format!(
                    "moves from {:?} to {:?} with its data (the app is down while its volumes are copied){also}",
                    record.spec.target, spec.target
                );
                (Action::Update, true, moving)
            } else if health != InstanceHealth::Running {
                let why = format!("the container is {} (changed outside Atrium)", health.as_str());
                let reason = if names.is_empty() { why } else { format!("{} changed; {why}", names.join(", ")) };
                (Action::Update, true, reason)
            } else if redeploying {
                (Action::Update, true, format!("{} changed", names.join(", ")))
            } else if !changes.is_empty() {
                (Action::Update, false, format!("{} changed (no new deployment)", names.join(", ")))
            } else {
                (Action::NoOp, false, "up to date".into())
            };
            AppChange {
                action,
                id: spec.id.clone(),
                attribute_changes: changes.into_iter().map(|(c, _)| c).collect(),
                redeploy,
                reason,
            }
        }
    };
    Some(change)
}

/// The changes as people read them, like every plan.
pub fn render_app_changes(changes: &[AppChange]) -> String {
    let changes: Vec<ObjectChange> = changes
        .iter()
        .map(|change| ObjectChange {
            action: change.action,
            kind: "app instance",
            name: change.id.to_string(),
            attribute_changes: change.attribute_changes.clone(),
            reason: change.reason.clone(),
        })
        .collect();
    crate::plan::text::render(&changes)
}

/// The attributes whose change deploys a new generation of the app container.
const REDEPLOYING: [&str; 8] =
    ["target", "channel", "version", "users", "resources", "customizations", "password_version", "backup"];

/// What an instance's plan reads besides its configuration: the catalog, the
/// configured targets, and the registry as observed (the tenant, and the
/// instance's record, which alone can tell a changed write-only password).
pub struct AppFacts<'a> {
    pub catalog: &'a Catalog,
    pub targets: Vec<&'a str>,
    /// Those of `targets` that are swarms.
    pub swarm_targets: Vec<&'a str>,
    pub tenant: Option<&'a TenantRecord>,
    pub recorded: Option<&'a AppInstanceRecord>,
}

/// What apply carries out, decided by the plan and kept with it (Terraform's
/// planned private data): apply never decides it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppDecision {
    /// A deployment (a new generation unless the container already matches);
    /// `false`: the record changes and the containers are not touched.
    pub redeploy: bool,
    /// The generation recorded when the plan was made: a change that does not
    /// redeploy refuses to run over another deployment made since.
    pub generation: Option<u32>,
}

/// The plan of one instance for a front door that plans with unknown values.
pub type AppPlan = DraftPlan<AppDecision>;

/// The ids a configuration names, when known: what the plan's facts are read for.
pub fn named_ids(config: &Draft) -> (Option<TenantId>, Option<AppInstanceId>) {
    let tenant = config.str("tenant_id").and_then(|t| TenantId::parse(t).ok());
    let id = match (config.str("tenant_id"), config.str("name")) {
        (Some(tenant), Some(name)) => AppInstanceId::parse(&format!("{tenant}/{name}")).ok(),
        _ => None,
    };
    (tenant, id)
}

/// Plans an instance from its prior state (`None` when creating) and its
/// configuration (`None` when destroying): defaults (channel, the channel's
/// version from the catalog), replacement on identity changes (the document's
/// markers), and whether the container is deployed anew, with the computed
/// values that only a deployment knows left unknown.
pub fn plan_instance(prior: Option<&Draft>, config: Option<&Draft>, facts: &AppFacts<'_>) -> AppPlan {
    let Some(config) = config else { return AppPlan::default() };
    let context = InstanceContext {
        catalog: Some(facts.catalog),
        targets: Some(facts.targets.clone()),
        swarm_targets: Some(facts.swarm_targets.clone()),
    };
    let draft: AppInstanceDraft = match config.typed("app instance") {
        Ok(draft) => draft,
        Err(refused) => return refused,
    };
    let errors = validate_draft(&draft, &context);
    if !errors.is_empty() {
        return AppPlan::refused(errors);
    }
    if let (Some(record), Some(version)) = (facts.recorded, draft.version.as_deref())
        && draft.app.as_deref() == Some(record.spec.app.as_str())
        && let Some(refusal) = facts.catalog.get(&record.spec.app).and_then(|entry| {
            entry.downgrade_refusal(draft.channel.as_deref().unwrap_or("stable"), &record.spec.version, version)
        })
    {
        return AppPlan::refused(vec![ValidationError::new(
            AttributePath::root("version"),
            "Downgrade refused",
            refusal,
        )]);
    }
    if let Some(refusal) = move_refusal(&draft, facts.recorded) {
        return AppPlan::refused(vec![refusal]);
    }
    let mut warnings: Vec<ValidationError> = quota_warning(&draft, facts.tenant).into_iter().collect();
    warnings.extend(restore_warning(&draft, facts.recorded));
    warnings.extend(move_warning(&draft, facts.recorded));
    if prior.and_then(|p| p.str("status")) == Some(InstanceHealth::Stranded.as_str())
        && let Some(record) = facts.recorded
        && draft.target.as_deref() == Some(record.spec.target.as_str())
    {
        match stranded_restore(&draft, record) {
            Err(refusal) => return AppPlan::refused(vec![refusal]),
            Ok(warning) => {
                // It says what the restore does there, instead of the usual warning.
                if warning.attribute == AttributePath::root("restore") {
                    warnings.retain(|other| other.attribute != warning.attribute);
                }
                warnings.push(warning);
            }
        }
    }

    let mut attributes: Vec<(&'static str, Planned)> =
        vec![("admin_password", Planned::Known(serde_json::Value::Null))];
    let channel = match config.planned("channel") {
        Planned::Known(serde_json::Value::Null) => Planned::string("stable"),
        other => other,
    };
    attributes.push(("channel", channel.clone()));
    let version = match (config.planned("version"), config.planned("app"), &channel) {
        (Planned::Known(serde_json::Value::Null), Planned::Known(app), Planned::Known(channel)) => facts
            .catalog
            .get(app.as_str().unwrap_or_default())
            .and_then(|entry| entry.channel(channel.as_str().unwrap_or_default()))
            .map(|c| Planned::string(c.default.clone()))
            .unwrap_or(Planned::Unknown),
        (Planned::Known(serde_json::Value::Null), _, _) => Planned::Unknown,
        (version, _, _) => version,
    };
    attributes.push(("version", version.clone()));
    if let Planned::Known(serde_json::Value::Null) = config.planned("delete_data_on_destroy") {
        attributes.push(("delete_data_on_destroy", Planned::Known(serde_json::Value::Bool(false))));
    }
    let id = match named_ids(config) {
        (_, Some(id)) => Planned::string(id.to_string()),
        _ => Planned::Unknown,
    };
    attributes.push(("id", id));
    let planned = |attribute: &str, attributes: &[(&'static str, Planned)]| {
        attributes
            .iter()
            .find(|(name, _)| *name == attribute)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| config.planned(attribute))
    };

    let requires_replace = replaced(prior, config, &REPLACING);
    let prior_value = |attribute: &str| prior.and_then(|p| p.get(attribute)).cloned();
    let prior_str = |attribute: &str| prior.and_then(|p| p.str(attribute));
    let creating = prior.is_none() || !requires_replace.is_empty();
    // A welcome email that failed is sent again, with a new password, by the next apply.
    let welcome_pending = prior_str("welcome_email_status") == Some("pending");
    let tenant_suspended = facts.tenant.is_some_and(|tenant| tenant.status != TenantStatus::Active);
    // Running or suspended are both as applied: which one a refresh shows
    // follows the tenant, whose own apply stops and starts the containers.
    let as_applied = matches!(prior_str("status"), Some("running" | "suspended"));
    // A write-only password is never in state: only the recorded hash tells it changed.
    let password_changed = match (draft.admin_password.as_deref(), facts.recorded) {
        (Some(password), Some(record)) => !Password::new(password).matches(&record.manager_password_hash),
        _ => false,
    };
    let redeploy = creating
        || welcome_pending
        || !as_applied
        || password_changed
        || REDEPLOYING
            .iter()
            .any(|attribute| planned(attribute, &attributes).differs_from(prior.and_then(|p| p.get(attribute))));
    let known_or_null = |value: Option<serde_json::Value>| Planned::Known(value.unwrap_or(serde_json::Value::Null));
    // A deployment for a suspended tenant is made and then stopped (resuming
    // starts it again); for a tenant this apply creates, the status is known
    // only once the tenant is.
    let status = match (facts.tenant, redeploy) {
        (_, false) => known_or_null(prior_value("status")),
        (None, true) => Planned::Unknown,
        (Some(_), true) if tenant_suspended => Planned::string(InstanceHealth::Suspended.as_str()),
        (Some(_), true) => Planned::string(InstanceHealth::Running.as_str()),
    };
    attributes.push(("status", status));
    attributes.push(("version_deployed", version.clone()));
    let previous_version = if creating {
        Planned::Known(serde_json::Value::Null)
    } else {
        match (prior_value("version_deployed"), &version) {
            (_, Planned::Unknown) => Planned::Unknown,
            (Some(deployed), Planned::Known(version)) if !same(Some(&deployed), Some(version)) => {
                Planned::Known(deployed)
            }
            _ => known_or_null(prior_value("previous_version")),
        }
    };
    attributes.push(("previous_version", previous_version));
    // A restore (asked for anew) restarts the app, which publishes its port
    // anew, and emails the manager a new password when she was sent one.
    let restoring = match planned("restore", &attributes) {
        Planned::Known(serde_json::Value::Null) => false,
        restore => restore.differs_from(prior.and_then(|p| p.get("restore"))),
    };
    let emailed = matches!(prior_str("welcome_email_status"), Some("sent" | "pending"));
    let welcome = if creating || welcome_pending || (restoring && emailed) {
        Planned::Unknown
    } else {
        known_or_null(prior_value("welcome_email_status"))
    };
    attributes.push(("welcome_email_status", welcome));
    // Another number of copies may leave none on the node the internal URL names.
    let rescaling = planned("replicas", &attributes).differs_from(prior.and_then(|p| p.get("replicas")));
    for attribute in ["internal_url", "deployed_at"] {
        let changes = redeploy || ((restoring || rescaling) && attribute == "internal_url");
        attributes.push((attribute, if changes { Planned::Unknown } else { known_or_null(prior_value(attribute)) }));
    }
    // Backups are taken on the target's schedule (or by hand), not by
    // deployments: a refresh reads them, and an apply keeps what the plan
    // knew. A new instance may find the backups of kept data; an app that
    // takes none never has one.
    let takes_backups = draft.app.as_deref().and_then(|app| facts.catalog.get(app)).map(|e| e.backup.is_some());
    for attribute in ["latest_backup", "latest_backup_at", "latest_restore_test", "latest_offsite_copy"] {
        let latest = match takes_backups {
            Some(false) => Planned::Known(serde_json::Value::Null),
            _ if creating => Planned::Unknown,
            _ => known_or_null(prior_value(attribute)),
        };
        attributes.push((attribute, latest));
    }
    // Users are counted by the app (a refresh reads them), for apps that
    // cannot hold themselves to `users`.
    let entry = draft.app.as_deref().and_then(|app| facts.catalog.get(app));
    let counts_users = entry.map(|entry| entry.user_limit.as_ref().is_some_and(|limit| limit.users_in_use.is_some()));
    let users_in_use = match counts_users {
        Some(false) => Planned::Known(serde_json::Value::Null),
        _ if creating => Planned::Unknown,
        _ => known_or_null(prior_value("users_in_use")),
    };
    if let (Planned::Known(counted), Some(entry)) = (&users_in_use, entry) {
        warnings.extend(users_in_use_warning(&draft, counted, entry));
    }
    attributes.push(("users_in_use", users_in_use));
    let decision = AppDecision { redeploy, generation: facts.recorded.map(|record| record.generation) };
    AppPlan { attributes, requires_replace, errors: Vec::new(), warnings, decision: Some(decision) }
}

/// `users` ≤ the tenant's quota, when both are known at plan time: a warning,
/// because the same apply may raise the quota (the tenant is applied first),
/// and a check of the desired state must never block a destroy; the
/// deployment refuses it when it is still true then.
fn quota_warning(draft: &AppInstanceDraft, tenant: Option<&TenantRecord>) -> Option<ValidationError> {
    let users = draft.users.as_ref()?.as_f64()?;
    let tenant = tenant?;
    let quota = tenant.spec.user_quota;
    (users > f64::from(quota)).then(|| {
        ValidationError::new(
            AttributePath::root("users"),
            "More users than the tenant's quota",
            format!(
                "tenant {} has a user quota of {quota}; lower users to at most {quota} or raise the tenant's user_quota. Applying this change will fail unless the same apply raises the quota first.",
                tenant.spec.name
            ),
        )
    })
}

/// The target an instance moves to, when its configuration names another
/// than the one it is recorded on.
fn moving_to<'d>(draft: &'d AppInstanceDraft, recorded: Option<&AppInstanceRecord>) -> Option<(String, &'d str)> {
    let record = recorded?;
    let target = draft.target.as_deref()?;
    (target != record.spec.target && draft.app.as_deref() == Some(record.spec.app.as_str()))
        .then(|| (record.spec.target.clone(), target))
}

/// A move changes where the instance runs and nothing else: an upgrade or a
/// restore in the same apply would run on data in transit.
fn move_refusal(draft: &AppInstanceDraft, recorded: Option<&AppInstanceRecord>) -> Option<ValidationError> {
    let (from, to) = moving_to(draft, recorded)?;
    let record = recorded?;
    let version_changes = draft.version.as_deref().is_some_and(|version| version != record.spec.version);
    let restore_changes = draft.restore.as_ref().and_then(|r| r.get("snapshot")).and_then(serde_json::Value::as_str)
        != record.spec.restore.as_ref().map(|r| r.snapshot.as_str());
    let other = match (version_changes, restore_changes) {
        (true, _) => format!("version (from {:?})", record.spec.version),
        (false, true) => "restore".to_owned(),
        (false, false) => return None,
    };
    Some(ValidationError::new(
        AttributePath::root("target"),
        "A move changes nothing else",
        format!(
            "the instance moves from {from:?} to {to:?} and its {other} changes too: apply the move first with everything else as it is, then the other change (or the other way round)"
        ),
    ))
}

/// A move the apply carries out: a warning, because the app is down while
/// its data is copied.
fn move_warning(draft: &AppInstanceDraft, recorded: Option<&AppInstanceRecord>) -> Option<ValidationError> {
    let (from, to) = moving_to(draft, recorded)?;
    Some(ValidationError::new(
        AttributePath::root("target"),
        "Apply moves the instance with its data",
        format!(
            "the app stops on {from:?}, its volumes are copied to {to:?}, and it starts there; expected downtime: the copy of its data (100 MB took about 1 s between two engines of one machine, measured by scripts/bench.sh move; more over a network between targets) plus its start and first health check. Its domains switch to {to:?} once it is healthy; a failure at any step leaves it serving from {from:?}. {from:?} keeps its copy of the data (atrium kept lists it) until it is purged or the instance is destroyed with delete_data_on_destroy"
        ),
    ))
}

/// A restore the apply carries out (asked for anew or changed): a warning,
/// because it replaces the instance's data.
fn restore_warning(draft: &AppInstanceDraft, recorded: Option<&AppInstanceRecord>) -> Option<ValidationError> {
    let wanted = draft.restore.as_ref()?;
    let snapshot = wanted.get("snapshot")?.as_str()?;
    let from = wanted.get("from").and_then(serde_json::Value::as_str);
    let done = recorded.and_then(|record| record.spec.restore.as_ref());
    if done.is_some_and(|done| done.snapshot == snapshot && done.from.as_deref() == from) {
        return None;
    }
    let whose = from.map(|from| format!(" of {from}'s backups")).unwrap_or_default();
    let detail = match recorded {
        None => format!(
            "the new instance's data (database and volumes) is replaced by snapshot {snapshot}{whose} once it is deployed; its manager gets a new password by email when she was sent one"
        ),
        Some(_) => format!(
            "the apply replaces this instance's data (database and volumes) with snapshot {snapshot}{whose}; a backup of the data as it is then is taken first (atrium snapshots lists it, atrium restore puts it back), and the app is down while the data is put back"
        ),
    };
    Some(ValidationError::new(AttributePath::root("restore"), "Apply restores data", detail))
}

/// What the plan says of an instance whose swarm node holding its data is
/// drained or down (status `stranded`): the ways out, or, when the apply
/// restores an off-site copy, that the data comes back on another node. A
/// restore of its own backups is refused: they are on that node too.
fn stranded_restore(draft: &AppInstanceDraft, record: &AppInstanceRecord) -> Result<ValidationError, ValidationError> {
    let wanted = draft.restore.as_ref();
    let field = |name: &str| wanted.and_then(|restore| restore.get(name)).and_then(serde_json::Value::as_str);
    let done = record.spec.restore.as_ref();
    let changed = wanted.is_some()
        && done.is_none_or(|done| {
            field("snapshot") != Some(done.snapshot.as_str())
                || field("from") != done.from.as_deref()
                || field("offsite_of") != done.offsite_of.as_deref()
        });
    if !changed {
        return Ok(ValidationError::new(
            AttributePath::root("target"),
            "The node holding the instance's data is unavailable",
            "the swarm node holding this instance's data is drained or down (status \"stranded\"), and Atrium does not start it on another node with empty volumes: make the node active again (docker node update --availability active NODE), or change target to move the instance with its data (copied from the node while its engine answers), or restore its latest off-site backup onto another node (restore = { snapshot = \"latest\", offsite_of = TARGET }, TARGET the target whose offsite_backups copies it). Applying as it is fails and names the node",
        ));
    }
    let Some(offsite_of) = field("offsite_of") else {
        return Err(ValidationError::new(
            AttributePath::root("restore").attribute("offsite_of"),
            "The instance's backups are on the unavailable node",
            "the swarm node holding this instance's data (status \"stranded\") holds its backups too: restore an off-site copy instead, with offsite_of naming the target whose offsite_backups copies it (e.g. this instance's own target)",
        ));
    };
    Ok(ValidationError::new(
        AttributePath::root("restore"),
        "Apply restores the instance onto another node",
        format!(
            "the swarm node holding this instance's data is drained or down (status \"stranded\"): the apply makes its volumes anew on another node of the swarm, starts it there, and restores snapshot {} of the off-site copy {offsite_of} keeps into them; what the old node holds is left there (a destroy with delete_data_on_destroy removes it while that node is up)",
            field("snapshot").unwrap_or("latest")
        ),
    ))
}

/// More people use the app than the instance's `users`, as the app counted
/// them at the last refresh: a warning, for apps that have no limit of their
/// own (those that have one refuse the extra users themselves).
fn users_in_use_warning(
    draft: &AppInstanceDraft,
    counted: &serde_json::Value,
    entry: &crate::catalog::CatalogEntry,
) -> Option<ValidationError> {
    let counted = counted.as_u64()?;
    let users = draft.users.as_ref()?.as_u64()?;
    (counted > users).then(|| {
        ValidationError::new(
            AttributePath::root("users"),
            "More people use the app than its users",
            format!(
                "{} counts {counted} active users (users_in_use at the last refresh) and has no user limit of its own, so users = {users} is not enforced; raise users to at least {counted} (within the tenant's user_quota) or deactivate {} of them in the app.",
                entry.name,
                counted - users
            ),
        )
    })
}

/// What the engine knows about the platform when it validates an instance.
/// Before the provider is configured neither is known, and checks that need
/// them wait for the plan.
pub struct InstanceContext<'a> {
    pub catalog: Option<&'a Catalog>,
    /// Target names from the configuration.
    pub targets: Option<Vec<&'a str>>,
    /// Those that are swarms.
    pub swarm_targets: Option<Vec<&'a str>>,
}

/// The most copies of an app an instance may run.
pub const MAX_REPLICAS: u64 = 9;

/// Whether `replicas` copies of the app may run: 1 anywhere; more only on a
/// swarm target (where known) and for an app container without volumes.
fn replicas_allowed(
    replicas: &serde_json::Number,
    draft: &AppInstanceDraft,
    entry: Option<&CatalogEntry>,
    swarm_targets: Option<&[&str]>,
) -> Result<(), String> {
    let Some(count) = replicas.as_u64().filter(|n| (1..=MAX_REPLICAS).contains(n)) else {
        return Err(format!("{replicas} is not a replica count: use a whole number from 1 to {MAX_REPLICAS}"));
    };
    if count == 1 {
        return Ok(());
    }
    if let (Some(target), Some(swarms)) = (draft.target.as_deref(), swarm_targets)
        && !swarms.contains(&target)
    {
        return Err(format!(
            "target {target:?} is a Docker engine, which runs one copy of an app: use replicas = 1, or a swarm target ({})",
            if swarms.is_empty() { "none is configured".to_owned() } else { quoted_list(swarms) }
        ));
    }
    if let Some(entry) = entry
        && !entry.volumes.is_empty()
    {
        return Err(format!(
            "{} keeps data in volumes ({}), and an app with data runs once, where its data is: use replicas = 1",
            entry.name,
            quoted_list(&entry.volumes.keys().map(String::as_str).collect::<Vec<_>>())
        ));
    }
    if let Some(volumes) = draft.customizations.as_ref().and_then(|c| c.volumes.as_ref()).filter(|v| !v.is_empty()) {
        return Err(format!(
            "customizations.volumes gives the app volumes ({}), and an app with data runs once, where its data is: use replicas = 1",
            quoted_list(&volumes.keys().map(String::as_str).collect::<Vec<_>>())
        ));
    }
    Ok(())
}

/// Every problem with the known attributes of an app instance, each naming its attribute.
pub fn validate_draft(draft: &AppInstanceDraft, context: &InstanceContext<'_>) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let mut check = |path: AttributePath, summary: &str, result: Option<Result<(), String>>| {
        if let Some(Err(detail)) = result {
            errors.push(ValidationError::new(path, summary, detail));
        }
    };
    check(
        AttributePath::root("tenant_id"),
        "Invalid tenant id",
        draft.tenant_id.as_deref().map(|t| TenantId::parse(t).map(drop)),
    );
    check(AttributePath::root("name"), "Invalid instance name", draft.name.as_deref().map(check_instance_name));
    let entry = draft.app.as_deref().zip(context.catalog).and_then(|(app, catalog)| catalog.get(app));
    if let Some(catalog) = context.catalog {
        check(
            AttributePath::root("app"),
            "Unknown app",
            draft.app.as_deref().map(|app| match entry {
                Some(_) => Ok(()),
                None => Err(format!("{app:?} is not in the catalog: use one of {}", quoted_list(&catalog.names()))),
            }),
        );
    }
    let channel = draft.channel.as_deref().unwrap_or("stable");
    check(
        AttributePath::root("channel"),
        "Unknown channel",
        draft.channel.as_deref().map(|c| {
            if CHANNELS.contains(&c) {
                Ok(())
            } else {
                Err(format!("{c:?} is not a channel: use \"stable\", \"vanilla\" or \"custom\""))
            }
        }),
    );
    if let Some(entry) = entry {
        check(AttributePath::root("channel"), "Channel not offered", Some(channel_offered(entry, channel)));
        if let (Some(version), Some(offered)) = (&draft.version, entry.channel(channel)) {
            check(
                AttributePath::root("version"),
                "Unknown version",
                Some(if offered.versions.contains(version) {
                    Ok(())
                } else {
                    Err(format!(
                        "{} has no version {version:?} in the {channel} channel: use one of {}",
                        entry.name,
                        quoted_list(&offered.versions.iter().map(String::as_str).collect::<Vec<_>>())
                    ))
                }),
            );
        }
    }
    if let Some(targets) = &context.targets {
        check(
            AttributePath::root("target"),
            "Unknown target",
            draft.target.as_deref().map(|target| {
                if targets.contains(&target) {
                    Ok(())
                } else if targets.is_empty() {
                    Err(format!("no targets are configured: add {target:?} to the provider's targets"))
                } else {
                    Err(format!("{target:?} is not a configured target: use one of {}", quoted_list(targets)))
                }
            }),
        );
    }
    check(
        AttributePath::root("replicas"),
        "Invalid replica count",
        draft
            .replicas
            .as_ref()
            .map(|replicas| replicas_allowed(replicas, draft, entry, context.swarm_targets.as_deref())),
    );
    check(
        AttributePath::root("users"),
        "Invalid user count",
        draft.users.as_ref().map(|users| match users.as_u64() {
            Some(n) if (1..=100_000).contains(&n) => Ok(()),
            _ => Err(format!("{users} is not a user count: use a whole number from 1 to the tenant's user_quota")),
        }),
    );
    if let Some(resources) = &draft.resources {
        let cpus = resources.get("cpus").and_then(serde_json::Value::as_f64);
        check(
            AttributePath::root("resources").attribute("cpus"),
            "Invalid CPU limit",
            cpus.map(|c| {
                if (0.01..=64.0).contains(&c) {
                    Ok(())
                } else {
                    Err(format!("{c} CPUs is out of range: use 0.01 to 64"))
                }
            }),
        );
        let memory = resources.get("memory_mb").and_then(serde_json::Value::as_f64);
        check(
            AttributePath::root("resources").attribute("memory_mb"),
            "Invalid memory limit",
            memory.map(|m| {
                if m.fract() == 0.0 && (16.0..=262_144.0).contains(&m) {
                    Ok(())
                } else {
                    Err(format!("{m} MiB is out of range: use a whole number from 16 to 262144"))
                }
            }),
        );
    }
    if let Some(backup) = &draft.backup {
        validate_backup(backup, entry, &mut check);
    }
    if let Some(restore) = &draft.restore {
        validate_restore(restore, draft, entry, &mut check);
    }
    check(
        AttributePath::root("admin_password"),
        "Invalid admin password",
        draft.admin_password.as_deref().map(|password| {
            let length = password.chars().count();
            if !(12..=128).contains(&length) {
                Err(format!("the password has {length} characters: use 12 to 128"))
            } else if password.chars().any(char::is_control) {
                Err("the password contains control characters (such as a newline): use printable characters only"
                    .to_owned())
            } else {
                Ok(())
            }
        }),
    );
    if let Some(customizations) = &draft.customizations {
        errors.extend(validate_customizations(customizations, entry));
    }
    if let Some(timeouts) = &draft.timeouts {
        errors.extend(timeouts.validate(&AttributePath::root("timeouts")));
    }
    errors
}

fn quoted_list(items: &[&str]) -> String {
    items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ")
}

fn channel_offered(entry: &CatalogEntry, channel: &str) -> Result<(), String> {
    if !CHANNELS.contains(&channel) || entry.channel(channel).is_some() {
        return Ok(());
    }
    let offered: Vec<&str> = entry.channels.keys().map(String::as_str).collect();
    Err(format!("{} has no {channel} channel: use {}", entry.name, quoted_list(&offered)))
}

/// The overlay may add, never remove: the core's health check and data volumes stay.
pub fn validate_customizations(customizations: &Customizations, entry: Option<&CatalogEntry>) -> Vec<ValidationError> {
    let path = AttributePath::root("customizations");
    let mut errors = Vec::new();
    if customizations.disable_health_check == Some(true) {
        errors.push(ValidationError::new(
            path.attribute("disable_health_check"),
            "The health check cannot be removed",
            "the catalog's health check decides whether an upgrade is kept or rolled back; remove disable_health_check",
        ));
    }
    let reserved = entry.map(CatalogEntry::reserved_environment).unwrap_or_default();
    for (key, value) in customizations.environment.iter().flatten() {
        let here = path.attribute("environment").key(key);
        let valid = !key.is_empty()
            && key.len() <= 128
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            errors.push(ValidationError::new(
                here.clone(),
                "Invalid environment variable name",
                format!("{key:?} is not a variable name: use letters, digits and '_', not starting with a digit"),
            ));
        }
        if reserved.contains(key.as_str()) {
            errors.push(ValidationError::new(
                here.clone(),
                "The catalog sets this variable",
                format!(
                    "{} sets {key} itself (for the tenant, its manager account or its user limit), so a customization cannot change it; set users or the tenant's attributes instead, or use another name",
                    entry.map(|e| e.name.as_str()).unwrap_or("the app")
                ),
            ));
        }
        if value.contains('\0') {
            errors.push(ValidationError::new(
                here,
                "Invalid environment value",
                format!(
                    "the value of {key} contains a NUL character, which no process environment can hold: remove it"
                ),
            ));
        } else if value.len() > MAX_ENVIRONMENT_VALUE_BYTES {
            errors.push(ValidationError::new(
                here,
                "Environment value too long",
                format!(
                    "the value of {key} has {} bytes: keep it under {MAX_ENVIRONMENT_VALUE_BYTES} and put larger settings in a configuration file (customizations.files)",
                    value.len()
                ),
            ));
        }
    }
    for (name, mount) in customizations.volumes.iter().flatten() {
        let here = path.attribute("volumes").key(name);
        if check_instance_name(name).is_err() {
            errors.push(ValidationError::new(
                here.clone(),
                "Invalid volume name",
                format!("{name:?} is not a volume name: use lowercase letters, digits and hyphens (e.g. \"uploads\")"),
            ));
        }
        let normal = mount.starts_with('/')
            && mount.len() > 1
            && !mount.ends_with('/')
            && mount[1..].split('/').all(|part| !part.is_empty() && part != "." && part != "..");
        if !normal {
            errors.push(ValidationError::new(
                here.clone(),
                "Invalid mount path",
                format!(
                    "{mount:?} is not a directory inside the container a volume can be mounted at: use an absolute path below / without \".\", \"..\" or \"//\" (e.g. \"/srv/uploads\")"
                ),
            ));
        } else if let Err(detail) = crate::catalog::check_not_kernel_path(mount) {
            errors.push(ValidationError::new(here.clone(), "Invalid mount path", detail));
        }
        if let Some(entry) = entry {
            if let Some(core_path) = entry.volumes.get(name) {
                errors.push(ValidationError::new(
                    here.clone(),
                    "A data volume of the app cannot be replaced",
                    format!("{} keeps its data in the volume {name:?} at {core_path}; choose another name for an extra volume", entry.name),
                ));
            } else if entry.volumes.values().any(|core| {
                core == mount || mount.starts_with(&format!("{core}/")) || core.starts_with(&format!("{mount}/"))
            }) {
                errors.push(ValidationError::new(
                    here,
                    "A data volume of the app cannot be shadowed",
                    format!("{mount:?} overlaps a data volume of {}; mount extra volumes elsewhere", entry.name),
                ));
            }
        }
    }
    for (file, content) in customizations.files.iter().flatten() {
        let here = path.attribute("files").key(file);
        if let Err(detail) = crate::catalog::check_file_path(file) {
            errors.push(ValidationError::new(here.clone(), "Invalid file path", detail));
            continue;
        }
        if content.len() > MAX_FILE_BYTES {
            errors.push(ValidationError::new(
                here.clone(),
                "Configuration file too large",
                format!("the file has {} bytes: keep configuration files under {MAX_FILE_BYTES} bytes and put data in a volume", content.len()),
            ));
        }
        let Some(entry) = entry else { continue };
        if entry.files.contains_key(file) {
            errors.push(ValidationError::new(
                here,
                "A file of the app cannot be replaced",
                format!("{} writes {file} itself (it holds the manager's login); choose another path", entry.name),
            ));
        } else if let Some((volume, mount)) =
            entry.volumes.iter().find(|(_, mount)| file.starts_with(&format!("{mount}/")))
        {
            errors.push(ValidationError::new(
                here,
                "A file cannot go inside a data volume",
                format!("{file} is inside the data volume {volume:?} ({mount}), which holds the app's data; write configuration elsewhere"),
            ));
        }
    }
    errors
}

/// An object attribute's fields, as a draft holds them.
fn fields_of(value: &impl Serialize) -> BTreeMap<String, serde_json::Value> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(fields)) => fields.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

/// Checks an instance's `backup` settings, as far as they are known: the app
/// must take backups, and each attribute must be in its range.
fn validate_backup(
    backup: &BTreeMap<String, serde_json::Value>,
    entry: Option<&CatalogEntry>,
    check: &mut impl FnMut(AttributePath, &str, Option<Result<(), String>>),
) {
    let path = || AttributePath::root("backup");
    let set = backup.values().any(|value| !value.is_null());
    if let Some(entry) = entry.filter(|entry| entry.backup.is_none() && set) {
        check(
            path(),
            "App takes no backups",
            Some(Err(format!(
                "{} keeps no data worth a backup (its catalog entry declares none): remove the backup attribute, or use an app that backs up its data (redmine, mediawiki, tryton)",
                entry.name
            ))),
        );
        return;
    }
    let text = |name: &str| backup.get(name).and_then(serde_json::Value::as_str);
    check(
        path().attribute("interval"),
        "Invalid backup interval",
        text("interval").map(|t| check_interval(t).map(drop)),
    );
    check(
        path().attribute("keep_within"),
        "Invalid backup retention",
        text("keep_within").map(|t| check_keep_within(t).map(drop)),
    );
    for name in ["keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"] {
        let count = backup.get(name).and_then(|value| value.as_number().cloned());
        check(
            path().attribute(name),
            "Invalid backup retention",
            count.map(|count| match count.as_u64() {
                Some(count) => check_count(count).map(drop),
                None => Err(format!("{count} is not a count: use a whole number from 0 to {MOST_KEPT}")),
            }),
        );
    }
}

/// Checks an instance's `restore` request, as far as it is known: the app
/// must take backups, the snapshot must name one, and `from` must be
/// another instance of the same tenant.
fn validate_restore(
    restore: &BTreeMap<String, serde_json::Value>,
    draft: &AppInstanceDraft,
    entry: Option<&CatalogEntry>,
    check: &mut impl FnMut(AttributePath, &str, Option<Result<(), String>>),
) {
    let path = || AttributePath::root("restore");
    if let Some(entry) = entry.filter(|entry| entry.backup.is_none()) {
        check(
            path(),
            "App takes no backups",
            Some(Err(format!(
                "{} takes no backups, so there is no snapshot to restore (its catalog entry declares none): remove the restore attribute, or use an app that backs up its data (redmine, mediawiki, tryton)",
                entry.name
            ))),
        );
        return;
    }
    let text = |name: &str| restore.get(name).and_then(serde_json::Value::as_str);
    check(
        path().attribute("snapshot"),
        "Invalid snapshot",
        text("snapshot").map(|snapshot| {
            if crate::model::backup::is_snapshot_reference(snapshot) {
                Ok(())
            } else {
                Err(format!(
                    "{snapshot:?} names no snapshot: give \"latest\" or a snapshot id (8 to 64 lowercase hex digits, as atrium snapshots lists them)"
                ))
            }
        }),
    );
    check(
        path().attribute("from"),
        "Invalid restore source",
        text("from").map(|from| {
            let source = AppInstanceId::parse(from)?;
            if draft.tenant_id.as_deref().is_some_and(|tenant| source.tenant_id.as_str() != tenant) {
                return Err(format!(
                    "{from} belongs to tenant {}: an instance is cloned only from instances of its own tenant (a customer's data never goes to another's)",
                    source.tenant_id
                ));
            }
            if draft.tenant_id.as_deref() == Some(source.tenant_id.as_str())
                && draft.name.as_deref() == Some(source.name.as_str())
            {
                return Err(format!("{from} is this instance: leave from unset to restore its own snapshots"));
            }
            Ok(())
        }),
    );
}

/// Validates a fully known app instance document and fills defaults (channel, version from the catalog).
pub fn spec_from_document(
    document: &AppInstanceDocument,
    context: &InstanceContext<'_>,
) -> Result<AppInstanceSpec, Vec<ValidationError>> {
    let draft = AppInstanceDraft {
        tenant_id: Some(document.tenant_id.clone()),
        name: Some(document.name.clone()),
        app: Some(document.app.clone()),
        channel: document.channel.clone(),
        version: document.version.clone(),
        target: Some(document.target.clone()),
        users: Some(serde_json::Number::from(document.users)),
        replicas: document.replicas.map(serde_json::Number::from),
        resources: document.resources.as_ref().map(|r| {
            BTreeMap::from([
                ("cpus".to_owned(), serde_json::json!(r.cpus)),
                ("memory_mb".to_owned(), serde_json::json!(r.memory_mb)),
            ])
        }),
        customizations: document.customizations.clone(),
        admin_password: document.admin_password.clone(),
        backup: document.backup.as_ref().map(fields_of),
        restore: document.restore.as_ref().map(fields_of),
        timeouts: document.timeouts.clone(),
    };
    let errors = validate_draft(&draft, context);
    if !errors.is_empty() {
        return Err(errors);
    }
    let entry = context.catalog.and_then(|catalog| catalog.get(&document.app)).ok_or_else(|| {
        vec![ValidationError::new(
            AttributePath::root("app"),
            "Unknown app",
            format!("{:?} is not in the catalog", document.app),
        )]
    })?;
    let channel = document.channel.clone().unwrap_or_else(|| "stable".to_owned());
    let version = match (&document.version, entry.channel(&channel)) {
        (Some(version), _) => version.clone(),
        (None, Some(offered)) => offered.default.clone(),
        (None, None) => {
            return Err(vec![ValidationError::new(
                AttributePath::root("channel"),
                "Channel not offered",
                format!("{} has no {channel} channel", entry.name),
            )]);
        }
    };
    let customizations = document.customizations.clone().unwrap_or_default();
    Ok(AppInstanceSpec {
        id: AppInstanceId {
            tenant_id: TenantId::parse(&document.tenant_id)
                .map_err(|d| vec![ValidationError::new(AttributePath::root("tenant_id"), "Invalid tenant id", d)])?,
            name: document.name.clone(),
        },
        app: document.app.clone(),
        channel,
        version,
        target: document.target.clone(),
        users: document.users,
        replicas: document.replicas.unwrap_or(1),
        resources: document.resources.clone(),
        environment: customizations.environment.unwrap_or_default(),
        extra_volumes: customizations.volumes.unwrap_or_default(),
        files: customizations.files.unwrap_or_default(),
        admin_password: document.admin_password.clone().map(Password::new),
        password_version: document.password_version.unwrap_or(0),
        delete_data_on_destroy: document.delete_data_on_destroy.unwrap_or(false),
        // Settings that set nothing are no settings (the plan stays empty).
        backup: document.backup.clone().filter(|backup| *backup != BackupSettings::default()),
        restore: document.restore.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::TenantId;

    fn spec(tenant: &str, name: &str, version: &str) -> AppInstanceSpec {
        AppInstanceSpec {
            id: AppInstanceId { tenant_id: TenantId::parse(tenant).unwrap(), name: name.into() },
            app: "hello".into(),
            channel: "stable".into(),
            version: version.into(),
            target: "lyon-onprem".into(),
            users: 10,
            replicas: 1,
            resources: None,
            environment: BTreeMap::new(),
            extra_volumes: BTreeMap::new(),
            files: BTreeMap::new(),
            admin_password: None,
            password_version: 0,
            delete_data_on_destroy: false,
            backup: None,
            restore: None,
        }
    }

    #[test]
    fn backup_settings_keep_the_users_spelling_in_state_and_show_what_is_recorded() {
        let mut recorded = record(spec("acme", "web", "1.1"));
        let running = InstanceHealth::Running;
        let empty =
            AppInstanceDocument { backup: Some(BackupSettings::default()), ..recorded.to_document(running, None) };
        assert_eq!(recorded.to_document(running, Some(&empty)).backup, Some(BackupSettings::default()));
        assert_eq!(recorded.to_document(running, None).backup, None);
        let hourly = BackupSettings { interval: Some("1h".into()), ..BackupSettings::default() };
        recorded.spec.backup = Some(hourly.clone());
        assert_eq!(recorded.to_document(running, Some(&empty)).backup, Some(hourly));
    }

    fn record(spec: AppInstanceSpec) -> AppInstanceRecord {
        AppInstanceRecord {
            spec,
            generation: 3,
            previous_version: None,
            deployed_at: "2026-11-23T10:00:00Z".into(),
            published_port: Some(32768),
            published_host: None,
            moved_from: None,
            secrets: BTreeMap::new(),
            manager_password_hash: "$6$rounds=5000$c2FsdA$sample".into(),
            welcome: crate::model::app_instance::WelcomeState::Sent,
            password_given: false,
            owner: "terraform".into(),
            created_at: "2026-11-23T09:00:00Z".into(),
        }
    }

    #[test]
    fn a_stranded_instance_is_planned_with_the_ways_out_and_a_move_with_what_else_changes() {
        let existing = record(spec("acme", "web", "1.0"));
        let stranded = plan_app_instance(Some(&existing.spec), Some((&existing, InstanceHealth::Stranded))).unwrap();
        assert_eq!((stranded.action, stranded.redeploy), (Action::Update, true));
        assert!(stranded.reason.contains("drained or down") && stranded.reason.contains("change target"));
        let mut moved = spec("acme", "web", "1.0");
        moved.target = "cloud-fra1".into();
        moved.users = 7;
        let moving = plan_app_instance(Some(&moved), Some((&existing, InstanceHealth::Stranded))).unwrap();
        assert!(
            moving.reason.starts_with("moves from") && moving.reason.ends_with("users changed"),
            "{}",
            moving.reason
        );
        assert!(moving.attribute_changes.iter().all(|change| !change.forces_replacement));
    }

    #[test]
    fn a_stranded_instance_restores_an_off_site_copy_onto_another_node_and_never_its_own_backups() {
        let existing = record(spec("acme", "web", "1.0"));
        let draft = |restore: serde_json::Value| AppInstanceDraft {
            restore: serde_json::from_value(restore).unwrap(),
            ..AppInstanceDraft::default()
        };
        let ways = stranded_restore(&draft(serde_json::Value::Null), &existing).unwrap();
        assert_eq!(ways.attribute, AttributePath::root("target"));
        assert!(ways.detail.contains("change target") && ways.detail.contains("offsite_of"), "{}", ways.detail);
        let own = draft(serde_json::json!({"snapshot": "latest"}));
        let refused = stranded_restore(&own, &existing).unwrap_err();
        assert_eq!(refused.attribute, AttributePath::root("restore").attribute("offsite_of"));
        assert!(refused.detail.contains("holds its backups too"), "{}", refused.detail);
        let offsite = draft(serde_json::json!({"snapshot": "latest", "offsite_of": "cloud-fra1"}));
        let restoring = stranded_restore(&offsite, &existing).unwrap();
        assert_eq!(restoring.attribute, AttributePath::root("restore"));
        assert!(restoring.detail.contains("another node") && restoring.detail.contains("cloud-fra1"));
        let request = crate::model::backup::RestoreRequest {
            snapshot: "latest".into(),
            from: None,
            offsite_of: Some("cloud-fra1".into()),
        };
        let mut done = existing.clone();
        done.spec.restore = Some(request.clone());
        let again = stranded_restore(&offsite, &done).unwrap();
        assert_eq!(again.attribute, AttributePath::root("target"), "a restore done before is no way out now");

        let mut wanted = spec("acme", "web", "1.0");
        wanted.restore = Some(request);
        let planned = plan_app_instance(Some(&wanted), Some((&existing, InstanceHealth::Stranded))).unwrap();
        assert!(planned.reason.contains("onto another node"), "{}", planned.reason);
        let after = plan_app_instance(Some(&wanted), Some((&done, InstanceHealth::Stranded))).unwrap();
        assert!(after.reason.contains("the apply fails"), "{}", after.reason);
    }

    #[test]
    fn app_instance_plans_say_what_changes_and_whether_it_redeploys() {
        let existing = record(spec("acme", "web", "1.0"));
        let mut moved = spec("acme", "web", "1.0");
        moved.target = "cloud-fra1".into();
        let mut keep_data = spec("acme", "web", "1.0");
        keep_data.delete_data_on_destroy = true;
        let changes: Vec<AppChange> = [
            plan_app_instance(Some(&spec("acme", "new", "1.1")), None),
            plan_app_instance(Some(&spec("acme", "web", "1.1")), Some((&existing, InstanceHealth::Running))),
            plan_app_instance(Some(&spec("acme", "web", "1.0")), Some((&existing, InstanceHealth::Stopped))),
            plan_app_instance(Some(&keep_data), Some((&existing, InstanceHealth::Running))),
            plan_app_instance(Some(&moved), Some((&existing, InstanceHealth::Running))),
            plan_app_instance(None, Some((&existing, InstanceHealth::Running))),
            plan_app_instance(Some(&spec("acme", "web", "1.0")), Some((&existing, InstanceHealth::Running))),
        ]
        .into_iter()
        .flatten()
        .collect();
        let redeploys: Vec<bool> = changes.iter().map(|c| c.redeploy).collect();
        assert_eq!(redeploys, [true, true, true, false, true, false, false]);
        insta::assert_snapshot!(render_app_changes(&changes), @r#"
        + app instance acme/new (hello 1.1 is not deployed)
        ~ app instance acme/web (version changed)
            version: "1.0" -> "1.1"
        ~ app instance acme/web (the container is stopped (changed outside Atrium))
        ~ app instance acme/web (delete_data_on_destroy changed (no new deployment))
            delete_data_on_destroy: false -> true
        ~ app instance acme/web (moves from "lyon-onprem" to "cloud-fra1" with its data (the app is down while its volumes are copied))
            target: "lyon-onprem" -> "cloud-fra1"
        - app instance acme/web (the instance is no longer wanted; its data volumes are kept)
        Plan: 1 to add, 4 to change, 0 to replace, 1 to destroy.
        "#);
    }
}

#[cfg(test)]
mod draft_plan_tests {
    use std::fmt::Write as _;

    use serde_json::json;

    use super::*;
    use crate::model::backup::RestoreRequest;
    use crate::model::tenant::{Manager, TenantSpec, Tier};

    fn tenant(status: TenantStatus) -> TenantRecord {
        TenantRecord {
            spec: TenantSpec {
                name: TenantId::parse("acme").unwrap(),
                display_name: "ACME".into(),
                tier: Tier::Business,
                user_quota: 50,
                expires_on: None,
                manager: Manager { email: "boss@acme.example".into(), name: "Boss".into() },
                welcome_email: true,
            },
            status,
            created_at: "2026-11-23T10:00:00Z".into(),
            owner: "terraform".into(),
        }
    }

    fn recorded(password: &str) -> AppInstanceRecord {
        let document: AppInstanceDocument = serde_json::from_value(config_json()).unwrap();
        let catalog = Catalog::built_in();
        let context = InstanceContext { catalog: Some(&catalog), targets: None, swarm_targets: None };
        AppInstanceRecord {
            spec: spec_from_document(&document, &context).unwrap(),
            generation: 4,
            previous_version: None,
            deployed_at: "2026-11-23T10:00:00Z".into(),
            published_port: Some(32768),
            published_host: None,
            moved_from: None,
            secrets: BTreeMap::new(),
            manager_password_hash: Password::new(password).hash(),
            welcome: crate::model::app_instance::WelcomeState::Sent,
            password_given: true,
            owner: "terraform".into(),
            created_at: "2026-11-23T09:00:00Z".into(),
        }
    }

    fn config_json() -> serde_json::Value {
        json!({"tenant_id": "acme", "name": "web", "app": "hello", "target": "lyon-onprem", "users": 10})
    }

    fn prior(changes: serde_json::Value) -> Draft {
        let mut state = config_json();
        let computed = json!({"channel": "stable", "version": "1.1", "delete_data_on_destroy": false,
            "id": "acme/web", "status": "running", "internal_url": "http://127.0.0.1:32768",
            "version_deployed": "1.1", "deployed_at": "2026-11-23T10:00:00Z", "welcome_email_status": "sent"});
        for (key, value) in computed.as_object().unwrap().iter().chain(changes.as_object().unwrap()) {
            state[key] = value.clone();
        }
        Draft::new(Some(state), [])
    }

    fn config(changes: serde_json::Value, unknown: &[&str]) -> Draft {
        let mut config = config_json();
        for (key, value) in changes.as_object().unwrap() {
            config[key] = value.clone();
        }
        Draft::new(Some(config), unknown.iter().map(|u| u.to_string()))
    }

    /// One line per case: the decision, what forces replacement, and the
    /// planned computed values (`?` unknown until apply).
    fn row(case: &str, prior: Option<&Draft>, config: Option<&Draft>, facts: &AppFacts<'_>) -> String {
        let plan = plan_instance(prior, config, facts);
        let decision = match &plan.decision {
            None => "none".to_owned(),
            Some(decision) if decision.redeploy => "deploy".to_owned(),
            Some(decision) => format!("record g{}", decision.generation.unwrap_or(0)),
        };
        let attributes = ["status", "version", "previous_version", "welcome_email_status", "internal_url"];
        format!("{case}: {decision} {}", crate::plan::draft::row(&plan, &attributes))
    }

    /// Facts with the targets `lyon-onprem` (an engine) and `cloud-fra1` (a swarm).
    fn both_targets<'a>(
        catalog: &'a Catalog,
        tenant: Option<&'a TenantRecord>,
        recorded: Option<&'a AppInstanceRecord>,
    ) -> AppFacts<'a> {
        AppFacts {
            catalog,
            targets: vec!["lyon-onprem", "cloud-fra1"],
            swarm_targets: vec!["cloud-fra1"],
            tenant,
            recorded,
        }
    }

    /// Runs `test` with the facts of a recorded Redmine 5.0 instance of an active tenant.
    fn with_redmine_facts(test: impl FnOnce(&AppFacts<'_>)) {
        let catalog = Catalog::built_in();
        let active = tenant(TenantStatus::Active);
        let mut record = recorded("the-old-password");
        record.spec.app = "redmine".into();
        record.spec.version = "5.0".into();
        let facts = both_targets(&catalog, Some(&active), Some(&record));
        test(&facts);
    }

    #[test]
    fn the_latest_backup_is_kept_from_the_prior_state_unless_the_instance_is_new() {
        with_redmine_facts(|facts| {
            let redmine = json!({"app": "redmine", "version": "5.0"});
            let backed_up = json!({"app": "redmine", "version": "5.0", "version_deployed": "5.0",
            "latest_backup": "3f9a12bc", "latest_backup_at": "2026-12-03T16:20:00Z",
            "latest_restore_test": "passed at 2026-12-03T18:00:00Z: snapshot 3f9a12bc"});
            let cases: Vec<(&str, Option<Draft>, Draft)> = vec![
                ("create", None, config(redmine.clone(), &[])),
                ("no-op", Some(prior(backed_up.clone())), config(redmine.clone(), &[])),
                (
                    "more users",
                    Some(prior(backed_up.clone())),
                    config(json!({"app": "redmine", "version": "5.0", "users": 20}), &[]),
                ),
                ("upgrade", Some(prior(backed_up.clone())), config(json!({"app": "redmine", "version": "6.0"}), &[])),
                (
                    "other target",
                    Some(prior(backed_up.clone())),
                    config(json!({"app": "redmine", "version": "5.0", "target": "cloud-fra1"}), &[]),
                ),
                ("hello, create", None, config(json!({}), &[])),
                ("unknown app", None, config(json!({"app": null}), &["app"])),
            ];
            let mut table = String::new();
            for (case, prior, config) in &cases {
                let plan = plan_instance(prior.as_ref(), Some(config), facts);
                let row = crate::plan::draft::row(&plan, &["latest_backup", "latest_backup_at", "latest_restore_test"]);
                let _ = writeln!(table, "{case}: {row}");
            }
            insta::assert_snapshot!(table, @r#"
        create: replace=[] latest_backup=? latest_backup_at=? latest_restore_test=?
        no-op: replace=[] latest_backup="3f9a12bc" latest_backup_at="2026-12-03T16:20:00Z" latest_restore_test="passed at 2026-12-03T18:00:00Z: snapshot 3f9a12bc"
        more users: replace=[] latest_backup="3f9a12bc" latest_backup_at="2026-12-03T16:20:00Z" latest_restore_test="passed at 2026-12-03T18:00:00Z: snapshot 3f9a12bc"
        upgrade: replace=[] latest_backup="3f9a12bc" latest_backup_at="2026-12-03T16:20:00Z" latest_restore_test="passed at 2026-12-03T18:00:00Z: snapshot 3f9a12bc"
        other target: replace=[] latest_backup="3f9a12bc" latest_backup_at="2026-12-03T16:20:00Z" latest_restore_test="passed at 2026-12-03T18:00:00Z: snapshot 3f9a12bc" [warn target: Apply moves the instance with its data]
        hello, create: replace=[] latest_backup=null latest_backup_at=null latest_restore_test=null
        unknown app: replace=[] latest_backup=? latest_backup_at=? latest_restore_test=?
        "#);
        });
    }

    #[test]
    fn a_restore_asked_anew_is_a_warning_and_no_new_deployment_and_one_done_is_nothing() {
        let catalog = Catalog::built_in();
        let active = tenant(TenantStatus::Active);
        let mut record = recorded("the-old-password");
        (record.spec.app, record.spec.version) = ("redmine".into(), "5.0".into());
        let mut restored = record.clone();
        restored.spec.restore =
            Some(RestoreRequest { snapshot: "1a2b3c4d".into(), from: Some("acme/other".into()), offsite_of: None });
        let facts = |recorded| AppFacts {
            catalog: &catalog,
            targets: vec!["lyon-onprem"],
            swarm_targets: vec![],
            tenant: Some(&active),
            recorded,
        };
        let redmine = |restore: serde_json::Value, unknown: &[&str]| {
            config(json!({"app": "redmine", "version": "5.0", "restore": restore}), unknown)
        };
        let state = prior(json!({"app": "redmine", "version": "5.0"}));
        let clone = json!({"snapshot": "1a2b3c4d", "from": "acme/other"});
        let cloned = prior(json!({"app": "redmine", "version": "5.0", "restore": clone}));
        let cases: Vec<(&str, Option<&AppInstanceRecord>, Option<&Draft>, Draft)> = vec![
            ("create with a clone", None, None, redmine(clone.clone(), &[])),
            ("restore in place", Some(&record), Some(&state), redmine(json!({"snapshot": "latest"}), &[])),
            ("another snapshot", Some(&restored), Some(&cloned), redmine(json!({"snapshot": "latest"}), &[])),
            ("done before", Some(&restored), Some(&cloned), redmine(clone.clone(), &[])),
            ("unset", Some(&restored), Some(&cloned), redmine(serde_json::Value::Null, &[])),
            ("unknown", Some(&record), Some(&state), redmine(json!({"snapshot": null}), &["restore.snapshot"])),
        ];
        let mut table = String::new();
        for (case, recorded, prior, config) in &cases {
            let plan = plan_instance(*prior, Some(config), &facts(*recorded));
            let decision = plan.decision.as_ref().map(|decision| decision.redeploy);
            let row = crate::plan::draft::row(&plan, &["internal_url", "welcome_email_status"]);
            let _ = writeln!(table, "{case}: errors={} redeploy={decision:?} {row}", plan.errors.len());
        }
        insta::assert_snapshot!(table, @r#"
        create with a clone: errors=0 redeploy=Some(true) replace=[] internal_url=? welcome_email_status=? [warn restore: Apply restores data]
        restore in place: errors=0 redeploy=Some(false) replace=[] internal_url=? welcome_email_status=? [warn restore: Apply restores data]
        another snapshot: errors=0 redeploy=Some(false) replace=[] internal_url=? welcome_email_status=? [warn restore: Apply restores data]
        done before: errors=0 redeploy=Some(false) replace=[] internal_url="http://127.0.0.1:32768" welcome_email_status="sent"
        unset: errors=0 redeploy=Some(false) replace=[] internal_url="http://127.0.0.1:32768" welcome_email_status="sent"
        unknown: errors=0 redeploy=Some(false) replace=[] internal_url=? welcome_email_status=?
        "#);
        let in_place =
            plan_instance(Some(&state), Some(&redmine(json!({"snapshot": "latest"}), &[])), &facts(Some(&record)));
        let detail = &in_place.warnings[0].detail;
        assert!(detail.contains("replaces this instance's data") && detail.contains("snapshot latest"), "{detail}");
        // The change is recorded after the restore, not deployed.
        let mut wanted = record.spec.clone();
        wanted.restore = Some(RestoreRequest { snapshot: "latest".into(), from: None, offsite_of: None });
        let change = plan_app_instance(Some(&wanted), Some((&record, InstanceHealth::Running))).unwrap();
        assert_eq!((change.action, change.redeploy), (Action::Update, false));
        assert_eq!(change.reason, "restore changed (no new deployment)");
    }

    #[test]
    fn users_in_use_is_kept_from_the_refresh_and_more_of_them_than_users_is_a_warning() {
        with_redmine_facts(|facts| {
            let redmine = |users: u32| config(json!({"app": "redmine", "version": "5.0", "users": users}), &[]);
            let counted = |users: u32| prior(json!({"app": "redmine", "version": "5.0", "users_in_use": users}));
            let unknown_users = config(json!({"app": "redmine", "version": "5.0", "users": null}), &["users"]);
            let cases: Vec<(&str, Option<Draft>, Draft)> = vec![
                ("create", None, redmine(10)),
                ("within users", Some(counted(10)), redmine(10)),
                ("over users", Some(counted(12)), redmine(10)),
                ("users raised", Some(counted(12)), redmine(12)),
                ("users unknown", Some(counted(12)), unknown_users),
                ("never read", Some(prior(json!({"app": "redmine", "version": "5.0"}))), redmine(10)),
                ("upgrade over users", Some(counted(12)), config(json!({"app": "redmine", "version": "6.0"}), &[])),
                ("hello", None, config(json!({}), &[])),
            ];
            let mut table = String::new();
            for (case, prior, config) in &cases {
                let plan = plan_instance(prior.as_ref(), Some(config), facts);
                let _ = writeln!(table, "{case}: {}", crate::plan::draft::row(&plan, &["users_in_use"]));
            }
            insta::assert_snapshot!(table, @r"
        create: replace=[] users_in_use=?
        within users: replace=[] users_in_use=10
        over users: replace=[] users_in_use=12 [warn users: More people use the app than its users]
        users raised: replace=[] users_in_use=12
        users unknown: replace=[] users_in_use=12
        never read: replace=[] users_in_use=null
        upgrade over users: replace=[] users_in_use=12 [warn users: More people use the app than its users]
        hello: replace=[] users_in_use=null
        ");
            let over = plan_instance(Some(&counted(12)), Some(&redmine(10)), facts);
            let detail = &over.warnings.iter().find(|w| w.summary.contains("users")).expect("a warning").detail;
            assert!(detail.contains("redmine counts 12 active users") && detail.contains("deactivate 2"), "{detail}");
        });
    }

    #[test]
    fn every_kind_of_instance_change_is_planned_with_its_decision() {
        let catalog = Catalog::built_in();
        let (active, suspended) = (tenant(TenantStatus::Active), tenant(TenantStatus::Suspended));
        let record = recorded("the-old-password");
        let facts = |tenant: &'static str| AppFacts {
            catalog: &catalog,
            targets: vec!["lyon-onprem", "cloud-fra1"],
            swarm_targets: vec!["cloud-fra1"],
            tenant: match tenant {
                "suspended" => Some(&suspended),
                "none" => None,
                _ => Some(&active),
            },
            recorded: Some(&record),
        };
        let none = json!({});
        let cases: Vec<(&str, Option<Draft>, Option<Draft>, &str)> = vec![
            ("create", None, Some(config(none.clone(), &[])), "active"),
            ("no-op", Some(prior(none.clone())), Some(config(none.clone(), &[])), "active"),
            (
                "keep data",
                Some(prior(none.clone())),
                Some(config(json!({"delete_data_on_destroy": true}), &[])),
                "active",
            ),
            ("more users", Some(prior(none.clone())), Some(config(json!({"users": 20}), &[])), "active"),
            ("over quota", Some(prior(none.clone())), Some(config(json!({"users": 60}), &[])), "active"),
            ("pin older", Some(prior(none.clone())), Some(config(json!({"version": "1.0"}), &[])), "active"),
            ("unknown version", Some(prior(none.clone())), Some(config(json!({}), &["version"])), "active"),
            ("unknown users", Some(prior(none.clone())), Some(config(json!({}), &["users"])), "active"),
            ("other target", Some(prior(none.clone())), Some(config(json!({"target": "cloud-fra1"}), &[])), "active"),
            ("unknown tenant", Some(prior(none.clone())), Some(config(json!({}), &["tenant_id"])), "active"),
            ("stopped", Some(prior(json!({"status": "stopped"}))), Some(config(none.clone(), &[])), "active"),
            ("missing", Some(prior(json!({"status": "missing"}))), Some(config(none.clone(), &[])), "active"),
            ("drifted", Some(prior(json!({"status": "drifted"}))), Some(config(none.clone(), &[])), "active"),
            (
                "welcome pending",
                Some(prior(json!({"welcome_email_status": "pending"}))),
                Some(config(none.clone(), &[])),
                "active",
            ),
            (
                "same password",
                Some(prior(none.clone())),
                Some(config(json!({"admin_password": "the-old-password"}), &[])),
                "active",
            ),
            (
                "new password",
                Some(prior(none.clone())),
                Some(config(json!({"admin_password": "a-new-password!"}), &[])),
                "active",
            ),
            ("rotate", Some(prior(none.clone())), Some(config(json!({"password_version": 1}), &[])), "active"),
            (
                "suspended, same",
                Some(prior(json!({"status": "suspended"}))),
                Some(config(none.clone(), &[])),
                "suspended",
            ),
            (
                "suspended, more users",
                Some(prior(json!({"status": "suspended"}))),
                Some(config(json!({"users": 20}), &[])),
                "suspended",
            ),
            ("suspended, create", None, Some(config(none.clone(), &[])), "suspended"),
            ("tenant made by this apply", None, Some(config(none.clone(), &[])), "none"),
            ("destroy", Some(prior(none.clone())), None, "active"),
        ];
        let mut table = String::new();
        for (case, prior, config, tenant) in &cases {
            let _ = writeln!(table, "{}", row(case, prior.as_ref(), config.as_ref(), &facts(tenant)));
        }
        insta::assert_snapshot!(table, @r#"
        create: deploy replace=[] status="running" version="1.1" previous_version=null welcome_email_status=? internal_url=?
        no-op: record g4 replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url="http://127.0.0.1:32768"
        keep data: record g4 replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url="http://127.0.0.1:32768"
        more users: deploy replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url=?
        over quota: deploy replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url=? [warn users: More users than the tenant's quota]
        pin older: deploy replace=[] status="running" version="1.0" previous_version="1.1" welcome_email_status="sent" internal_url=?
        unknown version: deploy replace=[] status="running" version=? previous_version=? welcome_email_status="sent" internal_url=?
        unknown users: deploy replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url=?
        other target: deploy replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url=? [warn target: Apply moves the instance with its data]
        unknown tenant: deploy replace=["tenant_id"] status="running" version="1.1" previous_version=null welcome_email_status=? internal_url=?
        stopped: deploy replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url=?
        missing: deploy replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url=?
        drifted: deploy replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url=?
        welcome pending: deploy replace=[] status="running" version="1.1" previous_version=null welcome_email_status=? internal_url=?
        same password: record g4 replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url="http://127.0.0.1:32768"
        new password: deploy replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url=?
        rotate: deploy replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url=?
        suspended, same: record g4 replace=[] status="suspended" version="1.1" previous_version=null welcome_email_status="sent" internal_url="http://127.0.0.1:32768"
        suspended, more users: deploy replace=[] status="suspended" version="1.1" previous_version=null welcome_email_status="sent" internal_url=?
        suspended, create: deploy replace=[] status="suspended" version="1.1" previous_version=null welcome_email_status=? internal_url=?
        tenant made by this apply: deploy replace=[] status=? version="1.1" previous_version=null welcome_email_status=? internal_url=?
        destroy: none replace=[] status=- version=- previous_version=- welcome_email_status=- internal_url=-
        "#);
    }

    #[test]
    fn another_number_of_copies_is_recorded_and_scaled_without_a_new_generation() {
        let directory = tempfile::tempdir().unwrap();
        let catalog = crate::test_services::hello_stateless(directory.path());
        let active = tenant(TenantStatus::Active);
        let mut record = recorded("the-old-password");
        record.spec.target = "cloud-fra1".into();
        record.spec.replicas = 2;
        let facts = both_targets(&catalog, Some(&active), Some(&record));
        let state = prior(json!({"target": "cloud-fra1", "replicas": 2}));
        let copies = |replicas: u32| config(json!({"target": "cloud-fra1", "replicas": replicas}), &[]);
        let rows: Vec<String> =
            [2, 3].iter().map(|n| row(&format!("{n} copies"), Some(&state), Some(&copies(*n)), &facts)).collect();
        // The internal URL names one copy's node: another count may leave none there.
        insta::assert_snapshot!(rows.join("\n"), @r#"
        2 copies: record g4 replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url="http://127.0.0.1:32768"
        3 copies: record g4 replace=[] status="running" version="1.1" previous_version=null welcome_email_status="sent" internal_url=?
        "#);
    }

    #[test]
    fn a_given_password_whose_hash_a_restore_cleared_is_set_again_by_the_next_apply() {
        let catalog = Catalog::built_in();
        let active = tenant(TenantStatus::Active);
        let given = config(json!({"admin_password": "the-old-password"}), &[]);
        let redeploys = |record: &AppInstanceRecord| {
            let facts = AppFacts {
                catalog: &catalog,
                targets: vec!["lyon-onprem", "cloud-fra1"],
                swarm_targets: vec!["cloud-fra1"],
                tenant: Some(&active),
                recorded: Some(record),
            };
            let plan = plan_instance(Some(&prior(json!({}))), Some(&given), &facts);
            plan.decision.expect("a decision").redeploy
        };
        let mut record = recorded("the-old-password");
        assert!(!redeploys(&record), "the same password is only recorded");
        record.manager_password_hash = String::new();
        assert!(redeploys(&record), "after a restore the given password is set again");
    }

    #[test]
    fn bad_input_is_refused_with_the_attribute_and_no_decision() {
        let catalog = Catalog::built_in();
        let facts = AppFacts {
            catalog: &catalog,
            targets: vec!["lyon-onprem"],
            swarm_targets: vec![],
            tenant: None,
            recorded: None,
        };
        let plan = plan_instance(None, Some(&config(json!({"target": "mars", "users": 0}), &[])), &facts);
        let paths: Vec<String> = plan.errors.iter().map(|e| e.attribute.to_string()).collect();
        assert_eq!(paths, ["target", "users"]);
        assert!(plan.decision.is_none() && plan.attributes.is_empty());
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;
    use crate::model::app_instance::*;

    fn context(catalog: &Catalog) -> InstanceContext<'_> {
        InstanceContext {
            catalog: Some(catalog),
            targets: Some(vec!["lyon-onprem", "cloud-fra1"]),
            swarm_targets: Some(vec!["cloud-fra1"]),
        }
    }

    fn check(json: serde_json::Value, expected_paths: &[&str]) {
        let catalog = Catalog::built_in();
        let draft: AppInstanceDraft = serde_json::from_value(json.clone()).unwrap();
        let paths: Vec<String> =
            validate_draft(&draft, &context(&catalog)).iter().map(|e| e.attribute.to_string()).collect();
        assert_eq!(paths, expected_paths, "{json}");
    }

    #[test]
    fn several_replicas_run_only_on_a_swarm_for_an_app_without_volumes() {
        let directory = tempfile::tempdir().unwrap();
        let stateless = crate::test_services::hello_stateless(directory.path());
        let errors = |catalog: &Catalog, json: serde_json::Value| -> Vec<String> {
            let draft: AppInstanceDraft = serde_json::from_value(json).unwrap();
            validate_draft(&draft, &context(catalog)).iter().map(|e| format!("{}: {}", e.attribute, e.detail)).collect()
        };
        let on = |target: &str, replicas: serde_json::Value| serde_json::json!({"app": "hello", "target": target, "replicas": replicas});
        assert_eq!(errors(&stateless, on("cloud-fra1", 3.into())), Vec::<String>::new());
        assert_eq!(errors(&stateless, on("lyon-onprem", 1.into())), Vec::<String>::new());
        for wrong in [0, 10] {
            let refused = errors(&stateless, on("cloud-fra1", wrong.into()));
            assert!(
                refused.len() == 1 && refused[0].starts_with("replicas: ") && refused[0].contains("1 to 9"),
                "{refused:?}"
            );
        }
        let engine = errors(&stateless, on("lyon-onprem", 2.into()));
        assert!(
            engine.len() == 1 && engine[0].contains("Docker engine") && engine[0].contains("\"cloud-fra1\""),
            "{engine:?}"
        );
        let with_data = errors(&Catalog::built_in(), on("cloud-fra1", 2.into()));
        assert!(with_data.len() == 1 && with_data[0].contains("keeps data in volumes (\"data\")"), "{with_data:?}");
        let mut customized = on("cloud-fra1", 2.into());
        customized["customizations"] = serde_json::json!({"volumes": {"uploads": "/www/uploads"}});
        let customized = errors(&stateless, customized);
        assert!(customized.len() == 1 && customized[0].contains("customizations.volumes"), "{customized:?}");
    }

    #[test]
    fn app_instance_validation_names_the_attribute() {
        check(
            serde_json::json!({"tenant_id": "acme", "name": "web", "app": "hello", "target": "lyon-onprem", "users": 5}),
            &[],
        );
        check(serde_json::json!({"tenant_id": "Acme"}), &["tenant_id"]);
        check(serde_json::json!({"name": "x"}), &["name"]);
        check(serde_json::json!({"app": "wordpress"}), &["app"]);
        check(serde_json::json!({"app": "hello", "channel": "nightly"}), &["channel"]);
        check(serde_json::json!({"app": "hello", "version": "3.0"}), &["version"]);
        check(serde_json::json!({"app": "hello", "channel": "custom", "version": "2.0"}), &["version"]);
        check(serde_json::json!({"target": "mars"}), &["target"]);
        check(serde_json::json!({"users": 0}), &["users"]);
        check(
            serde_json::json!({"resources": {"cpus": 0, "memory_mb": 8}}),
            &["resources.cpus", "resources.memory_mb"],
        );
        check(serde_json::json!({"app": "hello", "backup": {"interval": "1h"}}), &["backup"]);
        check(serde_json::json!({"app": "hello", "backup": {"interval": null}}), &[]);
        check(serde_json::json!({"app": "hello", "restore": {"snapshot": "latest"}}), &["restore"]);
        check(
            serde_json::json!({"tenant_id": "acme", "name": "wiki", "app": "mediawiki",
                "restore": {"snapshot": "1a2b3c4d", "from": "acme/old-wiki"}}),
            &[],
        );
        check(
            serde_json::json!({"tenant_id": "acme", "name": "wiki", "app": "mediawiki",
                "restore": {"snapshot": "yesterday", "from": "other/wiki"}}),
            &["restore.snapshot", "restore.from"],
        );
        check(
            serde_json::json!({"tenant_id": "acme", "name": "wiki", "restore": {"snapshot": "latest", "from": "acme/wiki"}}),
            &["restore.from"],
        );
        check(serde_json::json!({"restore": {"snapshot": "latest", "from": "no slash"}}), &["restore.from"]);
        check(serde_json::json!({"app": "redmine", "backup": {"interval": "1m", "keep_daily": 3}}), &[]);
        check(
            serde_json::json!({"app": "redmine", "backup": {
                "interval": "10s", "keep_within": "30m", "keep_hourly": -1, "keep_weekly": 1.5, "keep_monthly": 5000
            }}),
            &[
                "backup.interval",
                "backup.keep_within",
                "backup.keep_hourly",
                "backup.keep_weekly",
                "backup.keep_monthly",
            ],
        );
        check(
            serde_json::json!({"customizations": {"disable_health_check": true}}),
            &["customizations.disable_health_check"],
        );
        check(
            serde_json::json!({"app": "hello", "customizations": {"volumes": {"data": "/srv"}}}),
            &["customizations.volumes[\"data\"]"],
        );
        check(
            serde_json::json!({"app": "hello", "customizations": {"volumes": {"extra": "/www/data/x"}}}),
            &["customizations.volumes[\"extra\"]"],
        );
        check(serde_json::json!({"app": "hello", "customizations": {"volumes": {"uploads": "/srv/uploads"}}}), &[]);
        check(
            serde_json::json!({"customizations": {"environment": {"1BAD": "x", "GOOD_ONE": "y"}}}),
            &["customizations.environment[\"1BAD\"]"],
        );
        check(
            serde_json::json!({"app": "hello", "customizations": {"files": {
                "etc/relative.conf": "", "/etc/../escape": "", "/etc/httpd.conf": "", "/www/data/x.conf": "",
                "/etc/extra.conf": "ok"
            }}}),
            &[
                "customizations.files[\"/etc/../escape\"]",
                "customizations.files[\"/etc/httpd.conf\"]",
                "customizations.files[\"/www/data/x.conf\"]",
                "customizations.files[\"etc/relative.conf\"]",
            ],
        );
        check(
            serde_json::json!({"customizations": {"files": {"/etc/big.conf": "x".repeat(MAX_FILE_BYTES + 1)}}}),
            &["customizations.files[\"/etc/big.conf\"]"],
        );
        // Inputs that would hang or break the container: refused at plan.
        check(
            serde_json::json!({"customizations": {"environment": {"NUL": "a\u{0}b", "BIG": "x".repeat(MAX_ENVIRONMENT_VALUE_BYTES + 1)}}}),
            &["customizations.environment[\"BIG\"]", "customizations.environment[\"NUL\"]"],
        );
        check(
            serde_json::json!({"customizations": {"volumes": {"root": "/", "dots": "/srv/../etc", "proc": "/proc/x", "dev": "/dev"}}}),
            &[
                "customizations.volumes[\"dev\"]",
                "customizations.volumes[\"dots\"]",
                "customizations.volumes[\"proc\"]",
                "customizations.volumes[\"root\"]",
            ],
        );
        check(
            serde_json::json!({"customizations": {"files": {"/proc/self/x": "", "/sys/kernel/x": "", "/dev/shm/x": ""}}}),
            &[
                "customizations.files[\"/dev/shm/x\"]",
                "customizations.files[\"/proc/self/x\"]",
                "customizations.files[\"/sys/kernel/x\"]",
            ],
        );
        // The catalog's own variables (the tenant, the manager, the user limit) cannot be overridden.
        check(
            serde_json::json!({"app": "hello", "customizations": {"environment": {
                "HELLO_MAX_USERS": "100000", "HELLO_TENANT": "other", "HELLO_MANAGER_EMAIL": "x@y.z", "GREETING": "Moin"
            }}}),
            &[
                "customizations.environment[\"HELLO_MANAGER_EMAIL\"]",
                "customizations.environment[\"HELLO_MAX_USERS\"]",
                "customizations.environment[\"HELLO_TENANT\"]",
            ],
        );
        check(serde_json::json!({"admin_password": "short"}), &["admin_password"]);
        check(serde_json::json!({"admin_password": "a long one\nwith a newline"}), &["admin_password"]);
        check(serde_json::json!({"admin_password": "a-good-long-password"}), &[]);
    }

    #[test]
    fn ids_parse_as_tenant_slash_name() {
        assert_eq!(AppInstanceId::parse("acme/erp").unwrap().to_string(), "acme/erp");
        for bad in ["acme", "acme/", "/erp", "Acme/erp", "acme/E", "acme/erp/x"] {
            assert!(AppInstanceId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_resolves_the_channel_version_from_the_catalog() {
        let catalog = Catalog::built_in();
        let document: AppInstanceDocument = serde_json::from_value(serde_json::json!({
            "tenant_id": "acme", "name": "web", "app": "hello", "target": "lyon-onprem", "users": 5
        }))
        .unwrap();
        let spec = spec_from_document(&document, &context(&catalog)).unwrap();
        assert_eq!((spec.channel.as_str(), spec.version.as_str()), ("stable", "1.1"));
        assert!(!spec.delete_data_on_destroy);
    }
}
