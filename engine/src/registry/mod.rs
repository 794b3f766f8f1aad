//! The control-plane registry: what Atrium has made, on SQLite (embedded
//! default, WAL mode) or PostgreSQL, through one set of migrations.
//!
//! Every write is one transaction, so a crash leaves either the old row or the
//! new one. Callers treat "already exists with the same spec" as success on
//! create and "not found" as success on delete, which makes every step safe to
//! repeat.

mod app_instances;
mod claims;
mod domains;
mod journal;
pub use journal::JournalRow;
mod platform_certificates;
pub use platform_certificates::PlatformCertificateRecord;
mod support_plans;
mod tenants;

use crate::config::redact_url;
use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor, SqlSafeStr};

pub use claims::ClaimOutcome;
pub use tenants::InsertOutcome;

/// The statements registries in this process have sent (benchmarks print it).
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many statements the registries of this process have sent so far.
pub fn statements() -> u64 {
    STATEMENTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts one statement about to be sent.
fn count_statement() {
    STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Counts one statement about to be sent, and names it in its error.
fn query_error(operation: &'static str) -> impl Fn(sqlx::Error) -> RegistryError {
    count_statement();
    move |source| RegistryError::Query { operation, source }
}

/// Which database a registry URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    Sqlite,
    Postgres,
}

/// A registry failure, with the (password-free) URL and whether retrying may help.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot open the registry at {url}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the registry at {url} to the current schema")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("cannot lock the registry at {url} for its migrations (a file beside the database)")]
    MigrationLock {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("registry query failed ({operation})")]
    Query {
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("the registry holds a row it cannot read ({detail})")]
    Corrupt { detail: String },
}

impl RegistryError {
    /// Whether the same call may succeed later (connection trouble, a busy database).
    pub fn is_retryable(&self) -> bool {
        let source = match self {
            RegistryError::Connect { source, .. } | RegistryError::Query { source, .. } => source,
            RegistryError::Migrate { .. } | RegistryError::MigrationLock { .. } | RegistryError::Corrupt { .. } => {
                return false;
            }
        };
        match source {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
            sqlx::Error::Database(db) => {
                let message = db.message();
                message.contains("database is locked")
                    || message.contains("busy")
                    || db.code().as_deref() == Some("40001")
            }
            _ => false,
        }
    }
}

/// A connection pool to the registry.
#[derive(Clone, Debug)]
pub struct Registry {
    pool: AnyPool,
    kind: RegistryKind,
    url_for_messages: String,
}

fn migrations() -> Vec<Migration> {
    let migration = |version, description, sql: &'static str| {
        Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, sql.into_sql_str(), false)
    };
    vec![
        migration(1, "tenants", include_str!("../../migrations/0001_tenants.sql")),
        migration(2, "app instances", include_str!("../../migrations/0002_app_instances.sql")),
        migration(
            3,
            "app instance files and password",
            include_str!("../../migrations/0003_app_instance_files_and_password.sql"),
        ),
        migration(4, "domains", include_str!("../../migrations/0004_domains.sql")),
        migration(5, "app instance welcome", include_str!("../../migrations/0005_app_instance_welcome.sql")),
        migration(6, "support plans", include_str!("../../migrations/0006_support_plans.sql")),
        migration(7, "claims", include_str!("../../migrations/0007_claims.sql")),
        migration(
            8,
            "app instance password given",
            include_str!("../../migrations/0008_app_instance_password_given.sql"),
        ),
        migration(9, "journal", include_str!("../../migrations/0009_journal.sql")),
        migration(10, "claim address", include_str!("../../migrations/0010_claim_address.sql")),
        migration(11, "platform certificates", include_str!("../../migrations/0011_platform_certificates.sql")),
        migration(12, "app instance backup", include_str!("../../migrations/0012_app_instance_backup.sql")),
        migration(13, "app instance restore", include_str!("../../migrations/0013_app_instance_restore.sql")),
        migration(
            14,
            "app instance published host",
            include_str!("../../migrations/0014_app_instance_published_host.sql"),
        ),
        migration(15, "app instance moved from", include_str!("../../migrations/0015_app_instance_moved_from.sql")),
        migration(16, "app instance replicas", include_str!("../../migrations/0016_app_instance_replicas.sql")),
    ]
}

impl Registry {
    /// Runs a listing and converts its rows one by one as they arrive, so a
    /// listing of thousands of rows never holds every raw row beside every
    /// record (most of a large plan's peak heap otherwise).
    async fn list_rows<T>(
        &self,
        sql: String,
        operation: &'static str,
        convert: fn(&sqlx::any::AnyRow) -> Result<T, RegistryError>,
    ) -> Result<Vec<T>, RegistryError> {
        use futures_util::TryStreamExt as _;
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&self.pool);
        let mut records = Vec::new();
        let error = query_error(operation);
        while let Some(row) = rows.try_next().await.map_err(&error)? {
            records.push(convert(&row)?);
        }
        Ok(records)
    }

    /// Opens (creating if needed) and migrates the registry at `url`.
    pub async fn connect(url: &str) -> Result<Registry, RegistryError> {
        sqlx::any::install_default_drivers();
        let url_for_messages = redact_url(url);
        let kind = if url.starts_with("sqlite:") { RegistryKind::Sqlite } else { RegistryKind::Postgres };
        let connect_url = match kind {
            RegistryKind::Sqlite => sqlite_url_with_options(url),
            RegistryKind::Postgres => url.to_owned(),
        };
        let connect_error = |source| RegistryError::Connect { url: url_for_messages.clone(), source };
        let options: AnyConnectOptions = connect_url.parse().map_err(connect_error)?;
        let options = options.disable_statement_logging();
        let max_connections = match kind {
            // SQLite allows one writer at a time; one more connection lets a
            // read proceed beside it. Refreshes read from snapshots anyway.
            RegistryKind::Sqlite => 2,
            RegistryKind::Postgres => 8,
        };
        // One direct connection first: an unreachable database fails at once
        // with its real cause, instead of after the pool's acquire timeout.
        let probe = options.connect().await.map_err(connect_error)?;
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if kind == RegistryKind::Sqlite {
                        // The registry is small; SQLite's default 2 MiB page cache per
                        // connection is most of the provider's memory otherwise.
                        connection.execute("PRAGMA cache_size = -512").await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        let registry = Registry { pool, kind, url_for_messages: url_for_messages.clone() };
        // Two processes opening a new registry at once must not both create
        // its tables: on PostgreSQL sqlx's migrator holds an advisory lock;
        // SQLite has none, so a lock file beside the database serializes them.
        let _migration_lock = match kind {
            RegistryKind::Sqlite => sqlite_migration_lock(&connect_url)
                .await
                .map_err(|source| RegistryError::MigrationLock { url: registry.url_for_messages.clone(), source })?,
            RegistryKind::Postgres => None,
        };
        if kind == RegistryKind::Sqlite {
            registry.pool.execute("PRAGMA journal_mode = WAL").await.map_err(connect_error)?;
        }
        registry.migrate().await?;
        Ok(registry)
    }

    async fn migrate(&self) -> Result<(), RegistryError> {
        let migrator = Migrator::with_migrations(migrations());
        migrator
            .run(&self.pool)
            .await
            .map_err(|source| RegistryError::Migrate { url: self.url_for_messages.clone(), source })
    }

    pub fn kind(&self) -> RegistryKind {
        self.kind
    }

    /// The URL without its password.
    pub fn url_for_messages(&self) -> &str {
        &self.url_for_messages
    }

    /// Closes the pool, waiting for connections to return (WAL checkpoint on SQLite).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// SQLite's journal mode, to check that WAL is on.
    pub async fn sqlite_journal_mode(&self) -> Result<String, RegistryError> {
        let row: (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("read journal mode"))?;
        Ok(row.0)
    }
}

/// Takes the exclusive lock on `<database>.migration-lock`, waiting for
/// another process that holds it; released when the returned file drops.
/// `None` for an in-memory database, which no other process can open.
async fn sqlite_migration_lock(url: &str) -> std::io::Result<Option<std::fs::File>> {
    use std::str::FromStr as _;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(std::io::Error::other)?;
    let database = options.get_filename();
    if database.as_os_str().is_empty() || database.to_string_lossy().contains(":memory:") {
        return Ok(None);
    }
    let mut path = database.as_os_str().to_owned();
    path.push(".migration-lock");
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        file.lock()?;
        Ok(Some(file))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Adds the options Atrium needs to a `sqlite:` URL: create the file if missing,
/// wait for a busy writer instead of failing at once.
fn sqlite_url_with_options(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    if url.contains("mode=") { url.to_owned() } else { format!("{url}{separator}mode=rwc") }
}

/// The current time as the registry stores it: RFC 3339, UTC, whole seconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("postgres://atrium:s3cret@db:5432/atrium"), "postgres://atrium:***@db:5432/atrium");
        assert_eq!(redact_url("sqlite://atrium.db"), "sqlite://atrium.db");
    }

    #[test]
    fn sqlite_urls_create_the_file() {
        assert_eq!(sqlite_url_with_options("sqlite://a.db"), "sqlite://a.db?mode=rwc");
        assert_eq!(sqlite_url_with_options("sqlite://a.db?mode=ro"), "sqlite://a.db?mode=ro");
    }
}
