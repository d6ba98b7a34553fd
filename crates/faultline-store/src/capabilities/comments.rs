//! Comments.

use async_trait::async_trait;
use faultline_core::fault::Fault;

use crate::db::Database;
use crate::idempotency::{Claim, claim_key, fulfil_key, release_key};
use crate::store::{SqlStore, fault_exists, insert_comment, load_fault};
use crate::{Idempotency, StoreResult, Written};

/// Comments on faults.
#[async_trait]
pub trait Comments: Send + Sync {
    /// Add a comment (and its event) in one transaction; the fault with every comment, or
    /// `None` when the customer has no such fault.
    async fn add_comment(
        &self,
        customer_id: &str,
        fault_id: &str,
        comment: &faultline_core::fault::Comment,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Written<Option<Fault>>>;
}

#[async_trait]
impl<D: Database> Comments for SqlStore<D> {
    async fn add_comment(
        &self,
        customer_id: &str,
        fault_id: &str,
        comment: &faultline_core::fault::Comment,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Written<Option<Fault>>> {
        let (customer_id, fault_id, actor) = (customer_id.to_owned(), fault_id.to_owned(), actor.to_owned());
        let (comment, claim) = (comment.clone(), idem.map(Claim::of));
        self.write(move |c| {
            Box::pin(async move {
                if let Some(claim) = &claim
                    && let Some(answer) = claim_key(c, claim).await?
                {
                    return Ok(Written::Replayed(answer));
                }
                if !fault_exists(c, &customer_id, &fault_id).await? {
                    if let Some(claim) = &claim {
                        release_key(c, claim).await?;
                    }
                    return Ok(Written::Done(None));
                }
                insert_comment(c, &customer_id, &fault_id, &comment, &actor).await?;
                let fault = load_fault(c, &customer_id, &fault_id).await?;
                if let (Some(claim), Some(fault)) = (&claim, &fault) {
                    fulfil_key(c, claim, fault).await?;
                }
                Ok(Written::Done(fault))
            })
        })
        .await
    }
}
