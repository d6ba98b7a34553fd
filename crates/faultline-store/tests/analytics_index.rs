//! The SQLite backend answers analytics from its in-memory analytics index. These tests hold
//! every answer of the index to the answer of the SQL it replaces, on random fault histories,
//! for every kind of filter and access-token scope, before and after the history changes
//! (new faults, resolutions, deletions, event batches, another customer's writes).

use std::sync::Arc;

use faultline_core::fault::{Fault, FaultStatus, NewFault, Severity};
use faultline_core::filter::FaultFilter;
use faultline_core::ingest::IngestEvent;
use faultline_core::scope::TokenScope;
use faultline_core::time::{Micros, now_micros};
use faultline_store::analytics::{GroupBy, Slots};
use faultline_store::testing::TestDb;
use faultline_store::{Backend, Resolution, SqliteStore, Store, TopQuery};

const HOUR: Micros = 3_600_000_000;

/// A small deterministic generator (xorshift64*), so a failure reproduces from its seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const TYPES: [&str; 4] = ["site", "wantunnel", "wan-degradation", "reboot"];
const SERVICES: [&str; 3] = ["heartbeat", "wantunnel-monitor", "manual-api-entry"];
const MESSAGES: [&str; 4] = ["Tunnel DOWN at ZÜRICH", "Site offline", "Reboot_loop", "Loss 50% on WAN1"];
const CAUSES: [&str; 3] = ["", "état inconnu", "BFD session down"];

/// A random fault of `customer_id`, created within the last 60 days, resolved or not.
fn random_fault(random: &mut Random, customer_id: &str, now: Micros) -> Fault {
    let site = format!("site_{}", random.below(6));
    let device = format!("dev_{}", random.below(12));
    let tunnel = format!("tun_{}", random.below(20));
    let fault_type = *random.pick(&TYPES);
    let (resource_id, path) = match (fault_type, random.below(5)) {
        // Some faults have no site in their path (so no site_id), one is its own site.
        (_, 0) => (device.clone(), device.clone()),
        ("site", _) => (site.clone(), site.clone()),
        ("reboot", _) => (device.clone(), format!("{site}|{device}")),
        _ => (tunnel.clone(), format!("{site}|{device}|{tunnel}")),
    };
    let new = NewFault {
        resource_id,
        fault_type: fault_type.to_owned(),
        severity: *random.pick(&Severity::ALL),
        message: random.pick(&MESSAGES).to_string(),
        cause: random.pick(&CAUSES).to_string(),
        microservice_id: random.pick(&SERVICES).to_string(),
        resource_ancestry_path: path,
        created_at: Some(now - random.below(60 * 24) as i64 * HOUR - random.below(HOUR as u64) as i64),
    };
    let mut fault = Fault::create(customer_id, new, now, 400 * 86_400);
    if random.below(3) > 0 {
        fault.status = FaultStatus::Resolved;
        fault.resolved_at = Some(fault.created_at + random.below(48 * HOUR as u64) as i64 + 1);
    }
    fault
}

/// Filters covering every condition the index evaluates, alone and together.
fn filters(ids: &[String], now: Micros) -> Vec<FaultFilter> {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
    let all = FaultFilter::default();
    let scope = |scope: TokenScope| FaultFilter { scope: Some(scope), ..FaultFilter::default() };
    vec![
        all.clone(),
        FaultFilter { from: Some(now - 20 * 24 * HOUR), to: Some(now - 5 * 24 * HOUR), ..all.clone() },
        FaultFilter { severities: vec![Severity::High, Severity::Critical], ..all.clone() },
        FaultFilter { statuses: vec![FaultStatus::Unresolved], ..all.clone() },
        FaultFilter { statuses: vec![FaultStatus::Resolved, FaultStatus::Unresolved], ..all.clone() },
        FaultFilter { types: s(&["wantunnel", "site", "no-such-type"]), ..all.clone() },
        FaultFilter { types: s(&["no-such-type"]), ..all.clone() },
        FaultFilter { resource_ids: s(&["tun_3", "dev_4", "site_1"]), ..all.clone() },
        FaultFilter { sites: s(&["site_2"]), ..all.clone() },
        FaultFilter { sites: s(&["dev_5", "tun_7"]), ..all.clone() },
        FaultFilter { sites: s(&["site_1", "site_3"]), severities: vec![Severity::Low], ..all.clone() },
        FaultFilter { microservice_ids: s(&["heartbeat"]), ..all.clone() },
        FaultFilter { text: Some("down".to_owned()), ..all.clone() },
        FaultFilter { text: Some("zürich".to_owned()), ..all.clone() },
        FaultFilter { text: Some("ÉTAT".to_owned()), ..all.clone() },
        FaultFilter { text: Some("50%".to_owned()), ..all.clone() },
        FaultFilter { text: Some("t_l".to_owned()), ..all.clone() },
        FaultFilter { text: Some("T_L".to_owned()), sites: s(&["site_1"]), ..all.clone() },
        FaultFilter { recent: true, ..all.clone() },
        FaultFilter { recent: true, sites: s(&["site_0"]), from: Some(now - 3 * 24 * HOUR), ..all.clone() },
        scope(TokenScope { site_ids: s(&["site_4"]), ..TokenScope::default() }),
        scope(TokenScope { resource_ids: s(&["tun_1", "tun_2", "dev_3"]), ..TokenScope::default() }),
        scope(TokenScope { fault_ids: ids.iter().step_by(7).cloned().collect(), ..TokenScope::default() }),
        scope(TokenScope { severity: vec![Severity::Warning, Severity::Medium], ..TokenScope::default() }),
        scope(TokenScope {
            types: s(&["reboot"]),
            site_ids: s(&["site_0", "site_5"]),
            ..TokenScope::default()
        }),
        FaultFilter {
            sites: s(&["site_1"]),
            types: s(&["wantunnel"]),
            scope: Some(TokenScope { site_ids: s(&["dev_2", "site_1"]), ..TokenScope::default() }),
            ..all.clone()
        },
    ]
}

/// Every analytics answer of `indexed` equals that of `by_sql` for every filter.
async fn assert_same_answers(
    indexed: &dyn Store,
    by_sql: &dyn Store,
    customer: &str,
    ids: &[String],
    now: Micros,
) {
    let groups = [GroupBy::Severity, GroupBy::Type, GroupBy::Site, GroupBy::Resource];
    for (n, filter) in filters(ids, now).iter().enumerate() {
        let context = format!("filter #{n}: {filter:?}");
        for group in groups {
            for limit in [3, 100] {
                assert_eq!(
                    indexed.top_groups(customer, filter, group, limit, now).await.unwrap(),
                    by_sql.top_groups(customer, filter, group, limit, now).await.unwrap(),
                    "top_groups {group:?} {limit}, {context}"
                );
            }
        }
        let windowed = FaultFilter {
            from: Some(filter.from.unwrap_or(now - 40 * 24 * HOUR)),
            to: Some(filter.to.unwrap_or(now)),
            ..filter.clone()
        };
        let slots = Slots {
            origin: windowed.from.unwrap() / (900 * 1_000_000) * 900 * 1_000_000,
            slot_micros: 900_000_000,
        };
        let listed: Vec<String> =
            vec!["HIGH".into(), "site_1".into(), "wantunnel".into(), "tun_3".into(), String::new()];
        let mut cases: Vec<Option<(GroupBy, &[String], &str)>> = vec![None];
        for group in groups {
            cases.push(Some((group, &listed[..], "(other)")));
            cases.push(Some((group, &[][..], "(other)")));
            // `other` named like a listed group counts as that group, as in SQL.
            cases.push(Some((group, &listed[..], "HIGH")));
        }
        // A window that ends before its first slot: nothing, and no slot counted.
        let backwards = FaultFilter { to: Some(slots.origin - 3 * slots.slot_micros), ..windowed.clone() };
        let whole_day = Slots { origin: 0, slot_micros: 86_400_000_000 };
        for (f, slots) in [(filter, whole_day), (&windowed, slots), (&backwards, slots)] {
            for group in &cases {
                let mut a = indexed.counts_by_slot(customer, f, slots, *group, now).await.unwrap();
                let mut b = by_sql.counts_by_slot(customer, f, slots, *group, now).await.unwrap();
                a.sort();
                b.sort();
                assert_eq!(a, b, "counts_by_slot {group:?}, {context}");
            }
        }
        let mut a = indexed.repair_times(customer, filter, now).await.unwrap();
        let mut b = by_sql.repair_times(customer, filter, now).await.unwrap();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "repair_times, {context}");
        assert_eq!(
            indexed.count_open(customer, filter, now).await.unwrap(),
            by_sql.count_open(customer, filter, now).await.unwrap(),
            "count_open, {context}"
        );
        let (from, to) = (now - 30 * 24 * HOUR, now - 2 * 24 * HOUR);
        let mut a = indexed.site_outages(customer, filter, from, to).await.unwrap();
        let mut b = by_sql.site_outages(customer, filter, from, to).await.unwrap();
        a.sort();
        b.sort();
        assert_eq!(a, b, "site_outages, {context}");
        let query =
            TopQuery { since: now - 14 * 24 * HOUR, scope: filter.scope.as_ref(), limit: 5, sample: 3 };
        let a = indexed.top_resources(customer, &query).await.unwrap();
        let b = by_sql.top_resources(customer, &query).await.unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "top_resources, {context}");
    }
}

/// Those of `ids` that are stored: a second open fault of the same resource and type is not
/// (it deduplicates onto the first), nor is a deleted or expired one.
async fn stored(store: &dyn Store, customer: &str, ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut stored = Vec::new();
    for id in ids {
        if store.get_fault(customer, &id).await.unwrap().is_some() {
            stored.push(id);
        }
    }
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_answers_as_the_sql_does_as_the_history_changes() {
    let db =
        TestDb::new(Backend::Sqlite, "analytics_index_matches_sql").await.expect("sqlite is always here");
    let indexed = db.store.clone();
    let loader = SqliteStore::open(&db.url).await.unwrap();
    let by_sql: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&db.url).await.unwrap().without_analytics_index());
    let customer = indexed.create_customer("Acme").await.unwrap().id;
    let other = indexed.create_customer("Globex").await.unwrap().id;
    let now = now_micros();
    let mut random = Random(0x5EED_0001);
    let mut ids: Vec<String> = Vec::new();

    let first: Vec<Fault> = (0..600).map(|_| random_fault(&mut random, &customer, now)).collect();
    indexed.insert_faults(&first, "test", None).await.unwrap();
    ids.extend(stored(&*indexed, &customer, first.iter().map(|f| f.id.clone())).await);
    let foreign: Vec<Fault> = (0..100).map(|_| random_fault(&mut random, &other, now)).collect();
    indexed.insert_faults(&foreign, "test", None).await.unwrap();
    // Answers come from SQL while the index loads in the background, then from the index.
    assert_same_answers(&*indexed, &*by_sql, &customer, &ids, now).await;
    let indexed: Arc<dyn Store> = {
        loader.load_analytics_index(&customer).await.unwrap();
        loader.load_analytics_index(&other).await.unwrap();
        Arc::new(loader)
    };
    assert_same_answers(&*indexed, &*by_sql, &customer, &ids, now).await;

    // Changes after the load: the index catches up from the event log.
    for round in 0..3 {
        let more: Vec<Fault> = (0..150).map(|_| random_fault(&mut random, &customer, now)).collect();
        indexed.insert_faults(&more, "test", None).await.unwrap();
        ids.extend(stored(&*indexed, &customer, more.iter().map(|f| f.id.clone())).await);
        for id in ids.iter().skip(round).step_by(11) {
            let resolution = Resolution { at: now + round as i64, ttl: 0, comment: None };
            indexed.resolve_fault(&customer, id, resolution, "test", None).await.unwrap();
        }
        let doomed: Vec<String> = ids.iter().skip(round + 3).step_by(13).cloned().collect();
        for id in &doomed {
            assert!(indexed.delete_fault(&customer, id, "test").await.unwrap());
        }
        ids.retain(|id| !doomed.contains(id));
        // An event batch: triggers that open or deduplicate, resolves of open faults.
        let mut events: Vec<IngestEvent> = (0..40)
            .map(|_| {
                let mut fault = random_fault(&mut random, &customer, now);
                fault.status = FaultStatus::Unresolved;
                fault.resolved_at = None;
                IngestEvent::Trigger(Box::new(fault))
            })
            .collect();
        events.extend((0..20).map(|i| IngestEvent::Resolve {
            resource_id: format!("tun_{i}"),
            fault_type: "wantunnel".to_owned(),
            occurred_at: now + 1,
        }));
        for (fault_id, _) in
            indexed.apply_events(&customer, &events, 86_400, "test", None).await.unwrap().done().unwrap()
        {
            if let Some(id) = fault_id.filter(|id| !ids.contains(id)) {
                ids.push(id);
            }
        }
        // Expiry: faults resolved with a ttl in the past go at the next sweep.
        let expiring: Vec<String> = ids.iter().skip(round + 5).step_by(17).cloned().collect();
        for id in &expiring {
            let resolution = Resolution { at: now + 2, ttl: 1, comment: None };
            indexed.resolve_fault(&customer, id, resolution, "test", None).await.unwrap();
        }
        let swept = indexed.sweep_expired(now / 1_000_000, 10_000).await.unwrap();
        assert!(swept > 0, "some faults expired");
        ids = stored(&*indexed, &customer, ids).await;
        let foreign: Vec<Fault> = (0..30).map(|_| random_fault(&mut random, &other, now)).collect();
        indexed.insert_faults(&foreign, "test", None).await.unwrap();
        assert_same_answers(&*indexed, &*by_sql, &customer, &ids, now).await;
        assert_same_answers(&*indexed, &*by_sql, &other, &[], now).await;
    }
    by_sql.close().await;
    indexed.close().await;
    db.cleanup().await;
}
