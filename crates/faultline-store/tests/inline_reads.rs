//! SQLite reads one fault, or a page of a list, on the caller's thread; a read that runs past its
//! budget there is handed to the reader pool and answers the same.

use faultline_core::fault::{Comment, Fault, FaultRef, FaultSink, NewFault, Severity};
use faultline_core::filter::FaultFilter;
use faultline_core::time::now_micros;
use faultline_store::prelude::*;
use faultline_store::testing::TestDb;
use faultline_store::{Backend, FaultQuery, SqliteStore};

/// Fault `n` of site_0, created `n + 1` seconds ago, resolved, of `severity`.
fn fault(customer_id: &str, n: i64, severity: Severity, message: &str) -> Fault {
    let fault_type = if severity == Severity::Critical { "site" } else { "wan-degradation" };
    let now = now_micros();
    let new = NewFault {
        resource_id: format!("tun_{}", n % 500),
        fault_type: fault_type.to_owned(),
        severity,
        message: message.to_owned(),
        cause: "packet loss".to_owned(),
        microservice_id: "test".to_owned(),
        resource_ancestry_path: format!("site_0|tun_{}", n % 500),
        created_at: Some(now - (n + 1) * 1_000_000),
    };
    let mut fault = Fault::create(customer_id, new, now, 400 * 86_400);
    fault.status = faultline_core::fault::FaultStatus::Resolved;
    fault.resolved_at = Some(fault.created_at + 1);
    fault
}

/// A sink that keeps what it is given.
#[derive(Default)]
struct Given {
    faults: Vec<Fault>,
    cleared: usize,
}

impl FaultSink for Given {
    fn fault(&mut self, fault: &FaultRef<'_>) {
        self.faults.push(fault.to_fault());
    }
    fn clear(&mut self) {
        self.faults.clear();
        self.cleared += 1;
    }
}

async fn collect(store: &SqliteStore, customer: &str, query: &FaultQuery<'_>) -> Given {
    let mut given = Given::default();
    store.list_faults_into(customer, query, &mut given).await.unwrap();
    given
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_reads_run_inline_and_long_ones_are_handed_to_the_pool() {
    let db = TestDb::new(Backend::Sqlite, "inline_reads").await.expect("sqlite is always here");
    let store = SqliteStore::open(&db.url).await.unwrap();
    let customer = store.create_customer("Acme").await.unwrap().id;
    // 50,000 faults of one site, the oldest the only critical one and the only one of type
    // `site`: a page of the site's faults of that type reads the site's whole history, far past
    // a read's budget on the caller's thread (each of its rows looked up in `faults` for its
    // type). (Its message is also the only one with "needle".)
    const FAULTS: i64 = 50_000;
    let mut oldest = String::new();
    for start in (0..FAULTS).step_by(1_000) {
        let batch: Vec<Fault> = (start..start + 1_000)
            .map(|n| match n == FAULTS - 1 {
                true => fault(&customer, n, Severity::Critical, "needle in a haystack"),
                false => fault(&customer, n, Severity::Low, "loss"),
            })
            .collect();
        if start + 1_000 == FAULTS {
            oldest = batch.last().unwrap().id.clone();
        }
        store.insert_faults(&batch, "test", None).await.unwrap();
    }
    let now = now_micros();
    // Two comments on the newest fault, the later one first.
    let newest = store
        .list_faults(&customer, &FaultQuery { filter: &FaultFilter::default(), after: None, limit: 1, now })
        .await
        .unwrap()
        .remove(0);
    for (id, at) in [("cmt_b", now - 10), ("cmt_a", now - 20)] {
        let comment = Comment {
            id: id.to_owned(),
            user_id: "usr_1".to_owned(),
            comment: format!("{id}, \"quoted\"\nline"),
            created_at: at,
        };
        store.add_comment(&customer, &newest.id, &comment, "test", None).await.unwrap();
    }
    let (answered, handed_over) = store.inline_read_counts().expect("a file database reads inline");

    let one = store.get_fault(&customer, &oldest).await.unwrap().expect("the fault");
    assert_eq!(one.id, oldest);
    let all = FaultFilter::default();
    let page = store
        .list_faults(&customer, &FaultQuery { filter: &all, after: None, limit: 51, now })
        .await
        .unwrap();
    assert_eq!(page.len(), 51);
    let comments: Vec<&str> = page[0].comments.iter().map(|c| c.id.as_str()).collect();
    assert_eq!((page[0].id.as_str(), comments), (newest.id.as_str(), vec!["cmt_a", "cmt_b"]), "oldest first");
    assert_eq!(page[0].comments[0].comment, "cmt_a, \"quoted\"\nline");
    assert!(page[1..].iter().all(|f| f.comments.is_empty()));
    assert!(
        page.windows(2).all(|w| (w[0].created_at, &w[0].id) > (w[1].created_at, &w[1].id)),
        "newest first"
    );
    assert_eq!(store.inline_read_counts().unwrap(), (answered + 2, handed_over), "both answered inline");

    let critical = FaultFilter {
        sites: vec!["site_0".to_owned()],
        types: vec!["site".to_owned()],
        ..FaultFilter::default()
    };
    let found = store
        .list_faults(&customer, &FaultQuery { filter: &critical, after: None, limit: 51, now })
        .await
        .unwrap();
    assert_eq!(found.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), [oldest.as_str()]);
    assert_eq!(
        store.inline_read_counts().unwrap(),
        (answered + 2, handed_over + 1),
        "the long read was handed over"
    );
    // Its connection was kept: the next read needs no new one, and answers inline.
    assert!(store.get_fault(&customer, &oldest).await.unwrap().is_some());
    assert_eq!(store.inline_read_counts().unwrap(), (answered + 3, handed_over + 1));

    // A page given to a sink: inline, each fault lent from its row, the same page; handed
    // over, the sink is cleared and given the pool's page.
    let given = collect(&store, &customer, &FaultQuery { filter: &all, after: None, limit: 51, now }).await;
    assert_eq!((given.faults, given.cleared), (page, 0));
    assert_eq!(store.inline_read_counts().unwrap(), (answered + 4, handed_over + 1));
    let given =
        collect(&store, &customer, &FaultQuery { filter: &critical, after: None, limit: 51, now }).await;
    assert_eq!((given.faults, given.cleared), (found, 1));
    assert_eq!(store.inline_read_counts().unwrap(), (answered + 4, handed_over + 2));
    let (answered, handed_over) = (answered + 1, handed_over + 1);

    // A free-text search is never read inline (it may read a long history for a page).
    let needle = FaultFilter { text: Some("NEEDLE".to_owned()), ..FaultFilter::default() };
    let found = store
        .list_faults(&customer, &FaultQuery { filter: &needle, after: None, limit: 51, now })
        .await
        .unwrap();
    assert_eq!(found.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), [oldest.as_str()]);
    assert_eq!(store.inline_read_counts().unwrap(), (answered + 3, handed_over + 1));

    // An export page (more than a list page holds) is never read inline.
    let export = store
        .list_faults(&customer, &FaultQuery { filter: &all, after: None, limit: 2_000, now })
        .await
        .unwrap();
    assert_eq!(export.len(), 2_000);
    assert_eq!(store.inline_read_counts().unwrap(), (answered + 3, handed_over + 1));
    store.close().await;
    db.cleanup().await;
}
