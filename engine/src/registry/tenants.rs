//! Tenant rows.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Registry, RegistryError, now_rfc3339, query_error};
use crate::model::TenantId;
use crate::model::tenant::{Manager, TenantRecord, TenantSpec, TenantStatus, Tier};
use crate::model::validate;

/// What an insert found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The row is new.
    Created(TenantRecord),
    /// A row with the same spec and owner was already there (an earlier
    /// attempt that was cut off after it committed): the create is done.
    AlreadyPresent(TenantRecord),
    /// A different tenant of that name exists.
    Conflict(TenantRecord),
}

const COLUMNS: &str = "name, display_name, tier, user_quota, expires_on, manager_email, manager_name, welcome_email, status, owner, created_at";

fn record_from_row(row: &AnyRow) -> Result<TenantRecord, RegistryError> {
    let get_text = |column: &str| -> Result<String, RegistryError> {
        row.try_get::<String, _>(column)
            .map_err(|e| RegistryError::Corrupt { detail: format!("tenants.{column}: {e}") })
    };
    let name = get_text("name")?;
    let corrupt = |detail: String| RegistryError::Corrupt { detail: format!("tenant {name:?}: {detail}") };
    let tier_text = get_text("tier")?;
    let status_text = get_text("status")?;
    let expires_on: Option<String> = row.try_get("expires_on").map_err(|e| corrupt(e.to_string()))?;
    let user_quota: i64 = row.try_get("user_quota").map_err(|e| corrupt(e.to_string()))?;
    let welcome_email: i64 = row.try_get("welcome_email").map_err(|e| corrupt(e.to_string()))?;
    Ok(TenantRecord {
        spec: TenantSpec {
            name: TenantId::parse(&name).map_err(corrupt)?,
            display_name: get_text("display_name")?,
            tier: Tier::parse(&tier_text).ok_or_else(|| corrupt(format!("unknown tier {tier_text:?}")))?,
            user_quota: u32::try_from(user_quota).map_err(|_| corrupt(format!("user quota {user_quota}")))?,
            expires_on: expires_on.as_deref().map(validate::date).transpose().map_err(corrupt)?,
            manager: Manager { email: get_text("manager_email")?, name: get_text("manager_name")? },
            welcome_email: welcome_email != 0,
        },
        status: TenantStatus::parse(&status_text).ok_or_else(|| corrupt(format!("unknown status {status_text:?}")))?,
        created_at: get_text("created_at")?,
        owner: get_text("owner")?,
    })
}

impl Registry {
    /// Every tenant, ordered by name: one query serves a whole refresh.
    pub async fn list_tenants(&self) -> Result<Vec<TenantRecord>, RegistryError> {
        self.list_rows(format!("SELECT {COLUMNS} FROM tenants ORDER BY name"), "list tenants", record_from_row).await
    }

    /// One tenant by name.
    pub async fn get_tenant(&self, name: &TenantId) -> Result<Option<TenantRecord>, RegistryError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tenants WHERE name = $1"));
        let row = sqlx::query(sql)
            .bind(name.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read tenant"))?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Creates a tenant, or finds the identical one an interrupted attempt already made.
    pub async fn insert_tenant(&self, spec: &TenantSpec, owner: &str) -> Result<InsertOutcome, RegistryError> {
        let now = now_rfc3339();
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO tenants ({COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (name) DO NOTHING"
        ));
        let inserted = sqlx::query(sql)
            .bind(spec.name.as_str().to_owned())
            .bind(spec.display_name.clone())
            .bind(spec.tier.as_str())
            .bind(i64::from(spec.user_quota))
            .bind(spec.expires_on.map(validate::format_date))
            .bind(spec.manager.email.clone())
            .bind(spec.manager.name.clone())
            .bind(i64::from(spec.welcome_email))
            .bind(TenantStatus::Active.as_str())
            .bind(owner.to_owned())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(query_error("insert tenant"))?
            .rows_affected();
        let existing = self.get_tenant(&spec.name).await?.ok_or_else(|| RegistryError::Corrupt {
            detail: format!("tenant {:?} vanished right after its insert", spec.name.as_str()),
        })?;
        Ok(if inserted == 1 {
            InsertOutcome::Created(existing)
        } else if existing.spec == *spec && existing.owner == owner {
            InsertOutcome::AlreadyPresent(existing)
        } else {
            InsertOutcome::Conflict(existing)
        })
    }

    /// Rewrites a tenant's spec; `None` when no such tenant exists.
    pub async fn update_tenant(&self, spec: &TenantSpec) -> Result<Option<TenantRecord>, RegistryError> {
        let updated = sqlx::query(
            "UPDATE tenants SET display_name = $2, tier = $3, user_quota = $4, expires_on = $5, manager_email = $6, \
             manager_name = $7, welcome_email = $8, updated_at = $9 WHERE name = $1",
        )
        .bind(spec.name.as_str().to_owned())
        .bind(spec.display_name.clone())
        .bind(spec.tier.as_str())
        .bind(i64::from(spec.user_quota))
        .bind(spec.expires_on.map(validate::format_date))
        .bind(spec.manager.email.clone())
        .bind(spec.manager.name.clone())
        .bind(i64::from(spec.welcome_email))
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(query_error("update tenant"))?
        .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        self.get_tenant(&spec.name).await
    }

    /// Records the status a tenant's apps were brought to (suspension enforced, or lifted).
    pub async fn set_tenant_status(&self, name: &TenantId, status: TenantStatus) -> Result<bool, RegistryError> {
        let updated = sqlx::query("UPDATE tenants SET status = $2, updated_at = $3 WHERE name = $1")
            .bind(name.as_str().to_owned())
            .bind(status.as_str())
            .bind(now_rfc3339())
            .execute(&self.pool)
            .await
            .map_err(query_error("set tenant status"))?
            .rows_affected();
        Ok(updated > 0)
    }

    /// Deletes a tenant; deleting one that is already gone is not an error.
    pub async fn delete_tenant(&self, name: &TenantId) -> Result<bool, RegistryError> {
        let deleted = sqlx::query("DELETE FROM tenants WHERE name = $1")
            .bind(name.as_str().to_owned())
            .execute(&self.pool)
            .await
            .map_err(query_error("delete tenant"))?
            .rows_affected();
        Ok(deleted > 0)
    }

    /// Sets one column out of band: for tests and operators repairing a row by hand.
    pub async fn set_tenant_display_name(&self, name: &TenantId, display_name: &str) -> Result<bool, RegistryError> {
        let updated = sqlx::query("UPDATE tenants SET display_name = $2 WHERE name = $1")
            .bind(name.as_str().to_owned())
            .bind(display_name.to_owned())
            .execute(&self.pool)
            .await
            .map_err(query_error("set tenant display name"))?
            .rows_affected();
        Ok(updated > 0)
    }

    /// How many tenants the registry holds.
    pub async fn count_tenants(&self) -> Result<i64, RegistryError> {
        let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tenants")
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("count tenants"))?;
        Ok(row.0)
    }
}
