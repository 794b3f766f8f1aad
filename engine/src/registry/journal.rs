//! Journal rows: the last event of each step of an apply operation in flight.
//! The apply runner gives them their meaning; the registry only keeps them.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Registry, RegistryError, now_rfc3339, query_error};

/// One step's last event, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    pub step_index: u64,
    pub step: String,
    pub event: String,
}

fn journal_row(row: &AnyRow) -> Result<JournalRow, RegistryError> {
    let corrupt = |detail: String| RegistryError::Corrupt { detail: format!("journal: {detail}") };
    let step_index = row.try_get::<i64, _>("step_index").map_err(|e| corrupt(format!("step_index: {e}")))?;
    Ok(JournalRow {
        step_index: u64::try_from(step_index).map_err(|_| corrupt(format!("step_index {step_index}")))?,
        step: row.try_get("step").map_err(|e| corrupt(format!("step: {e}")))?,
        event: row.try_get("event").map_err(|e| corrupt(format!("event: {e}")))?,
    })
}

impl Registry {
    /// Records `event` as the last event of step `step_index` of `operation`.
    pub async fn journal_record(
        &self,
        operation: &str,
        step_index: u64,
        step: &str,
        event: &str,
    ) -> Result<(), RegistryError> {
        let index = i64::try_from(step_index)
            .map_err(|_| RegistryError::Corrupt { detail: format!("journal: step index {step_index} is too large") })?;
        sqlx::query(
            "INSERT INTO journal (operation, step_index, step, event, recorded_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (operation, step_index) DO UPDATE SET step = excluded.step, event = excluded.event, \
             recorded_at = excluded.recorded_at",
        )
        .bind(operation.to_owned())
        .bind(index)
        .bind(step.to_owned())
        .bind(event.to_owned())
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(query_error("record a journal entry"))?;
        Ok(())
    }

    /// The last event of every step `operation` journaled, by step index.
    pub async fn journal_entries(&self, operation: &str) -> Result<Vec<JournalRow>, RegistryError> {
        let rows = sqlx::query("SELECT step_index, step, event FROM journal WHERE operation = $1 ORDER BY step_index")
            .bind(operation.to_owned())
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read a journal"))?;
        rows.iter().map(journal_row).collect()
    }

    /// Every operation with entries in the journal (runs a crash left behind).
    pub async fn journal_operations(&self) -> Result<Vec<String>, RegistryError> {
        let rows = sqlx::query("SELECT DISTINCT operation FROM journal ORDER BY operation")
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("list journaled operations"))?;
        rows.iter()
            .map(|row| {
                row.try_get("operation")
                    .map_err(|e| RegistryError::Corrupt { detail: format!("journal: operation: {e}") })
            })
            .collect()
    }

    /// Forgets `operation` (it finished, or was undone entirely).
    pub async fn journal_forget(&self, operation: &str) -> Result<(), RegistryError> {
        sqlx::query("DELETE FROM journal WHERE operation = $1")
            .bind(operation.to_owned())
            .execute(&self.pool)
            .await
            .map_err(query_error("forget a journal"))?;
        Ok(())
    }

    /// Moves `from`'s entries to `to`: a create that resumes an interrupted
    /// one (under a new token) takes over what its journal shows. Entries
    /// `to` already has win.
    pub async fn journal_adopt(&self, from: &str, to: &str) -> Result<(), RegistryError> {
        let error = query_error("adopt a journal");
        let mut transaction = self.pool.begin().await.map_err(&error)?;
        sqlx::query(
            "UPDATE journal SET operation = $2 WHERE operation = $1 \
             AND step_index NOT IN (SELECT step_index FROM journal WHERE operation = $2)",
        )
        .bind(from.to_owned())
        .bind(to.to_owned())
        .execute(&mut *transaction)
        .await
        .map_err(&error)?;
        sqlx::query("DELETE FROM journal WHERE operation = $1")
            .bind(from.to_owned())
            .execute(&mut *transaction)
            .await
            .map_err(&error)?;
        transaction.commit().await.map_err(&error)
    }
}
