//! Heartbeats and sites.

use async_trait::async_trait;

use std::sync::Arc;

use crate::db::Database;
use crate::heartbeat::{detect_offline_in, record_heartbeats_in};
use crate::idempotency::Claim;
use crate::store::{SqlStore, retry_conflicts};
use crate::{Idempotency, StoreResult, Written};

/// Sites' heartbeats and the detection of sites gone silent.
#[async_trait]
pub trait Heartbeats: Send + Sync {
    /// Record that the customer's sites in `beats` (sorted by site id, each once) were alive
    /// at `at`; sites are created on their first heartbeat. The heartbeat of a site the
    /// detector found offline resolves its outage at `at`, in the same transaction (as does
    /// `idem`'s key). Returns the outages resolved.
    async fn record_heartbeats(
        &self,
        customer_id: &str,
        beats: &[faultline_core::heartbeat::Heartbeat],
        at: i64,
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [String]>>,
    ) -> StoreResult<Written<Vec<String>>>;

    /// One detector pass over up to `limit` sites (any customer's) that are offline under
    /// `policy` at `now` and have no outage yet, oldest heartbeat first, after `after` (the
    /// cursor the previous pass of the same sweep returned): each gets its outage (a `site`
    /// trigger, which deduplicates onto a `site` fault already open for it) and is marked
    /// offline, in one transaction. Returns how many sites it handled (fewer than `limit` means
    /// the sweep is done) and where it got to. Safe on several replicas at once: a site is
    /// handled once.
    async fn detect_offline(
        &self,
        policy: &faultline_core::heartbeat::OfflinePolicy,
        now: i64,
        retention_seconds: i64,
        limit: u32,
        after: Option<&faultline_core::heartbeat::SweepCursor>,
    ) -> StoreResult<(usize, Option<faultline_core::heartbeat::SweepCursor>)>;
}

#[async_trait]
impl<D: Database> Heartbeats for SqlStore<D> {
    async fn record_heartbeats(
        &self,
        customer_id: &str,
        beats: &[faultline_core::heartbeat::Heartbeat],
        at: i64,
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [String]>>,
    ) -> StoreResult<Written<Vec<String>>> {
        let (customer_id, actor) = (Arc::<str>::from(customer_id), Arc::<str>::from(actor));
        let (beats, claim) = (Arc::<[_]>::from(beats), idem.map(|i| Arc::new(Claim::of(i))));
        retry_conflicts("heartbeats", || {
            let (customer_id, actor, beats, claim) =
                (customer_id.clone(), actor.clone(), beats.clone(), claim.clone());
            self.write(move |c| {
                Box::pin(async move {
                    record_heartbeats_in(
                        c,
                        &customer_id,
                        &beats,
                        at,
                        retention_seconds,
                        &actor,
                        claim.as_deref(),
                    )
                    .await
                })
            })
        })
        .await
    }

    async fn detect_offline(
        &self,
        policy: &faultline_core::heartbeat::OfflinePolicy,
        now: i64,
        retention_seconds: i64,
        limit: u32,
        after: Option<&faultline_core::heartbeat::SweepCursor>,
    ) -> StoreResult<(usize, Option<faultline_core::heartbeat::SweepCursor>)> {
        let (policy, after) = (*policy, after.cloned());
        retry_conflicts("offline detection", || {
            let after = after.clone();
            self.write(move |c| {
                Box::pin(async move {
                    detect_offline_in(c, &policy, now, retention_seconds, limit, after.as_ref()).await
                })
            })
        })
        .await
    }
}
