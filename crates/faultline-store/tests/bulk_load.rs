//! `Store::bulk_insert_faults` (`faultline demo`'s load), on both backends: it writes what
//! `insert_faults` writes, every filter still finds its faults, a failure leaves what the
//! backend documents, and on SQLite the schema (the indexes dropped during a load into an empty
//! table) is exactly as it was.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use faultline_core::cursor::Position;
use faultline_core::demo::{DemoConfig, DemoFaults};
use faultline_core::fault::{Fault, FaultStatus, Severity};
use faultline_core::filter::FaultFilter;
use faultline_store::testing::TestDb;
use faultline_store::{Backend, BulkFaults, FaultQuery, Store};

/// Which faults a filter should find.
type Keep<'a> = Box<dyn Fn(&Fault) -> bool + 'a>;

const FAULTS: u64 = 3_000;
const CHUNK: usize = 700;

/// A demo history of `customer_id`, in chunks as `faultline demo` makes them.
fn history(customer_id: &str, seed: u64) -> Vec<Vec<Fault>> {
    let mut demo = DemoFaults::new(DemoConfig {
        faults: FAULTS,
        sites: 12,
        customers: 1,
        seed,
        now: faultline_core::time::now_micros(),
        retention_seconds: 400 * 86_400,
        customer_ids: vec![customer_id.to_owned()],
    })
    .unwrap();
    std::iter::from_fn(|| Some(demo.next_chunk(CHUNK)).filter(|chunk| !chunk.is_empty())).collect()
}

/// Load `chunks` with `bulk_insert_faults`, ended by `BulkFaults::End` when `end`; the sum of
/// what it reported inserted, or its error.
async fn bulk_load(
    store: &Arc<dyn Store>,
    chunks: Vec<Vec<Fault>>,
    end: bool,
) -> Result<usize, faultline_store::StoreError> {
    let (send, receive) = tokio::sync::mpsc::channel(1);
    let feeder = tokio::spawn(async move {
        let messages = chunks.into_iter().map(BulkFaults::Chunk).chain(end.then_some(BulkFaults::End));
        for message in messages {
            if send.send(message).await.is_err() {
                break;
            }
        }
    });
    let counted = Arc::new(AtomicUsize::new(0));
    let count = counted.clone();
    let result = store
        .bulk_insert_faults(receive, "demo", Box::new(move |n| _ = count.fetch_add(n, Ordering::SeqCst)))
        .await;
    feeder.await.unwrap();
    result.map(|()| counted.load(Ordering::SeqCst))
}

async fn bulk(store: &Arc<dyn Store>, chunks: Vec<Vec<Fault>>) -> Result<usize, faultline_store::StoreError> {
    bulk_load(store, chunks, true).await
}

/// Every fault `filter` finds for the customer, walked page by page, newest first.
async fn walk(store: &Arc<dyn Store>, customer_id: &str, filter: &FaultFilter) -> Vec<Fault> {
    let mut found: Vec<Fault> = Vec::new();
    loop {
        let after = found.last().map(|f| Position { created_at: f.created_at, id: f.id.clone() });
        let query =
            FaultQuery { filter, after: after.as_ref(), limit: 100, now: faultline_core::time::now_micros() };
        let page = store.list_faults(customer_id, &query).await.unwrap();
        let done = page.len() < 100;
        found.extend(page);
        if done {
            return found;
        }
    }
}

/// What `filter` should find among `faults`, in the list's order.
fn expected(faults: &[Fault], keep: impl Fn(&Fault) -> bool) -> Vec<String> {
    let mut kept: Vec<&Fault> = faults.iter().filter(|f| keep(f)).collect();
    kept.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    kept.iter().map(|f| f.id.clone()).collect()
}

fn ids(faults: &[Fault]) -> Vec<String> {
    faults.iter().map(|f| f.id.clone()).collect()
}

/// The schema of a SQLite database: every table, index and trigger with its SQL.
fn sqlite_schema(url: &str) -> Vec<(String, String, Option<String>)> {
    let conn = rusqlite::Connection::open(url.trim_start_matches("sqlite://")).unwrap();
    let mut statement =
        conn.prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name").unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn a_bulk_load_writes_what_inserts_write(backend: Backend) {
    let Some(db) = TestDb::new(backend, &format!("bulk_load_{backend:?}")).await else { return };
    let store = db.store.clone();
    let schema = (backend == Backend::Sqlite).then(|| sqlite_schema(&db.url));
    let customer = store.create_customer("Acme").await.unwrap().id;
    let other = store.create_customer("Globex").await.unwrap().id;
    let failing = store.create_customer("Initech").await.unwrap().id;

    // Loads into the empty table that fail part-way: a chunk that holds an id twice (with
    // more chunks behind it than the channel holds), and faults that stop before their end.
    let mut broken = history(&failing, 9);
    broken[1][5] = broken[1][4].clone();
    let fresh = broken[0][0].id.clone();
    assert!(bulk(&store, broken).await.is_err(), "a duplicate id fails the load");
    let kept = store.get_fault(&failing, &fresh).await.unwrap();
    let unfinished = history(&failing, 10);
    let unfinished_id = unfinished[0][0].id.clone();
    assert!(bulk_load(&store, unfinished, false).await.is_err(), "a load cut short fails");
    let unfinished_kept = store.get_fault(&failing, &unfinished_id).await.unwrap();
    match backend {
        // One transaction: nothing of a failed load, and the indexes it dropped are back.
        Backend::Sqlite => {
            assert_eq!((kept, unfinished_kept), (None, None));
            assert_eq!(&sqlite_schema(&db.url), schema.as_ref().unwrap());
        }
        // A transaction per chunk: the chunks before the failure stay.
        Backend::Postgres => assert!(kept.is_some() && unfinished_kept.is_some()),
    }

    // Into an empty table (SQLite defers the indexes; on PostgreSQL it holds the failed
    // load's first chunk), then into a table that has rows.
    let first = history(&customer, 7);
    assert_eq!(bulk(&store, first.clone()).await.unwrap(), FAULTS as usize);
    if let Some(schema) = &schema {
        assert_eq!(&sqlite_schema(&db.url), schema, "the indexes are back, as they were");
    }
    let second = history(&other, 8);
    assert_eq!(bulk(&store, second.clone()).await.unwrap(), FAULTS as usize);
    let faults: Vec<Fault> = first.into_iter().flatten().collect();

    // Each fault reads back as it was given, and only to its customer.
    for fault in faults.iter().step_by(7) {
        assert_eq!(store.get_fault(&customer, &fault.id).await.unwrap().as_ref(), Some(fault));
        assert_eq!(store.get_fault(&other, &fault.id).await.unwrap(), None);
    }
    // Every filter's index finds exactly its faults.
    let sample = &faults[FAULTS as usize / 2];
    let site = sample.site_id.clone().expect("demo faults have a site");
    let checks: Vec<(FaultFilter, Keep<'_>)> = vec![
        (FaultFilter::default(), Box::new(|_| true)),
        (
            FaultFilter { severities: vec![Severity::High, Severity::Critical], ..Default::default() },
            Box::new(|f| matches!(f.severity, Severity::High | Severity::Critical)),
        ),
        (
            FaultFilter { statuses: vec![FaultStatus::Unresolved], ..Default::default() },
            Box::new(|f| f.status == FaultStatus::Unresolved),
        ),
        (
            FaultFilter { types: vec![sample.fault_type.clone()], ..Default::default() },
            Box::new(|f| f.fault_type == sample.fault_type),
        ),
        (
            FaultFilter { resource_ids: vec![sample.resource_id.clone()], ..Default::default() },
            Box::new(|f| f.resource_id == sample.resource_id),
        ),
        (
            FaultFilter { microservice_ids: vec![sample.microservice_id.clone()], ..Default::default() },
            Box::new(|f| f.microservice_id == sample.microservice_id),
        ),
        (
            FaultFilter {
                sites: vec![site.clone()],
                severities: vec![sample.severity],
                ..Default::default()
            },
            Box::new(|f| f.site_id.as_deref() == Some(site.as_str()) && f.severity == sample.severity),
        ),
    ];
    for (filter, keep) in &checks {
        let want = expected(&faults, keep);
        assert!(!want.is_empty(), "{filter:?} finds something");
        assert_eq!(ids(&walk(&store, &customer, filter).await), want, "{filter:?}");
    }
    // Each fault's `created` entry is in the event log.
    let mut created: Vec<String> = Vec::new();
    let mut after = 0;
    loop {
        let log = store.read_log(after, 1_000).await.unwrap();
        let Some(last) = log.entries.last() else { break };
        after = last.seq;
        let mine = log.entries.iter().filter(|e| e.customer_id == customer && e.kind == "created");
        created.extend(mine.map(|e| e.fault_id.clone()));
    }
    created.sort();
    let mut want = ids(&faults);
    want.sort();
    assert_eq!(created, want);

    assert_eq!(walk(&store, &other, &FaultFilter::default()).await.len(), FAULTS as usize);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_load_writes_what_inserts_write_sqlite() {
    a_bulk_load_writes_what_inserts_write(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_load_writes_what_inserts_write_postgres() {
    a_bulk_load_writes_what_inserts_write(Backend::Postgres).await;
}
