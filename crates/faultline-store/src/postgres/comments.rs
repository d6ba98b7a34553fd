//! Comments on faults: [`crate::Comments`] on PostgreSQL.

use super::*;

#[async_trait]
impl Comments for PostgresStore {
    async fn add_comment(
        &self,
        customer_id: &str,
        fault_id: &str,
        comment: &faultline_core::fault::Comment,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Written<Option<Fault>>> {
        let mut tx = self.pool.begin().await?;
        if let Some(idem) = idem
            && let Some(answer) = claim_key(&mut tx, idem).await?
        {
            return Ok(Written::Replayed(answer));
        }
        if !fault_exists(&mut tx, customer_id, fault_id).await? {
            return Ok(Written::Done(None));
        }
        insert_comment(&mut tx, customer_id, fault_id, comment, actor).await?;
        let fault = load_fault(&mut tx, customer_id, fault_id).await?;
        if let (Some(idem), Some(fault)) = (idem, &fault) {
            fulfil_key(&mut tx, idem, fault).await?;
        }
        tx.commit().await?;
        Ok(Written::Done(fault))
    }
}
