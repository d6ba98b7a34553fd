//! PostgreSQL's reads run on connections of the store's one pool (`db/postgres.rs`), handed
//! out without a ping. A connection the server ended while it was idle must not fail the next
//! read: it is dropped and the read sent again. (What the reads
//! answer is covered on both backends by the conformance suite.)

use std::str::FromStr;
use std::sync::Arc;

use faultline_core::filter::FaultFilter;
use faultline_store::testing::TestDb;
use faultline_store::{Backend, FaultQuery, PostgresStore, Store};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// End every server process of connections named `application`.
async fn terminate(url: &str, application: &str) -> i64 {
    let mut admin = PgConnection::connect(url).await.unwrap();
    let ended: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) t",
    )
    .bind(application)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    admin.close().await.ok();
    ended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_connections_the_server_ended() {
    let Some(db) = TestDb::new(Backend::Postgres, "postgres_reads_survive").await else { return };
    let application = format!("faultline-test-{}", faultline_core::ids::random_base62(10));
    let options = PgConnectOptions::from_str(&db.url).unwrap().application_name(&application);
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open_with(options).await.unwrap());

    let customer = store.create_customer("Acme").await.unwrap().id;
    let now = faultline_core::time::now_micros();
    let new = faultline_core::fault::NewFault {
        resource_id: "dev_1".into(),
        fault_type: "reboot".into(),
        severity: faultline_core::fault::Severity::High,
        message: "rebooted".into(),
        cause: String::new(),
        microservice_id: "test".into(),
        resource_ancestry_path: "site_1|dev_1".into(),
        created_at: Some(now),
    };
    let fault = faultline_core::fault::Fault::create(&customer, new, now, 86_400);
    store.insert_faults(std::slice::from_ref(&fault), "test", None).await.unwrap();
    let filter = FaultFilter::default();
    let query = FaultQuery { filter: &filter, after: None, limit: 50, now };

    for round in 0..3 {
        // Reads at once leave several connections idle; then the server ends them all, and
        // each following read must still be answered (not by another dead idle connection).
        let reads: Vec<_> = (0..16)
            .map(|_| {
                let (store, customer, id) = (store.clone(), customer.clone(), fault.id.clone());
                tokio::spawn(async move { store.get_fault(&customer, &id).await })
            })
            .collect();
        for read in reads {
            assert_eq!(read.await.unwrap().unwrap().as_ref(), Some(&fault), "round {round}");
        }
        assert_eq!(store.list_faults(&customer, &query).await.unwrap(), vec![fault.clone()], "round {round}");
        assert!(terminate(&db.url, &application).await >= 2, "round {round}: the store's connections ended");
        for read in 0..8 {
            assert_eq!(
                store.get_fault(&customer, &fault.id).await.unwrap().as_ref(),
                Some(&fault),
                "round {round}, read {read} after the idle connections were ended"
            );
        }
        assert!(terminate(&db.url, &application).await >= 1);
        assert_eq!(store.list_faults(&customer, &query).await.unwrap().len(), 1, "round {round}: a page too");
    }
    store.close().await;
    db.cleanup().await;
}
