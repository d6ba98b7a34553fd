//! `Idempotency-Key` records, claimed and fulfilled inside the transaction of the write they
//! guard (see [`crate::Idempotency`]).

use crate::db::Conn;
use crate::sql::query;

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

/// An `Idempotency-Key` claim, owned (a write job may run on another thread).
pub(crate) struct Claim<T: ?Sized> {
    credential_id: String,
    key: String,
    fingerprint: String,
    at: i64,
    status: u16,
    render: std::sync::Arc<dyn Fn(&T) -> String + Send + Sync>,
}

impl<T: ?Sized> Clone for Claim<T> {
    fn clone(&self) -> Claim<T> {
        Claim {
            credential_id: self.credential_id.clone(),
            key: self.key.clone(),
            fingerprint: self.fingerprint.clone(),
            at: self.at,
            status: self.status,
            render: std::sync::Arc::clone(&self.render),
        }
    }
}

impl<T: ?Sized> Claim<T> {
    pub(crate) fn of(idem: &crate::Idempotency<'_, T>) -> Claim<T> {
        Claim {
            credential_id: idem.credential_id.to_owned(),
            key: idem.key.to_owned(),
            fingerprint: idem.fingerprint.to_owned(),
            at: idem.at,
            status: idem.status,
            render: std::sync::Arc::clone(&idem.render),
        }
    }
}

/// Claim `claim`'s key first thing in a write transaction: `None` when this request is the
/// first, the answer stored then when the same request claimed it before, and
/// `IdempotencyKeyReused` when another request did.
pub(crate) async fn claim_key<T: ?Sized>(
    c: &mut dyn Conn,
    claim: &Claim<T>,
) -> crate::StoreResult<Option<crate::StoredResponse>> {
    let forget = query(FORGET_STALE)
        .arg(&claim.credential_id)
        .arg(&claim.key)
        .arg(claim.at - crate::IDEMPOTENCY_KEEP_MICROS);
    c.execute(&forget).await?;
    let claimed = c
        .execute(
            &query(CLAIM).arg(&claim.credential_id).arg(&claim.key).arg(&claim.fingerprint).arg(claim.at),
        )
        .await?;
    if claimed == 1 {
        return Ok(None);
    }
    let row = c.fetch_one(&query(CLAIMED).arg(&claim.credential_id).arg(&claim.key)).await?;
    let (fingerprint, answer) = stored(row)?;
    if fingerprint != claim.fingerprint {
        return Err(crate::StoreError::IdempotencyKeyReused);
    }
    Ok(Some(answer))
}

/// Give up `claim`'s key in the transaction that claimed it: the write ends with nothing to
/// remember (a 404), and a later request with the key must run, not replay.
pub(crate) async fn release_key<T: ?Sized>(c: &mut dyn Conn, claim: &Claim<T>) -> crate::StoreResult<()> {
    let release = query("DELETE FROM idempotency_keys WHERE credential_id = $1 AND idem_key = $2")
        .arg(&claim.credential_id)
        .arg(&claim.key);
    c.execute(&release).await?;
    Ok(())
}

/// Store the answer rendered from `result` with `claim`'s key, before the commit.
pub(crate) async fn fulfil_key<T: ?Sized>(
    c: &mut dyn Conn,
    claim: &Claim<T>,
    result: &T,
) -> crate::StoreResult<()> {
    let fulfil = query(FULFIL)
        .arg(&claim.credential_id)
        .arg(&claim.key)
        .arg(i64::from(claim.status))
        .arg((claim.render)(result));
    c.execute(&fulfil).await?;
    Ok(())
}
