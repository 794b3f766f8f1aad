//! Claim rows: which owner created each natural key, with which create token,
//! and whether the owner's state is known to hold it (see [`crate::model::ownership`]).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Registry, RegistryError, now_rfc3339, query_error};
use crate::model::TenantId;
use crate::model::ownership::{
    Claim, ClaimRefusal, CreateDecision, CreateToken, Dependent, ObjectKind, Owner, decide_create,
};

const COLUMNS: &str = "kind, natural_key, tenant, owner, create_token, confirmed, created_at, address";

/// How many claims one confirming statement names (well below every
/// database's limit on bound parameters).
const CONFIRMATIONS_PER_STATEMENT: usize = 500;

fn claim_from_row(row: &AnyRow) -> Result<Claim, RegistryError> {
    let corrupt = |detail: String| RegistryError::Corrupt { detail: format!("claims: {detail}") };
    let text = |column: &str| row.try_get::<String, _>(column).map_err(|e| corrupt(format!("{column}: {e}")));
    let kind = text("kind")?;
    Ok(Claim {
        kind: ObjectKind::parse(&kind).ok_or_else(|| corrupt(format!("kind {kind:?}")))?,
        key: text("natural_key")?,
        tenant: TenantId::parse(&text("tenant")?).map_err(corrupt)?,
        owner: Owner::from_stored(&text("owner")?),
        create_token: CreateToken::from_stored(&text("create_token")?),
        confirmed: row.try_get::<i64, _>("confirmed").map_err(|e| corrupt(format!("confirmed: {e}")))? != 0,
        created_at: text("created_at")?,
        address: text("address")?,
    })
}

/// What claiming a key for a create found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key is this create's now (new, or an interrupted create taken over).
    Claimed(CreateDecision),
    /// The key is taken; nothing was changed.
    Refused { claim: Claim, refusal: ClaimRefusal },
}

impl Registry {
    /// Every claim, ordered by kind and key: one query serves a whole plan.
    pub async fn list_claims(&self) -> Result<Vec<Claim>, RegistryError> {
        let sql = format!("SELECT {COLUMNS} FROM claims ORDER BY kind, natural_key");
        self.list_rows(sql, "list claims", claim_from_row).await
    }

    /// The claim on one key.
    pub async fn get_claim(&self, kind: ObjectKind, key: &str) -> Result<Option<Claim>, RegistryError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM claims WHERE kind = $1 AND natural_key = $2"));
        let row = sqlx::query(sql)
            .bind(kind.as_str())
            .bind(key.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read claim"))?;
        row.as_ref().map(claim_from_row).transpose()
    }

    /// The claims of one tenant's objects (the tenant's own included).
    pub async fn claims_of_tenant(&self, tenant: &TenantId) -> Result<Vec<Claim>, RegistryError> {
        let sql =
            sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM claims WHERE tenant = $1 ORDER BY kind, natural_key"));
        let rows = sqlx::query(sql)
            .bind(tenant.as_str().to_owned())
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("list a tenant's claims"))?;
        rows.iter().map(claim_from_row).collect()
    }

    /// What still belongs to a tenant: every claimed object of it but the
    /// tenant itself (finished or interrupted creates, of any owner).
    /// Rows count too, claimed or not, so nothing made outside a claimed
    /// create is orphaned either.
    pub async fn tenant_dependents(&self, tenant: &TenantId) -> Result<Vec<Dependent>, RegistryError> {
        let mut dependents: Vec<Dependent> = self
            .claims_of_tenant(tenant)
            .await?
            .into_iter()
            .filter(|claim| claim.kind != ObjectKind::Tenant)
            .map(|claim| Dependent { kind: claim.kind, key: claim.key, owner: claim.owner, confirmed: claim.confirmed })
            .collect();
        let rows = sqlx::query(
            "SELECT 'app_instance' AS kind, tenant || '/' || name AS natural_key, owner FROM app_instances WHERE tenant = $1              UNION ALL SELECT 'domain', hostname, owner FROM domains WHERE tenant = $1              UNION ALL SELECT 'support_plan', tenant, owner FROM support_plans WHERE tenant = $1",
        )
        .bind(tenant.as_str().to_owned())
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("list a tenant's objects"))?;
        for row in rows {
            let text = |column: &str| {
                row.try_get::<String, _>(column)
                    .map_err(|e| RegistryError::Corrupt { detail: format!("tenant objects: {column}: {e}") })
            };
            let Some(kind) = ObjectKind::parse(&text("kind")?) else { continue };
            let key = text("natural_key")?;
            if !dependents.iter().any(|d| d.kind == kind && d.key == key) {
                dependents.push(Dependent { kind, key, owner: Owner::from_stored(&text("owner")?), confirmed: true });
            }
        }
        Ok(dependents)
    }

    /// Claims `key` for a create by `owner` with `token`, atomically: a key
    /// nobody claimed becomes this create's; an interrupted create of the same
    /// owner is taken over (its token replaced, only if nobody else took it
    /// over meanwhile); anything else is refused and left as it is.
    pub async fn claim_for_create(
        &self,
        kind: ObjectKind,
        key: &str,
        tenant: &TenantId,
        owner: &Owner,
        token: &CreateToken,
    ) -> Result<ClaimOutcome, RegistryError> {
        let insert = sqlx::AssertSqlSafe(format!(
            "INSERT INTO claims ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, 0, $6, '') ON CONFLICT (kind, natural_key) DO NOTHING"
        ));
        let inserted = sqlx::query(insert)
            .bind(kind.as_str())
            .bind(key.to_owned())
            .bind(tenant.as_str().to_owned())
            .bind(owner.as_str().to_owned())
            .bind(token.as_str().to_owned())
            .bind(now_rfc3339())
            .execute(&self.pool)
            .await
            .map_err(query_error("claim a key"))?
            .rows_affected();
        if inserted == 1 {
            return Ok(ClaimOutcome::Claimed(CreateDecision::New));
        }
        // Twice at most: a takeover that lost a race re-reads and decides again.
        for _ in 0..2 {
            let Some(existing) = self.get_claim(kind, key).await? else {
                return Err(RegistryError::Corrupt {
                    detail: format!("the claim on {} {key} vanished while it was being taken", kind.noun()),
                });
            };
            if &existing.create_token == token {
                return Ok(ClaimOutcome::Claimed(CreateDecision::New));
            }
            match decide_create(Some(&existing), owner) {
                Err(refusal) => return Ok(ClaimOutcome::Refused { claim: existing, refusal }),
                Ok(CreateDecision::New) => unreachable!("a claim exists"),
                Ok(decision @ CreateDecision::Resume { .. }) => {
                    let taken = sqlx::query(
                        "UPDATE claims SET create_token = $3 WHERE kind = $1 AND natural_key = $2 \
                         AND create_token = $4 AND confirmed = 0",
                    )
                    .bind(kind.as_str())
                    .bind(key.to_owned())
                    .bind(token.as_str().to_owned())
                    .bind(existing.create_token.as_str().to_owned())
                    .execute(&self.pool)
                    .await
                    .map_err(query_error("take over an interrupted create"))?
                    .rows_affected();
                    if taken == 1 {
                        return Ok(ClaimOutcome::Claimed(decision));
                    }
                }
            }
        }
        let claim = self.get_claim(kind, key).await?.ok_or_else(|| RegistryError::Corrupt {
            detail: format!("the claim on {} {key} vanished while it was being taken", kind.noun()),
        })?;
        Ok(ClaimOutcome::Refused { claim, refusal: ClaimRefusal::DeclaredTwice })
    }

    /// Records that a state holds the objects made by these creates: one
    /// statement per few hundred claims (a plan after a bulk create confirms
    /// them all at once). A claim recorded before owners were told apart
    /// (its token empty) is taken over by the owner whose state shows it,
    /// one by one, by kind and key. Unknown or already confirmed claims are left.
    pub async fn confirm_claims(
        &self,
        confirmations: &[crate::model::ownership::Confirmation],
    ) -> Result<(), RegistryError> {
        if confirmations.is_empty() {
            return Ok(());
        }
        let (legacy, tokens): (Vec<_>, Vec<_>) =
            confirmations.iter().partition(|(_, _, token, _)| token.as_str().is_empty());
        let mut transaction = self.pool.begin().await.map_err(query_error("begin confirming claims"))?;
        for chunk in tokens.chunks(CONFIRMATIONS_PER_STATEMENT) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE claims SET confirmed = 1 WHERE confirmed = 0 AND create_token IN ({})",
                placeholders.join(", ")
            ));
            let mut query = sqlx::query(sql);
            for (_, _, token, _) in chunk {
                query = query.bind(token.as_str().to_owned());
            }
            query.execute(&mut *transaction).await.map_err(query_error("confirm claims"))?;
        }
        for (kind, key, _, owner) in legacy {
            sqlx::query(
                "UPDATE claims SET confirmed = 1, owner = $3 \
                 WHERE kind = $1 AND natural_key = $2 AND create_token = '' AND owner = 'terraform'",
            )
            .bind(kind.as_str())
            .bind(key.clone())
            .bind(owner.as_str().to_owned())
            .execute(&mut *transaction)
            .await
            .map_err(query_error("take over a claim made before owners"))?;
        }
        transaction.commit().await.map_err(query_error("commit confirmed claims"))
    }

    /// Records the addresses under which `owner`'s objects were applied (the
    /// atrium CLI's), in one transaction; claims of other owners are left.
    pub async fn set_claim_addresses(
        &self,
        owner: &Owner,
        addresses: &[(ObjectKind, String, String)],
    ) -> Result<(), RegistryError> {
        if addresses.is_empty() {
            return Ok(());
        }
        let mut transaction = self.pool.begin().await.map_err(query_error("begin recording addresses"))?;
        for (kind, key, address) in addresses {
            sqlx::query("UPDATE claims SET address = $4 WHERE kind = $1 AND natural_key = $2 AND owner = $3")
                .bind(kind.as_str())
                .bind(key.clone())
                .bind(owner.as_str().to_owned())
                .bind(address.clone())
                .execute(&mut *transaction)
                .await
                .map_err(query_error("record an address"))?;
        }
        transaction.commit().await.map_err(query_error("commit recorded addresses"))
    }

    /// Releases the claim on a key (its object is gone); a missing one is fine.
    pub async fn release_claim(&self, kind: ObjectKind, key: &str) -> Result<(), RegistryError> {
        sqlx::query("DELETE FROM claims WHERE kind = $1 AND natural_key = $2")
            .bind(kind.as_str())
            .bind(key.to_owned())
            .execute(&self.pool)
            .await
            .map_err(query_error("release a claim"))?;
        Ok(())
    }

    /// Deletes the row of the `kind` object `key` (an app instance's key is
    /// `tenant/name`) and frees the key, in one transaction: a crash between
    /// the two would leave the key taken by an object that is gone, which
    /// no refresh shows and no destroy reaches.
    pub async fn delete_with_claim(&self, kind: ObjectKind, key: &str) -> Result<bool, RegistryError> {
        let (statement, keys): (&str, Vec<String>) = match kind {
            ObjectKind::Tenant => ("DELETE FROM tenants WHERE name = $1", vec![key.to_owned()]),
            ObjectKind::Domain => ("DELETE FROM domains WHERE hostname = $1", vec![key.to_owned()]),
            ObjectKind::SupportPlan => ("DELETE FROM support_plans WHERE tenant = $1", vec![key.to_owned()]),
            ObjectKind::AppInstance => {
                let (tenant, name) = key.split_once('/').ok_or_else(|| RegistryError::Corrupt {
                    detail: format!("app instance key {key:?} is not tenant/name"),
                })?;
                ("DELETE FROM app_instances WHERE tenant = $1 AND name = $2", vec![tenant.to_owned(), name.to_owned()])
            }
        };
        let mut transaction = self.pool.begin().await.map_err(query_error("delete an object and its claim"))?;
        let mut delete = sqlx::query(statement);
        for value in keys {
            delete = delete.bind(value);
        }
        let deleted = delete
            .execute(&mut *transaction)
            .await
            .map_err(query_error("delete an object and its claim"))?
            .rows_affected();
        sqlx::query("DELETE FROM claims WHERE kind = $1 AND natural_key = $2")
            .bind(kind.as_str())
            .bind(key.to_owned())
            .execute(&mut *transaction)
            .await
            .map_err(query_error("release a claim"))?;
        transaction.commit().await.map_err(query_error("delete an object and its claim"))?;
        Ok(deleted > 0)
    }

    /// Puts a claim back as it was (the undo of a delete that freed it);
    /// a claim the key has meanwhile is kept.
    pub async fn restore_claim(&self, claim: &Claim) -> Result<(), RegistryError> {
        let insert = sqlx::AssertSqlSafe(format!(
            "INSERT INTO claims ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (kind, natural_key) DO NOTHING"
        ));
        sqlx::query(insert)
            .bind(claim.kind.as_str())
            .bind(claim.key.clone())
            .bind(claim.tenant.as_str().to_owned())
            .bind(claim.owner.as_str().to_owned())
            .bind(claim.create_token.as_str().to_owned())
            .bind(i64::from(claim.confirmed))
            .bind(claim.created_at.clone())
            .bind(claim.address.clone())
            .execute(&self.pool)
            .await
            .map_err(query_error("restore a claim"))?;
        Ok(())
    }

    /// Releases a claim only while it still carries `token` (the undo of a
    /// create that failed must not release a key someone else took since).
    pub async fn release_claim_of(
        &self,
        kind: ObjectKind,
        key: &str,
        token: &CreateToken,
    ) -> Result<(), RegistryError> {
        sqlx::query("DELETE FROM claims WHERE kind = $1 AND natural_key = $2 AND create_token = $3")
            .bind(kind.as_str())
            .bind(key.to_owned())
            .bind(token.as_str().to_owned())
            .execute(&self.pool)
            .await
            .map_err(query_error("release a claim"))?;
        Ok(())
    }
}
