//! `Idempotency-Key` records, claimed and fulfilled inside the transaction of the write they
//! guard (see [`crate::Idempotency`]). The statements are shared; [`idempotency_fns!`] expands
//! the two helpers for a backend's connection type.

/// Forget this credential's claim of the key if it is older than a day (`$3`).
pub(crate) const FORGET_STALE: &str =
    "DELETE FROM idempotency_keys WHERE credential_id = $1 AND idem_key = $2 AND created_at < $3";
/// Claim the key; affects no row when it is claimed already. On PostgreSQL a concurrent claim
/// of the same key waits here until the first transaction ends.
pub(crate) const CLAIM: &str = "INSERT INTO idempotency_keys \
    (credential_id, idem_key, fingerprint, status, body, created_at) VALUES ($1, $2, $3, 0, '', $4) \
    ON CONFLICT (credential_id, idem_key) DO NOTHING";
pub(crate) const CLAIMED: &str =
    "SELECT fingerprint, status, body FROM idempotency_keys WHERE credential_id = $1 AND idem_key = $2";
/// A claim, if made at or after `$3`.
pub(crate) const ANSWER: &str = "SELECT fingerprint, status, body FROM idempotency_keys \
    WHERE credential_id = $1 AND idem_key = $2 AND created_at >= $3";
pub(crate) const FULFIL: &str =
    "UPDATE idempotency_keys SET status = $3, body = $4 WHERE credential_id = $1 AND idem_key = $2";
/// Delete up to `$2` keys created before `$1`.
pub(crate) const SWEEP: &str = "DELETE FROM idempotency_keys WHERE (credential_id, idem_key) IN \
    (SELECT credential_id, idem_key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)";

/// A stored claim row as (fingerprint, answer).
pub(crate) fn stored(
    (fingerprint, status, body): (String, i64, String),
) -> crate::StoreResult<(String, crate::StoredResponse)> {
    let status = u16::try_from(status)
        .map_err(|_| crate::StoreError::Corrupt(format!("idempotency status {status}")))?;
    Ok((fingerprint, crate::StoredResponse { status, body }))
}

/// `claim_key` and `fulfil_key` for the backend whose database type is `$db`.
macro_rules! idempotency_fns {
    ($db:ty) => {
        /// Claim `idem`'s key first thing in a write transaction: `None` when this request is
        /// the first, the answer stored then when the same request claimed it before, and
        /// `IdempotencyKeyReused` when another request did.
        async fn claim_key<T: ?Sized>(
            conn: &mut <$db as sqlx::Database>::Connection,
            idem: &$crate::Idempotency<'_, T>,
        ) -> $crate::StoreResult<Option<$crate::StoredResponse>> {
            use $crate::idempotency as q;
            sqlx::query(q::FORGET_STALE)
                .bind(idem.credential_id)
                .bind(idem.key)
                .bind(idem.at - $crate::IDEMPOTENCY_KEEP_MICROS)
                .execute(&mut *conn)
                .await?;
            let claimed = sqlx::query(q::CLAIM)
                .bind(idem.credential_id)
                .bind(idem.key)
                .bind(idem.fingerprint)
                .bind(idem.at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if claimed == 1 {
                return Ok(None);
            }
            let row = sqlx::query_as(q::CLAIMED)
                .bind(idem.credential_id)
                .bind(idem.key)
                .fetch_one(&mut *conn)
                .await?;
            let (fingerprint, answer) = q::stored(row)?;
            if fingerprint != idem.fingerprint {
                return Err($crate::StoreError::IdempotencyKeyReused);
            }
            Ok(Some(answer))
        }

        /// Store the answer rendered from `result` with `idem`'s key, before the commit.
        async fn fulfil_key<T: ?Sized>(
            conn: &mut <$db as sqlx::Database>::Connection,
            idem: &$crate::Idempotency<'_, T>,
            result: &T,
        ) -> $crate::StoreResult<()> {
            sqlx::query($crate::idempotency::FULFIL)
                .bind(idem.credential_id)
                .bind(idem.key)
                .bind(i64::from(idem.status))
                .bind((idem.render)(result))
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
    };
}
pub(crate) use idempotency_fns;
