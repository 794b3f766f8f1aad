//! Domain rows.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Registry, RegistryError, now_rfc3339, query_error};
use crate::model::TenantId;
use crate::model::app_instance::AppInstanceId;
use crate::model::domain::{DomainKind, DomainRecord, DomainSpec, DomainStatus, Hostname, TlsMode};

const COLUMNS: &str =
    "hostname, tenant, instance, target, tls, kind, status, certificate_expires_at, owner, created_at";

fn record_from_row(row: &AnyRow) -> Result<DomainRecord, RegistryError> {
    let corrupt = |detail: String| RegistryError::Corrupt { detail: format!("domains: {detail}") };
    let text = |column: &str| row.try_get::<String, _>(column).map_err(|e| corrupt(format!("{column}: {e}")));
    let (tls, kind, status) = (text("tls")?, text("kind")?, text("status")?);
    Ok(DomainRecord {
        spec: DomainSpec {
            hostname: Hostname::parse(&text("hostname")?).map_err(corrupt)?,
            app_instance_id: AppInstanceId {
                tenant_id: TenantId::parse(&text("tenant")?).map_err(corrupt)?,
                name: text("instance")?,
            },
            tls: TlsMode::parse(&tls).map_err(corrupt)?,
        },
        kind: DomainKind::parse(&kind).ok_or_else(|| corrupt(format!("kind {kind:?}")))?,
        target: text("target")?,
        status: DomainStatus::parse(&status).ok_or_else(|| corrupt(format!("status {status:?}")))?,
        certificate_expires_at: row
            .try_get::<Option<String>, _>("certificate_expires_at")
            .map_err(|e| corrupt(format!("certificate_expires_at: {e}")))?,
        owner: text("owner")?,
        created_at: text("created_at")?,
    })
}

impl Registry {
    /// Every domain, ordered by host name.
    pub async fn list_domains(&self) -> Result<Vec<DomainRecord>, RegistryError> {
        self.list_rows(format!("SELECT {COLUMNS} FROM domains ORDER BY hostname"), "list domains", record_from_row)
            .await
    }

    /// One domain by host name.
    pub async fn get_domain(&self, hostname: &Hostname) -> Result<Option<DomainRecord>, RegistryError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM domains WHERE hostname = $1"));
        let row = sqlx::query(sql)
            .bind(hostname.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read domain"))?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// The domains that serve one app instance.
    pub async fn domains_of_instance(&self, id: &AppInstanceId) -> Result<Vec<DomainRecord>, RegistryError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM domains WHERE tenant = $1 AND instance = $2 ORDER BY hostname"
        ));
        let rows = sqlx::query(sql)
            .bind(id.tenant_id.as_str().to_owned())
            .bind(id.name.clone())
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("list domains of an app instance"))?;
        rows.iter().map(record_from_row).collect()
    }

    /// Inserts or rewrites a domain (one statement: either the old row or the new one).
    pub async fn put_domain(&self, record: &DomainRecord) -> Result<(), RegistryError> {
        let spec = &record.spec;
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO domains ({COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (hostname) DO UPDATE SET tenant = $2, instance = $3, target = $4, tls = $5, kind = $6, \
             status = $7, certificate_expires_at = $8, updated_at = $11"
        ));
        sqlx::query(sql)
            .bind(spec.hostname.as_str().to_owned())
            .bind(spec.app_instance_id.tenant_id.as_str().to_owned())
            .bind(spec.app_instance_id.name.clone())
            .bind(record.target.clone())
            .bind(spec.tls.as_str().to_owned())
            .bind(record.kind.as_str().to_owned())
            .bind(record.status.as_str().to_owned())
            .bind(record.certificate_expires_at.clone())
            .bind(record.owner.clone())
            .bind(record.created_at.clone())
            .bind(now_rfc3339())
            .execute(&self.pool)
            .await
            .map_err(query_error("record domain"))?;
        Ok(())
    }

    /// Deletes a domain's row; a missing one is fine.
    pub async fn delete_domain(&self, hostname: &Hostname) -> Result<bool, RegistryError> {
        let deleted = sqlx::query("DELETE FROM domains WHERE hostname = $1")
            .bind(hostname.as_str().to_owned())
            .execute(&self.pool)
            .await
            .map_err(query_error("delete domain"))?
            .rows_affected();
        Ok(deleted > 0)
    }
}
