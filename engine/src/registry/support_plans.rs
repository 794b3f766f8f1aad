//! Support plan rows.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Registry, RegistryError, now_rfc3339, query_error};
use crate::model::TenantId;
use crate::model::support_plan::{SupportLevel, SupportPlanRecord, SupportPlanSpec};

const COLUMNS: &str = "tenant, level, channels, first_response_minutes, tracker_access, starts_on, owner, created_at";

fn record_from_row(row: &AnyRow) -> Result<SupportPlanRecord, RegistryError> {
    let corrupt = |detail: String| RegistryError::Corrupt { detail: format!("support_plans: {detail}") };
    let text = |column: &str| row.try_get::<String, _>(column).map_err(|e| corrupt(format!("{column}: {e}")));
    let number = |column: &str| row.try_get::<i64, _>(column).map_err(|e| corrupt(format!("{column}: {e}")));
    let level = text("level")?;
    Ok(SupportPlanRecord {
        spec: SupportPlanSpec {
            tenant_id: TenantId::parse(&text("tenant")?).map_err(corrupt)?,
            level: SupportLevel::parse(&level).ok_or_else(|| corrupt(format!("level {level:?}")))?,
            channels: serde_json::from_str(&text("channels")?).map_err(|e| corrupt(format!("channels: {e}")))?,
            first_response_minutes: u32::try_from(number("first_response_minutes")?)
                .map_err(|e| corrupt(e.to_string()))?,
            tracker_access: number("tracker_access")? != 0,
        },
        starts_on: text("starts_on")?,
        owner: text("owner")?,
        created_at: text("created_at")?,
    })
}

impl Registry {
    /// Every support plan, ordered by tenant.
    pub async fn list_support_plans(&self) -> Result<Vec<SupportPlanRecord>, RegistryError> {
        let sql = format!("SELECT {COLUMNS} FROM support_plans ORDER BY tenant");
        self.list_rows(sql, "list support plans", record_from_row).await
    }

    /// A tenant's support plan.
    pub async fn get_support_plan(&self, tenant: &TenantId) -> Result<Option<SupportPlanRecord>, RegistryError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM support_plans WHERE tenant = $1"));
        let row = sqlx::query(sql)
            .bind(tenant.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read support plan"))?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Inserts or rewrites a tenant's plan (one statement).
    pub async fn put_support_plan(&self, record: &SupportPlanRecord) -> Result<(), RegistryError> {
        let spec = &record.spec;
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO support_plans ({COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant) DO UPDATE SET level = $2, channels = $3, first_response_minutes = $4, \
             tracker_access = $5, updated_at = $9"
        ));
        sqlx::query(sql)
            .bind(spec.tenant_id.as_str().to_owned())
            .bind(spec.level.as_str().to_owned())
            .bind(serde_json::to_string(&spec.channels).unwrap_or_else(|_| "[]".into()))
            .bind(i64::from(spec.first_response_minutes))
            .bind(i64::from(spec.tracker_access))
            .bind(record.starts_on.clone())
            .bind(record.owner.clone())
            .bind(record.created_at.clone())
            .bind(now_rfc3339())
            .execute(&self.pool)
            .await
            .map_err(query_error("record support plan"))?;
        Ok(())
    }

    /// Deletes a tenant's plan; a missing one is fine.
    pub async fn delete_support_plan(&self, tenant: &TenantId) -> Result<bool, RegistryError> {
        let deleted = sqlx::query("DELETE FROM support_plans WHERE tenant = $1")
            .bind(tenant.as_str().to_owned())
            .execute(&self.pool)
            .await
            .map_err(query_error("delete support plan"))?
            .rows_affected();
        Ok(deleted > 0)
    }
}
