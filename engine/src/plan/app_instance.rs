//! Planning app instances: `plan_app_instance(desired, observed)`, pure and
//! deterministic, with the same `+ ~ -/+ -` text as tenants.
//!
//! The decision that matters most is whether a change needs a *new
//! deployment* (a new generation of the app container, health-checked beside
//! the old one) or only a new registry record, and why.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::catalog::{CHANNELS, Catalog, CatalogEntry};
use crate::model::TenantId;
use crate::model::app_instance::{
    AppInstanceDocument, AppInstanceDraft, AppInstanceId, AppInstanceRecord, AppInstanceSpec, Customizations,
    InstanceHealth, MAX_ENVIRONMENT_VALUE_BYTES, MAX_FILE_BYTES, check_instance_name,
};
use crate::model::attribute::{AttributePath, ValidationError};
use crate::model::password::Password;
use crate::plan::tenant::{Action, AttributeChange};

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
    let fields: [(&'static str, String, String, bool, bool); 13] = [
        ("tenant_id", quoted(before.id.tenant_id.as_str()), quoted(after.id.tenant_id.as_str()), true, true),
        ("name", quoted(&before.id.name), quoted(&after.id.name), true, true),
        ("app", quoted(&before.app), quoted(&after.app), true, true),
        ("target", quoted(&before.target), quoted(&after.target), true, true),
        ("channel", quoted(&before.channel), quoted(&after.channel), false, true),
        ("version", quoted(&before.version), quoted(&after.version), false, true),
        ("users", before.users.to_string(), after.users.to_string(), false, true),
        ("resources", json(&before.resources), json(&after.resources), false, true),
        ("customizations.environment", json(&before.environment), json(&after.environment), false, true),
        ("customizations.volumes", json(&before.extra_volumes), json(&after.extra_volumes), false, true),
        ("customizations.files", json(&file_digests(&before.files)), json(&file_digests(&after.files)), false, true),
        ("password_version", before.password_version.to_string(), after.password_version.to_string(), false, true),
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
            (AttributeChange { attribute, before, after, forces_replacement }, redeploys)
        })
        .collect()
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
                changes.iter().filter(|(c, _)| c.forces_replacement).map(|(c, _)| c.attribute).collect();
            let redeploying = changes.iter().any(|(_, redeploys)| *redeploys);
            let names: Vec<&str> = changes.iter().map(|(c, _)| c.attribute).collect();
            let (action, redeploy, reason) = if !replacing.is_empty() {
                (Action::Replace, true, format!("changing {} forces replacement", replacing.join(", ")))
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

/// The changes as people read them, like a tenant plan.
pub fn render_app_changes(changes: &[AppChange]) -> String {
    let mut text = String::new();
    for change in changes.iter().filter(|c| c.action != Action::NoOp) {
        let _ = writeln!(text, "{} app instance {} ({})", change.action.symbol(), change.id, change.reason);
        for attribute in &change.attribute_changes {
            let marker = if attribute.forces_replacement { " # forces replacement" } else { "" };
            let _ =
                writeln!(text, "    {}: {} -> {}{}", attribute.attribute, attribute.before, attribute.after, marker);
        }
    }
    text
}

/// What the engine knows about the platform when it validates an instance.
/// Before the provider is configured neither is known, and checks that need
/// them wait for the plan.
pub struct InstanceContext<'a> {
    pub catalog: Option<&'a Catalog>,
    /// Target names from the configuration.
    pub targets: Option<Vec<&'a str>>,
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
        resources: document.resources.as_ref().map(|r| {
            BTreeMap::from([
                ("cpus".to_owned(), serde_json::json!(r.cpus)),
                ("memory_mb".to_owned(), serde_json::json!(r.memory_mb)),
            ])
        }),
        customizations: document.customizations.clone(),
        admin_password: document.admin_password.clone(),
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
        resources: document.resources.clone(),
        environment: customizations.environment.unwrap_or_default(),
        extra_volumes: customizations.volumes.unwrap_or_default(),
        files: customizations.files.unwrap_or_default(),
        admin_password: document.admin_password.clone().map(Password::new),
        password_version: document.password_version.unwrap_or(0),
        delete_data_on_destroy: document.delete_data_on_destroy.unwrap_or(false),
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
            resources: None,
            environment: BTreeMap::new(),
            extra_volumes: BTreeMap::new(),
            files: BTreeMap::new(),
            admin_password: None,
            password_version: 0,
            delete_data_on_destroy: false,
        }
    }

    fn record(spec: AppInstanceSpec) -> AppInstanceRecord {
        AppInstanceRecord {
            spec,
            generation: 3,
            previous_version: None,
            deployed_at: "2026-11-23T10:00:00Z".into(),
            published_port: Some(32768),
            secrets: BTreeMap::new(),
            manager_password_hash: "$6$rounds=5000$c2FsdA$sample".into(),
            welcome: crate::model::app_instance::WelcomeState::Sent,
            password_given: false,
            owner: "terraform".into(),
            created_at: "2026-11-23T09:00:00Z".into(),
        }
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
        -/+ app instance acme/web (changing target forces replacement)
            target: "lyon-onprem" -> "cloud-fra1" # forces replacement
        - app instance acme/web (the instance is no longer wanted; its data volumes are kept)
        "#);
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;
    use crate::model::app_instance::*;

    fn context(catalog: &Catalog) -> InstanceContext<'_> {
        InstanceContext { catalog: Some(catalog), targets: Some(vec!["lyon-onprem", "cloud-fra1"]) }
    }

    fn check(json: serde_json::Value, expected_paths: &[&str]) {
        let catalog = Catalog::built_in();
        let draft: AppInstanceDraft = serde_json::from_value(json.clone()).unwrap();
        let paths: Vec<String> =
            validate_draft(&draft, &context(&catalog)).iter().map(|e| e.attribute.to_string()).collect();
        assert_eq!(paths, expected_paths, "{json}");
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
