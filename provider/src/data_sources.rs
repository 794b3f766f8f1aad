//! Terraform's data sources: read-only views of what the platform holds,
//! read by the engine and converted here.

use atrium_engine::model::attribute::AttributePath;
use atrium_engine::model::kept::{KeptDataDocument, KeptFilter};
use atrium_engine::model::timeouts::DEFAULT_TIMEOUT;

use crate::configured::Configured;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::resources::Diagnosed;
use crate::schema::{KEPT_DATA_TYPE, ResourceSchema};
use crate::value::Value;

/// The document of a configuration, as far as it is known.
fn document(config: &Value) -> Result<KeptDataDocument, pb::Diagnostic> {
    let json = config.to_known_json().unwrap_or_else(|| serde_json::json!({}));
    serde_json::from_value(json).map_err(|error| {
        diagnostics::error("Invalid atrium_kept_data configuration", format!("{error}. This is a bug in the provider."))
    })
}

fn filter_error((attribute, detail): (&str, String)) -> pb::Diagnostic {
    let summary = match attribute {
        "tenant_id" => "Invalid tenant_id",
        _ => "Unknown target",
    };
    diagnostics::attribute_error(&AttributePath::root(attribute), summary, detail)
}

/// Checks what is known of a configuration, before the provider is configured.
pub fn validate(type_name: &str, config: &Value) -> Vec<pb::Diagnostic> {
    if type_name != KEPT_DATA_TYPE {
        return Vec::new();
    }
    match document(config).and_then(|document| KeptFilter::of(&document, None).map_err(filter_error)) {
        Ok(_) => Vec::new(),
        Err(diagnostic) => vec![diagnostic],
    }
}

/// Reads a data source: its state, and warnings.
pub async fn read(
    provider: &Configured,
    type_name: &str,
    schema: &ResourceSchema,
    config: &Value,
) -> Diagnosed<(Value, Vec<pb::Diagnostic>)> {
    if type_name != KEPT_DATA_TYPE {
        return Err(vec![diagnostics::error(
            "Unknown data source",
            format!("this provider has no data source {type_name:?}; it serves {KEPT_DATA_TYPE}"),
        )]);
    }
    let document = document(config).map_err(|d| vec![d])?;
    let targets = provider.platform.targets.names();
    let filter = KeptFilter::of(&document, Some(&targets)).map_err(|error| vec![filter_error(error)])?;
    let context = provider.app_context(DEFAULT_TIMEOUT, provider.stopped.clone());
    let listing = context
        .kept_data()
        .await
        .map_err(|error| vec![diagnostics::error("Cannot list the kept data", diagnostics::error_chain(&error))])?;
    let read = filter.document(&listing.kept, &listing.unreachable);
    let warnings = listing
        .unreachable
        .iter()
        .filter(|(target, _)| read.unreachable_targets.iter().flatten().any(|t| t == target))
        .map(|(target, reason)| {
            diagnostics::warning(
                format!("Target {target} did not answer"),
                format!("data kept on {target} is not listed: {reason}"),
            )
        })
        .collect();
    let json = serde_json::to_value(&read).unwrap_or_default();
    let state = Value::from_json(&json, &schema.value_type).map_err(|error| {
        vec![diagnostics::error("Cannot encode the kept data", format!("{error}. This is a bug in the provider."))]
    })?;
    Ok((state, warnings))
}
