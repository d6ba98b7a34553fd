//! SQLite reads one fault, or a page of a list, on the caller's thread; a read that runs past its
//! budget there is handed to the reader pool and answers the same.

use faultline_core::fault::{Fault, NewFault, Severity};
use faultline_core::filter::FaultFilter;
use faultline_core::time::now_micros;
use faultline_store::testing::TestDb;
use faultline_store::{Backend, FaultQuery, SqliteStore, Store};

fn fault(customer_id: &str, n: i64, message: &str) -> Fault {
    let now = now_micros();
    let new = NewFault {
        resource_id: format!("tun_{}", n % 500),
        fault_type: "wan-degradation".to_owned(),
        severity: Severity::Low,
        message: message.to_owned(),
        cause: "packet loss".to_owned(),
        microservice_id: "test".to_owned(),
        resource_ancestry_path: format!("site_{}|tun_{}", n % 50, n % 500),
        created_at: Some(now - (n + 1) * 1_000_000),
    };
    let mut fault = Fault::create(customer_id, new, now, 400 * 86_400);
    fault.status = faultline_core::fault::FaultStatus::Resolved;
    fault.resolved_at = Some(fault.created_at + 1);
    fault
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_reads_run_inline_and_long_ones_are_handed_to_the_pool() {
    let db = TestDb::new(Backend::Sqlite, "inline_reads").await.expect("sqlite is always here");
    let store = SqliteStore::open(&db.url).await.unwrap();
    let customer = store.create_customer("Acme").await.unwrap().id;
    // 50,000 faults, the oldest the only one whose message holds "needle": a search for it
    // reads them all, far past a read's budget on the caller's thread.
    const FAULTS: i64 = 50_000;
    let mut oldest = String::new();
    for start in (0..FAULTS).step_by(1_000) {
        let batch: Vec<Fault> = (start..start + 1_000)
            .map(|n| fault(&customer, n, if n == FAULTS - 1 { "needle in a haystack" } else { "loss" }))
            .collect();
        if start + 1_000 == FAULTS {
            oldest = batch.last().unwrap().id.clone();
        }
        store.insert_faults(&batch, "test", None).await.unwrap();
    }
    let now = now_micros();
    let (answered, handed_over) = store.inline_read_counts().expect("a file database reads inline");

    let one = store.get_fault(&customer, &oldest).await.unwrap().expect("the fault");
    assert_eq!(one.id, oldest);
    let all = FaultFilter::default();
    let page = store
        .list_faults(&customer, &FaultQuery { filter: &all, after: None, limit: 51, now })
        .await
        .unwrap();
    assert_eq!(page.len(), 51);
    assert!(
        page.windows(2).all(|w| (w[0].created_at, &w[0].id) > (w[1].created_at, &w[1].id)),
        "newest first"
    );
    assert_eq!(store.inline_read_counts().unwrap(), (answered + 2, handed_over), "both answered inline");

    let needle = FaultFilter { text: Some("NEEDLE".to_owned()), ..FaultFilter::default() };
    let found = store
        .list_faults(&customer, &FaultQuery { filter: &needle, after: None, limit: 51, now })
        .await
        .unwrap();
    assert_eq!(found.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), [oldest.as_str()]);
    assert_eq!(
        store.inline_read_counts().unwrap(),
        (answered + 2, handed_over + 1),
        "the long read was handed over"
    );

    // An export page (more than a list page holds) is never read inline.
    let export = store
        .list_faults(&customer, &FaultQuery { filter: &all, after: None, limit: 2_000, now })
        .await
        .unwrap();
    assert_eq!(export.len(), 2_000);
    assert_eq!(store.inline_read_counts().unwrap(), (answered + 2, handed_over + 1));
    store.close().await;
    db.cleanup().await;
}
