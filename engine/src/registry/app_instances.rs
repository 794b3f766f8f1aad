//! App instance rows.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Registry, RegistryError, now_rfc3339, query_error};
use crate::model::TenantId;
use crate::model::app_instance::{AppInstanceId, AppInstanceRecord, AppInstanceSpec, Resources, WelcomeState};
use crate::model::backup::{BackupSettings, RestoreRequest};

const COLUMNS: &str = "tenant, name, app, channel, version, target, users, resources, environment, extra_volumes, \
    delete_data_on_destroy, generation, previous_version, deployed_at, published_port, secrets, owner, created_at, \
    files, manager_password_hash, password_version, welcome_state, password_given, backup, restore, published_host, moved_from, replicas";

fn record_from_row(row: &AnyRow) -> Result<AppInstanceRecord, RegistryError> {
    let corrupt = |detail: String| RegistryError::Corrupt { detail: format!("app_instances: {detail}") };
    let text = |column: &str| row.try_get::<String, _>(column).map_err(|e| corrupt(format!("{column}: {e}")));
    let optional_text =
        |column: &str| row.try_get::<Option<String>, _>(column).map_err(|e| corrupt(format!("{column}: {e}")));
    let number = |column: &str| row.try_get::<i64, _>(column).map_err(|e| corrupt(format!("{column}: {e}")));
    let json_map = |column: &str| -> Result<BTreeMap<String, String>, RegistryError> {
        serde_json::from_str(&text(column)?).map_err(|e| corrupt(format!("{column}: {e}")))
    };
    let tenant = text("tenant")?;
    let resources: Option<Resources> = optional_text("resources")?
        .map(|json| serde_json::from_str(&json).map_err(|e| corrupt(format!("resources: {e}"))))
        .transpose()?;
    let backup: Option<BackupSettings> = optional_text("backup")?
        .map(|json| serde_json::from_str(&json).map_err(|e| corrupt(format!("backup: {e}"))))
        .transpose()?;
    let restore: Option<RestoreRequest> = optional_text("restore")?
        .map(|json| serde_json::from_str(&json).map_err(|e| corrupt(format!("restore: {e}"))))
        .transpose()?;
    let published_port: Option<i64> =
        row.try_get("published_port").map_err(|e| corrupt(format!("published_port: {e}")))?;
    Ok(AppInstanceRecord {
        spec: AppInstanceSpec {
            id: AppInstanceId { tenant_id: TenantId::parse(&tenant).map_err(corrupt)?, name: text("name")? },
            app: text("app")?,
            channel: text("channel")?,
            version: text("version")?,
            target: text("target")?,
            users: u32::try_from(number("users")?).map_err(|e| corrupt(e.to_string()))?,
            replicas: u32::try_from(number("replicas")?).map_err(|e| corrupt(e.to_string()))?,
            resources,
            environment: json_map("environment")?,
            extra_volumes: json_map("extra_volumes")?,
            files: json_map("files")?,
            // Never recorded: only its hash is.
            admin_password: None,
            password_version: u64::try_from(number("password_version")?).map_err(|e| corrupt(e.to_string()))?,
            delete_data_on_destroy: number("delete_data_on_destroy")? != 0,
            backup,
            restore,
        },
        generation: u32::try_from(number("generation")?).map_err(|e| corrupt(e.to_string()))?,
        previous_version: optional_text("previous_version")?,
        deployed_at: text("deployed_at")?,
        published_port: published_port.and_then(|p| u16::try_from(p).ok()),
        published_host: optional_text("published_host")?,
        moved_from: optional_text("moved_from")?,
        secrets: json_map("secrets")?,
        manager_password_hash: text("manager_password_hash")?,
        welcome: {
            let state = text("welcome_state")?;
            WelcomeState::parse(&state).ok_or_else(|| corrupt(format!("welcome_state {state:?}")))?
        },
        password_given: number("password_given")? != 0,
        owner: text("owner")?,
        created_at: text("created_at")?,
    })
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

impl Registry {
    /// Every app instance, ordered by id.
    pub async fn list_app_instances(&self) -> Result<Vec<AppInstanceRecord>, RegistryError> {
        let sql = format!("SELECT {COLUMNS} FROM app_instances ORDER BY tenant, name");
        self.list_rows(sql, "list app instances", record_from_row).await
    }

    /// The app instances of one tenant, ordered by name.
    pub async fn app_instances_of_tenant(&self, tenant: &TenantId) -> Result<Vec<AppInstanceRecord>, RegistryError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM app_instances WHERE tenant = $1 ORDER BY name"));
        let rows = sqlx::query(sql)
            .bind(tenant.as_str().to_owned())
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("list a tenant's app instances"))?;
        rows.iter().map(record_from_row).collect()
    }

    /// One app instance by id.
    pub async fn get_app_instance(&self, id: &AppInstanceId) -> Result<Option<AppInstanceRecord>, RegistryError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM app_instances WHERE tenant = $1 AND name = $2"));
        let row = sqlx::query(sql)
            .bind(id.tenant_id.as_str().to_owned())
            .bind(id.name.clone())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read app instance"))?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Records a deployment: inserts the instance or rewrites it (one statement, so either the old or the new row).
    pub async fn put_app_instance(&self, record: &AppInstanceRecord) -> Result<(), RegistryError> {
        let spec = &record.spec;
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO app_instances ({COLUMNS}, updated_at) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $19) \
             ON CONFLICT (tenant, name) DO UPDATE SET app = $3, channel = $4, version = $5, target = $6, users = $7, \
             resources = $8, environment = $9, extra_volumes = $10, delete_data_on_destroy = $11, generation = $12, \
             previous_version = $13, deployed_at = $14, published_port = $15, secrets = $16, updated_at = $19, \
             files = $20, manager_password_hash = $21, password_version = $22, welcome_state = $23, password_given = $24, \
             backup = $25, restore = $26, published_host = $27, moved_from = $28, replicas = $29"
        ));
        sqlx::query(sql)
            .bind(spec.id.tenant_id.as_str().to_owned())
            .bind(spec.id.name.clone())
            .bind(spec.app.clone())
            .bind(spec.channel.clone())
            .bind(spec.version.clone())
            .bind(spec.target.clone())
            .bind(i64::from(spec.users))
            .bind(spec.resources.as_ref().map(json))
            .bind(json(&spec.environment))
            .bind(json(&spec.extra_volumes))
            .bind(i64::from(spec.delete_data_on_destroy))
            .bind(i64::from(record.generation))
            .bind(record.previous_version.clone())
            .bind(record.deployed_at.clone())
            .bind(record.published_port.map(i64::from))
            .bind(json(&record.secrets))
            .bind(record.owner.clone())
            .bind(record.created_at.clone())
            .bind(now_rfc3339())
            .bind(json(&spec.files))
            .bind(record.manager_password_hash.clone())
            .bind(i64::try_from(spec.password_version).unwrap_or(i64::MAX))
            .bind(record.welcome.as_str().to_owned())
            .bind(i64::from(record.password_given))
            .bind(spec.backup.as_ref().map(json))
            .bind(spec.restore.as_ref().map(json))
            .bind(record.published_host.clone())
            .bind(record.moved_from.clone())
            .bind(i64::from(spec.replicas))
            .execute(&self.pool)
            .await
            .map_err(query_error("record app instance"))?;
        Ok(())
    }

    /// Deletes an instance's row; a missing one is fine.
    pub async fn delete_app_instance(&self, id: &AppInstanceId) -> Result<bool, RegistryError> {
        let deleted = sqlx::query("DELETE FROM app_instances WHERE tenant = $1 AND name = $2")
            .bind(id.tenant_id.as_str().to_owned())
            .bind(id.name.clone())
            .execute(&self.pool)
            .await
            .map_err(query_error("delete app instance"))?
            .rows_affected();
        Ok(deleted > 0)
    }
}
