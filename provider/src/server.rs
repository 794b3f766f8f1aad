//! The tfplugin6 `Provider` service: decodes each request, calls the engine
//! through the resource modules, and answers with values and diagnostics.
//!
//! Handlers never panic and never return gRPC errors for user-facing
//! problems: everything becomes a diagnostic Terraform can show.

use std::collections::HashMap;
use std::sync::Arc;

use atrium_engine::config::PlatformConfigDocument;
use atrium_engine::model::ownership::CreateToken;
use atrium_engine::observe::{AppObservations, ClaimObserver, DomainObservations, TenantObserver};
use atrium_engine::platform::{Environment, Platform};
use tokio::sync::{RwLock, watch};
use tonic::{Request, Response, Status};

use crate::claims;
use crate::configured::Configured;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::proto::tfplugin6::provider_server::Provider;
use crate::resources::{self, Change, Resource};
use crate::schema::{ProviderSchemas, ResourceSchema};
use crate::value::{CtyType, Value, decode_msgpack, encode_msgpack};

/// Atrium's provider service.
pub struct AtriumProvider {
    schemas: Arc<ProviderSchemas>,
    configured: RwLock<Option<Arc<Configured>>>,
    stop_sender: watch::Sender<bool>,
}

impl AtriumProvider {
    pub fn new(schemas: Arc<ProviderSchemas>) -> Self {
        let (stop_sender, _) = watch::channel(false);
        Self { schemas, configured: RwLock::new(None), stop_sender }
    }

    /// Closes the registry pool; called on shutdown so SQLite checkpoints its WAL.
    /// With `ATRIUM_STATS_FILE` set (benchmarks), appends this process's Docker
    /// API request counts per target and its registry statements.
    pub async fn close(&self) {
        if let Some(configured) = self.configured.read().await.as_ref() {
            if let Ok(path) = std::env::var("ATRIUM_STATS_FILE") {
                let mut lines: String = configured
                    .platform
                    .targets
                    .api_calls()
                    .await
                    .into_iter()
                    .map(|(target, calls)| format!("docker_api_calls {target} {calls}\n"))
                    .collect();
                lines.push_str(&format!("registry_statements {}\n", atrium_engine::registry::statements()));
                use std::io::Write as _;
                if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                    let _ = file.write_all(lines.as_bytes());
                }
            }
            if let Err(error) = configured.claims.flush().await {
                tracing::warn!(error = %error, "cannot record that the state holds its objects; the next plan tries again");
            }
            configured.tenant_observer.registry().close().await;
        }
    }

    /// The schema and the resource of a type name.
    fn resource(&self, type_name: &str) -> Result<(&ResourceSchema, &'static dyn Resource), pb::Diagnostic> {
        let schema = self.resource_schema(type_name)?;
        let resource = resources::lookup(type_name).ok_or_else(|| {
            diagnostics::error(
                "Unknown resource type",
                format!("{type_name:?} has a schema but no implementation. This is a bug in the provider."),
            )
        })?;
        Ok((schema, resource))
    }

    fn resource_schema(&self, type_name: &str) -> Result<&ResourceSchema, pb::Diagnostic> {
        self.schemas.resource(type_name).ok_or_else(|| {
            diagnostics::error(
                "Unknown resource type",
                format!(
                    "this provider has no resource type {type_name:?}; it serves {}",
                    self.schemas.resources.keys().copied().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    fn data_source_schema(&self, type_name: &str) -> Result<&ResourceSchema, pb::Diagnostic> {
        self.schemas.data_source(type_name).ok_or_else(|| {
            diagnostics::error(
                "Unknown data source",
                format!(
                    "this provider has no data source {type_name:?}; it serves {}",
                    self.schemas.data_sources.keys().copied().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    async fn configured(&self) -> Result<Arc<Configured>, pb::Diagnostic> {
        self.configured.read().await.clone().ok_or_else(crate::configured::not_configured)
    }
}

fn decode(value: Option<&pb::DynamicValue>, ty: &CtyType, what: &str) -> Result<Value, pb::Diagnostic> {
    let Some(value) = value else { return Ok(Value::Null) };
    if !value.msgpack.is_empty() {
        return decode_msgpack(&value.msgpack, ty).map_err(|error| {
            diagnostics::error(
                format!("Cannot decode the {what}"),
                format!("{} (attribute {}): {}", what, error.path, error.message),
            )
        });
    }
    if !value.json.is_empty() {
        let json: serde_json::Value = serde_json::from_slice(&value.json)
            .map_err(|error| diagnostics::error(format!("Cannot decode the {what}"), error.to_string()))?;
        return Value::from_json(&json, ty).map_err(|error| {
            diagnostics::error(
                format!("Cannot decode the {what}"),
                format!("{} (attribute {}): {}", what, error.path, error.message),
            )
        });
    }
    Ok(Value::Null)
}

fn encode(value: &Value, ty: &CtyType) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue { msgpack: encode_msgpack(value, ty), json: Vec::new() })
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities { plan_destroy: true, get_provider_schema_optional: true, move_resource_state: false }
}

fn not_supported(what: &str) -> Vec<pb::Diagnostic> {
    vec![diagnostics::error(
        format!("{what} are not supported"),
        format!("the atrium provider has no {what} yet; it manages atrium_tenant resources"),
    )]
}

/// Reads the provider configuration document from its (fully known) value.
fn platform_config(value: &Value) -> Result<PlatformConfigDocument, pb::Diagnostic> {
    let json = value.to_known_json().unwrap_or_else(|| serde_json::json!({}));
    serde_json::from_value(json)
        .map_err(|error| diagnostics::error("Invalid provider configuration", error.to_string()))
}

/// Upgrades stored state JSON from `version` to the resource's current schema.
///
/// Version 0 is the first; each later version adds one step here that turns
/// version N's JSON into N+1's, so states written by every release load.
pub fn upgrade_state(
    version: i64,
    mut json: serde_json::Value,
    schema: &ResourceSchema,
) -> Result<Value, pb::Diagnostic> {
    if version > schema.version {
        return Err(diagnostics::error(
            "State written by a newer provider",
            format!(
                "this state has schema version {version}, but this provider knows up to {}; upgrade terraform-provider-atrium",
                schema.version
            ),
        ));
    }
    // Steps for future versions go here (`if version < 1 { ... }`). For all
    // versions, attributes no longer in the schema are dropped.
    if let (serde_json::Value::Object(object), CtyType::Object(attributes)) = (&mut json, &schema.value_type) {
        object.retain(|key, _| attributes.contains_key(key));
    }
    Value::from_json(&json, &schema.value_type).map_err(|error| {
        diagnostics::error("Cannot upgrade the stored state", format!("attribute {}: {}", error.path, error.message))
    })
}

#[tonic::async_trait]
impl Provider for AtriumProvider {
    async fn get_metadata(
        &self,
        _: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            resources: self
                .schemas
                .resources
                .keys()
                .map(|name| pb::get_metadata::ResourceMetadata { type_name: (*name).to_owned() })
                .collect(),
            data_sources: self
                .schemas
                .data_sources
                .keys()
                .map(|name| pb::get_metadata::DataSourceMetadata { type_name: (*name).to_owned() })
                .collect(),
            ..Default::default()
        }))
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(self.schemas.provider.to_proto()),
            resource_schemas: self
                .schemas
                .resources
                .iter()
                .map(|(name, schema)| ((*name).to_owned(), schema.to_proto()))
                .collect(),
            data_source_schemas: self
                .schemas
                .data_sources
                .iter()
                .map(|(name, schema)| ((*name).to_owned(), schema.to_proto()))
                .collect(),
            functions: HashMap::new(),
            ephemeral_resource_schemas: HashMap::new(),
            diagnostics: Vec::new(),
            provider_meta: None,
            server_capabilities: Some(capabilities()),
        }))
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let request = request.into_inner();
        let diagnostics =
            match decode(request.config.as_ref(), &self.schemas.provider.value_type, "provider configuration") {
                Err(diagnostic) => vec![diagnostic],
                // Parts not known yet are checked again at ConfigureProvider.
                Ok(config) if !config.is_fully_known() => Vec::new(),
                Ok(config) => match platform_config(&config) {
                    Ok(document) => document.validate().iter().map(diagnostics::from_validation).collect(),
                    Err(diagnostic) => vec![diagnostic],
                },
            };
        Ok(Response::new(pb::validate_provider_config::Response { diagnostics }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let request = request.into_inner();
        let diagnostics = match self.resource_schema(&request.type_name) {
            Err(diagnostic) => vec![diagnostic],
            Ok(schema) => match decode(request.config.as_ref(), &schema.value_type, "resource configuration") {
                Err(diagnostic) => vec![diagnostic],
                Ok(config) => resources::lookup(&request.type_name).map(|r| r.validate(&config)).unwrap_or_default(),
            },
        };
        Ok(Response::new(pb::validate_resource_config::Response { diagnostics }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let request = request.into_inner();
        let diagnostics = match self.data_source_schema(&request.type_name) {
            Err(diagnostic) => vec![diagnostic],
            Ok(schema) => match decode(request.config.as_ref(), &schema.value_type, "data source configuration") {
                Err(diagnostic) => vec![diagnostic],
                Ok(config) => crate::data_sources::validate(&request.type_name, &config),
            },
        };
        Ok(Response::new(pb::validate_data_resource_config::Response { diagnostics }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let request = request.into_inner();
        let schema = match self.resource_schema(&request.type_name) {
            Ok(schema) => schema,
            Err(diagnostic) => {
                return Ok(Response::new(pb::upgrade_resource_state::Response {
                    upgraded_state: None,
                    diagnostics: vec![diagnostic],
                }));
            }
        };
        let raw = request.raw_state.unwrap_or_default();
        let result = if raw.json.is_empty() {
            if raw.flatmap.is_empty() {
                Ok(Value::Null)
            } else {
                Err(diagnostics::error(
                    "Legacy state format",
                    "this state is in the pre-0.12 flatmap format, which the atrium provider never wrote",
                ))
            }
        } else {
            serde_json::from_slice::<serde_json::Value>(&raw.json)
                .map_err(|error| diagnostics::error("Cannot read the stored state", error.to_string()))
                .and_then(|json| upgrade_state(request.version, json, schema))
        };
        Ok(Response::new(match result {
            Ok(value) => pb::upgrade_resource_state::Response {
                upgraded_state: encode(&value, &schema.value_type),
                diagnostics: Vec::new(),
            },
            Err(diagnostic) => {
                pb::upgrade_resource_state::Response { upgraded_state: None, diagnostics: vec![diagnostic] }
            }
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let request = request.into_inner();
        let config = match decode(request.config.as_ref(), &self.schemas.provider.value_type, "provider configuration")
        {
            Ok(config) => config,
            Err(diagnostic) => {
                return Ok(Response::new(pb::configure_provider::Response { diagnostics: vec![diagnostic] }));
            }
        };
        let document = match platform_config(&config) {
            Ok(document) => document,
            Err(diagnostic) => {
                return Ok(Response::new(pb::configure_provider::Response { diagnostics: vec![diagnostic] }));
            }
        };
        let platform = match Platform::connect(&document, &Environment::of_process()).await {
            Ok(platform) => platform,
            Err(errors) => {
                let diagnostics = errors.iter().map(diagnostics::from_setup).collect();
                return Ok(Response::new(pb::configure_provider::Response { diagnostics }));
            }
        };
        let registry = platform.registry.clone();
        tracing::debug!(registry = registry.url_for_messages(), terraform = %request.terraform_version, "provider configured");
        let claims = Arc::new(ClaimObserver::new(registry.clone()));
        let owner = claims::configuration_owner(document.owner.as_deref());
        tracing::debug!(owner = owner.as_str(), "owner of this configuration's objects");
        let configured = Configured {
            platform,
            owner,
            claims,
            tenant_observer: TenantObserver::new(registry),
            app_observations: AppObservations::default(),
            domain_observations: DomainObservations::default(),
            stopped: self.stop_sender.subscribe(),
        };
        *self.configured.write().await = Some(Arc::new(configured));
        Ok(Response::new(pb::configure_provider::Response { diagnostics: Vec::new() }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let request = request.into_inner();
        let result = async {
            let (schema, resource) = self.resource(&request.type_name).map_err(|d| vec![d])?;
            let current =
                decode(request.current_state.as_ref(), &schema.value_type, "current state").map_err(|d| vec![d])?;
            let configured = self.configured().await.map_err(|d| vec![d])?;
            let state = resource.read(&configured, schema, &current).await?;
            if !state.is_null() {
                configured.acknowledge(&request.type_name, &state, &request.private).await;
            } else {
                configured.release_vanished(&request.type_name, &current, &request.private).await;
            }
            Ok::<_, Vec<pb::Diagnostic>>(encode(&state, &schema.value_type))
        }
        .await;
        Ok(Response::new(match result {
            Ok(new_state) => pb::read_resource::Response { new_state, private: request.private, ..Default::default() },
            // On failure, keep the current state so nothing is forgotten.
            Err(diagnostics) => pb::read_resource::Response {
                new_state: request.current_state,
                diagnostics,
                private: request.private,
                deferred: None,
            },
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let request = request.into_inner();
        let (schema, resource) = match self.resource(&request.type_name) {
            Ok(found) => found,
            Err(diagnostic) => {
                return Ok(Response::new(pb::plan_resource_change::Response {
                    diagnostics: vec![diagnostic],
                    ..Default::default()
                }));
            }
        };
        let decoded = (|| {
            Ok::<_, pb::Diagnostic>((
                decode(request.prior_state.as_ref(), &schema.value_type, "prior state")?,
                decode(request.proposed_new_state.as_ref(), &schema.value_type, "proposed state")?,
                decode(request.config.as_ref(), &schema.value_type, "configuration")?,
            ))
        })();
        let (prior, proposed, config) = match decoded {
            Ok(values) => values,
            Err(diagnostic) => {
                return Ok(Response::new(pb::plan_resource_change::Response {
                    diagnostics: vec![diagnostic],
                    ..Default::default()
                }));
            }
        };
        let configured = self.configured().await;
        if let Ok(configured) = &configured
            && !prior.is_null()
        {
            configured.acknowledge(&request.type_name, &prior, &request.prior_private).await;
        }
        let change = Change {
            schema,
            prior: &prior,
            after: &proposed,
            config: &config,
            planned_private: &[],
            create: None,
            cancelled: self.stop_sender.subscribe(),
        };
        let mut planned = resource.plan(configured.as_ref().ok().map(Arc::as_ref), change).await;
        // A create never takes over an object that already exists: refused
        // here when the name is known, and again (atomically) at apply.
        if let Ok(configured) = &configured
            && prior.is_null()
            && !proposed.is_null()
            && !diagnostics::has_errors(&planned.diagnostics)
            && let Some(refusal) = configured.check_planned_create(&request.type_name, &config).await
        {
            planned.diagnostics.push(refusal);
        }
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state: encode(&planned.planned_state, &schema.value_type),
            requires_replace: planned.requires_replace.iter().map(diagnostics::to_proto_path).collect(),
            planned_private: claims::planned_private(&request.prior_private, planned.decision),
            diagnostics: planned.diagnostics,
            legacy_type_system: false,
            deferred: None,
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let request = request.into_inner();
        let result = async {
            let (schema, resource) = self.resource(&request.type_name).map_err(|d| vec![d])?;
            let prior = decode(request.prior_state.as_ref(), &schema.value_type, "prior state").map_err(|d| vec![d])?;
            let planned =
                decode(request.planned_state.as_ref(), &schema.value_type, "planned state").map_err(|d| vec![d])?;
            let configured = self.configured().await.map_err(|d| vec![d])?;
            let config = decode(request.config.as_ref(), &schema.value_type, "configuration").map_err(|d| vec![d])?;
            // A create claims its object's name under a new token, which the
            // state keeps in its private data from now on.
            let create_token = (prior.is_null() && !planned.is_null()).then(CreateToken::new);
            let change = Change {
                schema,
                prior: &prior,
                after: &planned,
                config: &config,
                planned_private: &request.planned_private,
                create: create_token.as_ref(),
                cancelled: self.stop_sender.subscribe(),
            };
            // Every step and retry of this change ends by the deadline its timeouts give.
            let state =
                atrium_engine::backends::retry::within(change.deadline(), resource.apply(&configured, change)).await?;
            configured.claims.invalidate().await;
            let private = match &create_token {
                Some(token) => claims::private_with(token),
                None => claims::state_private(&request.planned_private),
            };
            Ok::<_, Vec<pb::Diagnostic>>((encode(&state.0, &schema.value_type), state.1, private))
        }
        .await;
        Ok(Response::new(match result {
            Ok((new_state, warnings, private)) => {
                pb::apply_resource_change::Response { new_state, private, diagnostics: warnings, ..Default::default() }
            }
            // A failed change leaves the object as it was: answer with the prior state.
            Err(diagnostics) => pb::apply_resource_change::Response {
                new_state: request.prior_state,
                diagnostics,
                ..Default::default()
            },
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let request = request.into_inner();
        let result = async {
            let (schema, resource) = self.resource(&request.type_name).map_err(|d| vec![d])?;
            let configured = self.configured().await.map_err(|d| vec![d])?;
            let state = resource.import(&configured, schema, &request.id).await?;
            // The state takes the token of the create that made the object,
            // so the registry knows from now on that this state holds it.
            let private = match claims::kind_of(&request.type_name)
                .and_then(|kind| claims::natural_key(kind, &state).map(|key| (kind, key)))
            {
                Some((kind, key)) => match configured.claims.claim(kind, &key).await {
                    Ok(Some(claim)) if !claim.owner.is_terraform() => {
                        return Err(vec![diagnostics::error(
                            format!("The {} is managed elsewhere", kind.noun()),
                            format!(
                                "{} {key} is managed by {}; Terraform does not take over the objects of the atrium CLI. Release it there first.",
                                kind.noun(),
                                claim.owner
                            ),
                        )]);
                    }
                    Ok(Some(claim)) => claims::private_with(&claim.create_token),
                    Ok(None) => Vec::new(),
                    Err(error) => {
                        return Err(vec![diagnostics::error(
                            "Cannot read the registry",
                            diagnostics::error_chain(&error),
                        )]);
                    }
                },
                None => Vec::new(),
            };
            configured.acknowledge(&request.type_name, &state, &private).await;
            Ok::<_, Vec<pb::Diagnostic>>(pb::import_resource_state::ImportedResource {
                type_name: request.type_name.clone(),
                state: encode(&state, &schema.value_type),
                private,
            })
        }
        .await;
        Ok(Response::new(match result {
            Ok(imported) => {
                pb::import_resource_state::Response { imported_resources: vec![imported], ..Default::default() }
            }
            Err(diagnostics) => pb::import_resource_state::Response { diagnostics, ..Default::default() },
        }))
    }

    async fn move_resource_state(
        &self,
        _: Request<pb::move_resource_state::Request>,
    ) -> Result<Response<pb::move_resource_state::Response>, Status> {
        Ok(Response::new(pb::move_resource_state::Response {
            diagnostics: vec![diagnostics::error(
                "Moving state between resource types is not supported",
                "the atrium provider cannot take over state from another resource type; import the object by its natural key instead",
            )],
            ..Default::default()
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let request = request.into_inner();
        let result = async {
            let schema = self.data_source_schema(&request.type_name).map_err(|d| vec![d])?;
            let config = decode(request.config.as_ref(), &schema.value_type, "data source configuration")
                .map_err(|d| vec![d])?;
            let configured = self.configured().await.map_err(|d| vec![d])?;
            let (state, warnings) = crate::data_sources::read(&configured, &request.type_name, schema, &config).await?;
            Ok::<_, Vec<pb::Diagnostic>>((encode(&state, &schema.value_type), warnings))
        }
        .await;
        Ok(Response::new(match result {
            Ok((state, diagnostics)) => pb::read_data_source::Response { state, diagnostics, deferred: None },
            Err(diagnostics) => pb::read_data_source::Response { diagnostics, ..Default::default() },
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        _: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<pb::validate_ephemeral_resource_config::Response>, Status> {
        Ok(Response::new(pb::validate_ephemeral_resource_config::Response {
            diagnostics: not_supported("ephemeral resources"),
        }))
    }

    async fn open_ephemeral_resource(
        &self,
        _: Request<pb::open_ephemeral_resource::Request>,
    ) -> Result<Response<pb::open_ephemeral_resource::Response>, Status> {
        Ok(Response::new(pb::open_ephemeral_resource::Response {
            diagnostics: not_supported("ephemeral resources"),
            ..Default::default()
        }))
    }

    async fn renew_ephemeral_resource(
        &self,
        _: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Result<Response<pb::renew_ephemeral_resource::Response>, Status> {
        Ok(Response::new(pb::renew_ephemeral_resource::Response {
            diagnostics: not_supported("ephemeral resources"),
            ..Default::default()
        }))
    }

    async fn close_ephemeral_resource(
        &self,
        _: Request<pb::close_ephemeral_resource::Request>,
    ) -> Result<Response<pb::close_ephemeral_resource::Response>, Status> {
        Ok(Response::new(pb::close_ephemeral_resource::Response { diagnostics: not_supported("ephemeral resources") }))
    }

    async fn get_functions(
        &self,
        _: Request<pb::get_functions::Request>,
    ) -> Result<Response<pb::get_functions::Response>, Status> {
        Ok(Response::new(pb::get_functions::Response::default()))
    }

    async fn call_function(
        &self,
        request: Request<pb::call_function::Request>,
    ) -> Result<Response<pb::call_function::Response>, Status> {
        let name = request.into_inner().name;
        Ok(Response::new(pb::call_function::Response {
            result: None,
            error: Some(pb::FunctionError {
                text: format!("the atrium provider has no function named {name:?}"),
                function_argument: None,
            }),
        }))
    }

    async fn stop_provider(
        &self,
        _: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        // Applies check this before each write and finish the write in flight,
        // so every change that happened is reported to Terraform.
        self.stop_sender.send_replace(true);
        tracing::info!("stop requested: no new changes will start");
        Ok(Response::new(pb::stop_provider::Response { error: String::new() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TENANT_TYPE;
    use atrium_engine::model::TENANT_SCHEMA_VERSION;

    #[test]
    fn state_upgrade_keeps_version_zero_and_drops_removed_attributes() {
        let schemas = ProviderSchemas::build().unwrap();
        let schema = schemas.resource(TENANT_TYPE).unwrap();
        let json = serde_json::json!({"name": "acme", "display_name": "ACME", "tier": "basic", "user_quota": 10,
            "manager": {"email": "m@acme.com", "name": "M"}, "welcome_email": true, "id": "acme",
            "status": "active", "created_at": "2026-11-23T10:00:00Z", "legacy_attribute": "gone"});
        let value = upgrade_state(0, json, schema).unwrap();
        assert_eq!(value.get("name"), &Value::string("acme"));
        assert_eq!(value.get("expires_on"), &Value::Null);
        let error = upgrade_state(TENANT_SCHEMA_VERSION + 1, serde_json::json!({}), schema).unwrap_err();
        assert!(error.detail.contains("upgrade terraform-provider-atrium"));
    }
}
