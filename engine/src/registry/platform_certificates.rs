//! The platform zones' wildcard certificates.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Registry, RegistryError, query_error};

/// A zone's wildcard certificate as stored: the chain and key in PEM, and
/// the leaf's validity (RFC 3339) so a renewal is decided without parsing.
#[derive(Clone, PartialEq, Eq)]
pub struct PlatformCertificateRecord {
    pub zone: String,
    pub certificate_pem: String,
    pub key_pem: String,
    pub not_before: String,
    pub not_after: String,
    pub obtained_at: String,
}

impl std::fmt::Debug for PlatformCertificateRecord {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformCertificateRecord")
            .field("zone", &self.zone)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("obtained_at", &self.obtained_at)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "zone, certificate_pem, key_pem, not_before, not_after, obtained_at";

fn record_from_row(row: &AnyRow) -> Result<PlatformCertificateRecord, RegistryError> {
    let text = |column: &str| {
        row.try_get::<String, _>(column)
            .map_err(|e| RegistryError::Corrupt { detail: format!("platform_certificates: {column}: {e}") })
    };
    Ok(PlatformCertificateRecord {
        zone: text("zone")?,
        certificate_pem: text("certificate_pem")?,
        key_pem: text("key_pem")?,
        not_before: text("not_before")?,
        not_after: text("not_after")?,
        obtained_at: text("obtained_at")?,
    })
}

impl Registry {
    /// A zone's wildcard certificate, if one was obtained.
    pub async fn get_platform_certificate(
        &self,
        zone: &str,
    ) -> Result<Option<PlatformCertificateRecord>, RegistryError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM platform_certificates WHERE zone = $1"));
        let row = sqlx::query(sql)
            .bind(zone.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read platform certificate"))?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Stores a zone's certificate unless the registry already holds one
    /// that lasts longer (another process renewed it meanwhile); returns the
    /// one the registry holds afterwards.
    pub async fn put_platform_certificate(
        &self,
        record: &PlatformCertificateRecord,
    ) -> Result<PlatformCertificateRecord, RegistryError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO platform_certificates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (zone) DO UPDATE SET certificate_pem = $2, key_pem = $3, not_before = $4, \
             not_after = $5, obtained_at = $6 WHERE platform_certificates.not_after < $5"
        ));
        sqlx::query(sql)
            .bind(record.zone.clone())
            .bind(record.certificate_pem.clone())
            .bind(record.key_pem.clone())
            .bind(record.not_before.clone())
            .bind(record.not_after.clone())
            .bind(record.obtained_at.clone())
            .execute(&self.pool)
            .await
            .map_err(query_error("record platform certificate"))?;
        self.get_platform_certificate(&record.zone).await?.ok_or_else(|| RegistryError::Corrupt {
            detail: format!("platform_certificates: the row for {} vanished as it was written", record.zone),
        })
    }

    /// Forgets a zone's certificate (tests, and an operator starting over).
    pub async fn delete_platform_certificate(&self, zone: &str) -> Result<bool, RegistryError> {
        let deleted = sqlx::query("DELETE FROM platform_certificates WHERE zone = $1")
            .bind(zone.to_owned())
            .execute(&self.pool)
            .await
            .map_err(query_error("delete platform certificate"))?;
        Ok(deleted.rows_affected() > 0)
    }
}
