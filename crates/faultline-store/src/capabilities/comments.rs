//! Comments.

use async_trait::async_trait;
use faultline_core::fault::Fault;

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
