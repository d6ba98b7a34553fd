//! The conformance suite of sites (`Sites`: their names, status and open faults, and the name
//! faults are read with) and of console sign-in (`ConsoleSessions`). Every test runs on SQLite
//! and on PostgreSQL, and every time is given to the store by the test (microseconds), so
//! nothing waits for the clock.

use std::sync::Arc;

use faultline_core::Permissions;
use faultline_core::fault::{Comment, Fault, FaultStatus, NewFault, Severity};
use faultline_core::filter::FaultFilter;
use faultline_core::heartbeat::{Heartbeat, OfflinePolicy};
use faultline_core::time::{Micros, now_micros};
use faultline_store::{
    ApiKey, ConsoleLink, ConsoleSession, FaultQuery, NewApiKey, Site, SiteQuery, SiteStatus, Store,
    conformance_test,
};

type Db = Arc<dyn Store>;

const SECOND: Micros = 1_000_000;
const RETENTION_SECONDS: i64 = 400 * 86_400;

/// One heartbeat, named or not.
fn beat(site_id: &str, name: Option<&str>) -> Heartbeat {
    Heartbeat { site_id: site_id.to_owned(), name: name.map(str::to_owned) }
}

/// Record `beats` (sorted by site id here, as the store requires) for `customer_id` at `at`.
async fn heartbeats(store: &Db, customer_id: &str, mut beats: Vec<Heartbeat>, at: Micros) {
    beats.sort_by(|a, b| a.site_id.cmp(&b.site_id));
    store.record_heartbeats(customer_id, &beats, at, RETENTION_SECONDS, "test", None).await.unwrap();
}

async fn name(store: &Db, customer_id: &str, site_id: &str, name: Option<&str>, now: Micros) -> Site {
    store.set_site_name(customer_id, site_id, name, now).await.unwrap()
}

async fn site(store: &Db, customer_id: &str, site_id: &str) -> Site {
    store.get_site(customer_id, site_id).await.unwrap().unwrap_or_else(|| panic!("site {site_id}"))
}

fn query(limit: u32) -> SiteQuery {
    SiteQuery { limit, ..SiteQuery::default() }
}

async fn list(store: &Db, customer_id: &str, query: &SiteQuery) -> Vec<Site> {
    store.list_sites(customer_id, query).await.unwrap()
}

/// The ids of `sites`, in order.
fn ids(sites: &[Site]) -> Vec<String> {
    sites.iter().map(|s| s.site_id.clone()).collect()
}

/// The ids of the customer's sites that `text` finds, in order.
async fn found(store: &Db, customer_id: &str, text: &str) -> Vec<String> {
    ids(&list(store, customer_id, &SiteQuery { text: Some(text.to_owned()), ..query(100) }).await)
}

/// Every page of `query`, `limit` at a time, each after the last site of the page before;
/// with the sizes of the pages.
async fn paged(store: &Db, customer_id: &str, query: &SiteQuery, limit: u32) -> (Vec<Site>, Vec<usize>) {
    let (mut all, mut sizes, mut after) = (Vec::new(), Vec::new(), None);
    // Bounded: a position that does not move on must fail, not hang.
    for _ in 0..50 {
        let page =
            list(store, customer_id, &SiteQuery { after: after.clone(), limit, ..query.clone() }).await;
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some((last.label().to_owned(), last.site_id.clone()));
        all.extend(page);
    }
    (all, sizes)
}

/// A fault of `customer_id` on `resource_id` under the ancestry `path`, created at `at`.
fn fault(customer_id: &str, resource_id: &str, path: &str, at: Micros) -> Fault {
    let new = NewFault {
        resource_id: resource_id.to_owned(),
        fault_type: "wantunnel".to_owned(),
        severity: Severity::High,
        message: format!("{resource_id} down"),
        cause: String::new(),
        microservice_id: "test".to_owned(),
        resource_ancestry_path: path.to_owned(),
        created_at: Some(at),
    };
    Fault::create(customer_id, new, at, RETENTION_SECONDS)
}

fn resolved(mut fault: Fault) -> Fault {
    fault.status = FaultStatus::Resolved;
    fault.resolved_at = Some(fault.created_at + SECOND);
    fault
}

async fn insert(store: &Db, faults: &[Fault]) {
    store.insert_faults(faults, "test", None).await.unwrap();
}

/// The faults `filter` finds, newest first.
async fn faults(store: &Db, customer_id: &str, filter: &FaultFilter) -> Vec<Fault> {
    let query = FaultQuery { filter, after: None, limit: 100, now: now_micros() };
    store.list_faults(customer_id, &query).await.unwrap()
}

/// `(fault id, site name)` of each fault, sorted by id.
fn site_names(faults: &[Fault]) -> Vec<(String, Option<String>)> {
    let mut names: Vec<_> = faults.iter().map(|f| (f.id.clone(), f.site_name.clone())).collect();
    names.sort();
    names
}

// ---- listing ----

conformance_test!(sites_are_listed_by_label_then_id_and_paged_without_gaps, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let t0 = now_micros();
    // Labels that tie (two sites named alike; a name equal to another site's id), sites without
    // names, and byte order (upper case before lower case, on both databases).
    heartbeats(
        &store,
        &a,
        vec![
            beat("site_b", Some("Alpha")),
            beat("site_a", Some("Alpha")),
            beat("site_c", None),
            beat("site_0", Some("Zulu")),
            beat("site_x", Some("Bravo")),
            beat("site_Z", None),
            beat("site_l", Some("alpha")),
            beat("site_m", Some("site_c")),
            beat("site_9", None),
        ],
        t0,
    )
    .await;
    // Named by an operator only, never seen.
    name(&store, &a, "site_n", Some("Bravo"), t0).await;

    let all = list(&store, &a, &query(100)).await;
    assert_eq!(
        ids(&all),
        [
            "site_a", "site_b", // Alpha, Alpha
            "site_n", "site_x", // Bravo, Bravo: by id
            "site_0", // Zulu
            "site_l", // alpha: lower case after every upper case
            "site_9", "site_Z", // ids as labels, in byte order
            "site_c", "site_m", // site_c twice: a name equal to an id, by id
        ],
        "{all:?}"
    );
    let mut expected = all.clone();
    expected.sort_by(|x, y| (x.label().as_bytes(), &x.site_id).cmp(&(y.label().as_bytes(), &y.site_id)));
    assert_eq!(ids(&expected), ids(&all), "label then id, in byte order");

    for limit in [1, 2, 3, 4] {
        let (paged, sizes) = paged(&store, &a, &query(100), limit).await;
        assert_eq!(ids(&paged), ids(&all), "limit {limit}: no gaps, no duplicates");
        assert_eq!(paged, all, "limit {limit}: the same sites as one page");
        let limit = limit as usize;
        assert_eq!(
            sizes.len(),
            all.len().div_ceil(limit) + 1,
            "limit {limit}: {sizes:?}, then an empty page"
        );
        assert!(sizes.iter().all(|&n| n <= limit), "{sizes:?}");
    }
    // After a position between two labels, or inside a tie.
    let after =
        |label: &str, id: &str| SiteQuery { after: Some((label.to_owned(), id.to_owned())), ..query(100) };
    assert_eq!(ids(&list(&store, &a, &after("Alpha", "site_a")).await)[..2], ["site_b", "site_n"]);
    assert_eq!(ids(&list(&store, &a, &after("Alpha", "site_b")).await)[..1], ["site_n"]);
    assert_eq!(ids(&list(&store, &a, &after("B", "")).await)[..1], ["site_n"]);
    assert_eq!(ids(&list(&store, &a, &after("Bravo", "site_o")).await)[..1], ["site_x"]);
    assert_eq!(ids(&list(&store, &a, &after("site_c", "site_c")).await), ["site_m"]);
    assert_eq!(ids(&list(&store, &a, &after("a", "")).await)[..1], ["site_l"]);
    assert!(list(&store, &a, &after("site_c", "site_m")).await.is_empty());
    assert_eq!(ids(&list(&store, &a, &query(3)).await), ["site_a", "site_b", "site_n"], "the limit holds");
});

conformance_test!(sites_are_filtered_by_status, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let policy = OfflinePolicy { interval: SECOND, misses: 3 };
    let t0 = now_micros() - 3_600 * SECOND;
    heartbeats(&store, &a, vec![beat("site_up", None), beat("site_down", Some("Down"))], t0).await;
    // Both fall silent and are found offline; then one comes back.
    let (handled, _) =
        store.detect_offline(&policy, t0 + 10 * SECOND, RETENTION_SECONDS, 10, None).await.unwrap();
    assert_eq!(handled, 2);
    let back = t0 + 20 * SECOND;
    heartbeats(&store, &a, vec![beat("site_up", None)], back).await;
    // One named by an operator, never seen; one seen, then named.
    let unseen = name(&store, &a, "site_new", Some("New"), t0 + 21 * SECOND).await;
    name(&store, &a, "site_up", Some("Up"), t0 + 22 * SECOND).await;

    let up = site(&store, &a, "site_up").await;
    assert_eq!(
        (up.status(), up.last_heartbeat, up.offline_since, up.first_seen),
        (SiteStatus::Online, Some(back), None, t0)
    );
    let down = site(&store, &a, "site_down").await;
    assert_eq!(
        (down.status(), down.last_heartbeat, down.offline_since),
        (SiteStatus::Offline, Some(t0), Some(t0 + SECOND)),
        "offline since its first missed heartbeat"
    );
    assert_eq!(
        unseen,
        Site {
            customer_id: a.clone(),
            site_id: "site_new".into(),
            name: Some("New".into()),
            named_by_operator: true,
            first_seen: t0 + 21 * SECOND,
            last_heartbeat: None,
            offline_since: None,
            open_faults: 0,
        }
    );
    assert_eq!(unseen.status(), SiteStatus::Unknown);
    assert_eq!(site(&store, &a, "site_new").await, unseen);
    // The detector never finds a site that never sent a heartbeat.
    let later = t0 + 3_600 * SECOND;
    assert_eq!(
        store.detect_offline(&policy, later, RETENTION_SECONDS, 10, None).await.unwrap().0,
        1,
        "site_up only"
    );
    assert_eq!(site(&store, &a, "site_new").await.status(), SiteStatus::Unknown);
    heartbeats(&store, &a, vec![beat("site_up", None)], later).await;

    let by = |statuses: &[SiteStatus]| SiteQuery { statuses: statuses.to_vec(), ..query(100) };
    assert_eq!(ids(&list(&store, &a, &by(&[SiteStatus::Online])).await), ["site_up"]);
    assert_eq!(ids(&list(&store, &a, &by(&[SiteStatus::Offline])).await), ["site_down"]);
    assert_eq!(ids(&list(&store, &a, &by(&[SiteStatus::Unknown])).await), ["site_new"]);
    assert_eq!(
        ids(&list(&store, &a, &by(&[SiteStatus::Unknown, SiteStatus::Online])).await),
        ["site_new", "site_up"],
        "any of them, by label"
    );
    assert_eq!(ids(&list(&store, &a, &by(&SiteStatus::ALL)).await), ["site_down", "site_new", "site_up"]);
    assert_eq!(ids(&list(&store, &a, &by(&[])).await), ["site_down", "site_new", "site_up"], "none: all");
    // With a position, and with text.
    let after_new = SiteQuery { after: Some(("New".into(), "site_new".into())), ..by(&SiteStatus::ALL) };
    assert_eq!(ids(&list(&store, &a, &after_new).await), ["site_up"]);
    let text = SiteQuery { text: Some("site_".into()), ..by(&[SiteStatus::Offline, SiteStatus::Unknown]) };
    assert_eq!(ids(&list(&store, &a, &text).await), ["site_down", "site_new"]);
});

conformance_test!(
    the_text_filter_is_case_insensitive_literal_and_reads_names_and_ids,
    |store: Db| async move {
        let a = store.create_customer("Acme").await.unwrap().id;
        let t0 = now_micros();
        heartbeats(
            &store,
            &a,
            vec![
                beat("site_1", Some("LYON Central")),
                beat("site_lyon_2", None),
                beat("site_3", Some("Paris")),
                beat("site_4", Some("Under_score")),
                beat("site_5", Some("Lyon 50% off")),
                beat("site_6", Some("Rack 500")),
                beat("site_7", Some(r"back\slash")),
                beat("site_8", Some("Oslo")),
            ],
            t0,
        )
        .await;
        assert_eq!(found(&store, &a, "lyon").await, ["site_1", "site_5", "site_lyon_2"], "name or id");
        assert_eq!(found(&store, &a, "Lyon").await, found(&store, &a, "lYoN").await);
        assert_eq!(found(&store, &a, "SITE_LYON").await, ["site_lyon_2"], "the id, case-insensitively");
        assert_eq!(found(&store, &a, "central").await, ["site_1"]);
        // LIKE's wildcards are plain characters: `r_s` is not `r?s` (Paris), `50%` not `50*`.
        assert_eq!(found(&store, &a, "r_s").await, ["site_4"]);
        assert_eq!(found(&store, &a, "50%").await, ["site_5"]);
        assert_eq!(found(&store, &a, "%").await, ["site_5"]);
        assert_eq!(
            found(&store, &a, "sit__3").await,
            Vec::<String>::new(),
            "not site_3's id read as a pattern"
        );
        assert_eq!(found(&store, &a, "site_3").await, ["site_3"]);
        assert_eq!(found(&store, &a, r"\").await, ["site_7"]);
        assert_eq!(found(&store, &a, r"k\s").await, ["site_7"]);
        assert_eq!(found(&store, &a, "nowhere").await, Vec::<String>::new());
        // Paged within the filter.
        let lyon = SiteQuery { text: Some("LYON".into()), ..query(100) };
        let (all, sizes) = paged(&store, &a, &lyon, 1).await;
        assert_eq!(ids(&all), ["site_1", "site_5", "site_lyon_2"]);
        assert_eq!(sizes, [1, 1, 1, 0]);
    }
);

// ---- open faults ----

conformance_test!(open_faults_count_the_unresolved_faults_of_each_site, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let t0 = now_micros() - 3_600 * SECOND;
    heartbeats(&store, &a, vec![beat("site_1", Some("One")), beat("site_2", None), beat("site_3", None)], t0)
        .await;
    heartbeats(&store, &b, vec![beat("site_1", None)], t0).await;
    name(&store, &a, "site_4", Some("Four"), t0).await;
    insert(
        &store,
        &[
            fault(&a, "tun_1", "site_1|tun_1", t0),
            fault(&a, "tun_2", "site_1|tun_2", t0 + 1),
            fault(&a, "site_1", "site_1", t0 + 2),
            resolved(fault(&a, "tun_3", "site_1|tun_3", t0 + 3)),
            // Under site_1, but in site_2: a fault's site is the first site of its path.
            fault(&a, "tun_4", "site_2|site_1|tun_4", t0 + 4),
            resolved(fault(&a, "tun_5", "site_3|tun_5", t0 + 5)),
            // Another customer's, on a site of the same id.
            fault(&b, "tun_1", "site_1|tun_1", t0),
            // No site at all.
            fault(&a, "dev_1", "dev_1", t0),
        ],
    )
    .await;
    let counts: Vec<(String, i64)> =
        list(&store, &a, &query(100)).await.into_iter().map(|s| (s.site_id, s.open_faults)).collect();
    assert_eq!(
        counts,
        [("site_4".into(), 0), ("site_1".into(), 3), ("site_2".into(), 1), ("site_3".into(), 0)],
        "by label: Four, One, site_2, site_3"
    );
    assert_eq!(site(&store, &a, "site_1").await.open_faults, 3);
    assert_eq!(site(&store, &a, "site_2").await.open_faults, 1);
    assert_eq!(site(&store, &a, "site_3").await.open_faults, 0);
    assert_eq!(site(&store, &b, "site_1").await.open_faults, 1);
    // Counted on every page, not only the first.
    let (pages, _) = paged(&store, &a, &query(100), 1).await;
    assert_eq!(pages.iter().map(|s| s.open_faults).collect::<Vec<_>>(), [0, 3, 1, 0]);
    // Resolving one counts one fewer; the name set answers the count too.
    let open =
        faults(&store, &a, &FaultFilter { resource_ids: vec!["tun_2".into()], ..FaultFilter::default() })
            .await;
    let resolution = faultline_store::Resolution { at: t0 + 10, ttl: 0, comment: None };
    store.resolve_fault(&a, &open[0].id, resolution, "test", None).await.unwrap();
    assert_eq!(site(&store, &a, "site_1").await.open_faults, 2);
    assert_eq!(name(&store, &a, "site_1", Some("Uno"), t0).await.open_faults, 2);
});

// ---- names ----

conformance_test!(an_operator_name_outlives_heartbeat_names_until_it_is_cleared, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let t0 = now_micros() - 3_600 * SECOND;
    heartbeats(&store, &a, vec![beat("site_1", Some("Beat One"))], t0).await;
    let seen = site(&store, &a, "site_1").await;
    assert_eq!((seen.name.as_deref(), seen.named_by_operator), (Some("Beat One"), false));

    let named = name(&store, &a, "site_1", Some("Ops One"), t0 + SECOND).await;
    assert_eq!(
        named,
        Site { name: Some("Ops One".into()), named_by_operator: true, ..seen.clone() },
        "only the name changes: first seen and the last heartbeat stay"
    );
    assert_eq!(site(&store, &a, "site_1").await, named);
    heartbeats(&store, &a, vec![beat("site_1", Some("Beat Two"))], t0 + 2 * SECOND).await;
    let kept = site(&store, &a, "site_1").await;
    assert_eq!(
        (kept.name.as_deref(), kept.named_by_operator),
        (Some("Ops One"), true),
        "the operator's name wins"
    );
    assert_eq!(kept.last_heartbeat, Some(t0 + 2 * SECOND), "the heartbeat still counts");
    heartbeats(&store, &a, vec![beat("site_1", None)], t0 + 3 * SECOND).await;
    assert_eq!(site(&store, &a, "site_1").await.name.as_deref(), Some("Ops One"));
    // Renamed by the operator again.
    assert_eq!(name(&store, &a, "site_1", Some("Ops Two"), t0).await.name.as_deref(), Some("Ops Two"));

    // Cleared: no name until a heartbeat sends one, then the heartbeats name it again.
    let cleared = name(&store, &a, "site_1", None, t0 + 4 * SECOND).await;
    assert_eq!((cleared.name, cleared.named_by_operator), (None, false));
    assert_eq!((cleared.first_seen, cleared.last_heartbeat), (t0, Some(t0 + 3 * SECOND)));
    heartbeats(&store, &a, vec![beat("site_1", None)], t0 + 5 * SECOND).await;
    assert_eq!(site(&store, &a, "site_1").await.name, None);
    heartbeats(&store, &a, vec![beat("site_1", Some("Beat Three"))], t0 + 6 * SECOND).await;
    let renamed = site(&store, &a, "site_1").await;
    assert_eq!((renamed.name.as_deref(), renamed.named_by_operator), (Some("Beat Three"), false));
    heartbeats(&store, &a, vec![beat("site_1", Some("Beat Four"))], t0 + 7 * SECOND).await;
    assert_eq!(site(&store, &a, "site_1").await.name.as_deref(), Some("Beat Four"));
    heartbeats(&store, &a, vec![beat("site_1", None)], t0 + 8 * SECOND).await;
    assert_eq!(
        site(&store, &a, "site_1").await.name.as_deref(),
        Some("Beat Four"),
        "a heartbeat without a name keeps it"
    );
});

conformance_test!(a_site_named_before_any_heartbeat_comes_online_with_its_first, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let t0 = now_micros() - 3_600 * SECOND;
    let named = name(&store, &a, "site_9", Some("Nine"), t0).await;
    assert_eq!((named.status(), named.last_heartbeat, named.first_seen), (SiteStatus::Unknown, None, t0));
    // Unnamed by the operator, never seen: still a site, unknown, without a name.
    let bare = name(&store, &a, "site_8", None, t0).await;
    assert_eq!(
        (bare.status(), bare.name.clone(), bare.named_by_operator),
        (SiteStatus::Unknown, None, false)
    );
    assert_eq!(site(&store, &a, "site_8").await, bare);

    heartbeats(
        &store,
        &a,
        vec![beat("site_9", Some("Beat Nine")), beat("site_8", Some("Beat Eight"))],
        t0 + SECOND,
    )
    .await;
    let online = site(&store, &a, "site_9").await;
    assert_eq!(online.status(), SiteStatus::Online);
    assert_eq!(online.last_heartbeat, Some(t0 + SECOND), "the first heartbeat is the last heartbeat");
    assert_eq!((online.name.as_deref(), online.named_by_operator), (Some("Nine"), true));
    assert_eq!(online.first_seen, t0);
    let eight = site(&store, &a, "site_8").await;
    assert_eq!((eight.status(), eight.name.as_deref()), (SiteStatus::Online, Some("Beat Eight")));
    let by = |s: SiteStatus| SiteQuery { statuses: vec![s], ..query(100) };
    assert_eq!(ids(&list(&store, &a, &by(SiteStatus::Online)).await), ["site_8", "site_9"]);
    assert!(list(&store, &a, &by(SiteStatus::Unknown)).await.is_empty());

    // An older heartbeat arriving late does not move the last heartbeat back.
    heartbeats(&store, &a, vec![beat("site_9", None)], t0 - SECOND).await;
    assert_eq!(site(&store, &a, "site_9").await.last_heartbeat, Some(t0 + SECOND));
    // It then falls silent like any other site.
    let policy = OfflinePolicy { interval: SECOND, misses: 3 };
    let (handled, _) =
        store.detect_offline(&policy, t0 + 10 * SECOND, RETENTION_SECONDS, 10, None).await.unwrap();
    assert_eq!(handled, 2);
    assert_eq!(site(&store, &a, "site_9").await.status(), SiteStatus::Offline);
});

conformance_test!(sites_belong_to_their_customer, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let t0 = now_micros();
    heartbeats(&store, &a, vec![beat("site_1", Some("Acme One")), beat("site_a", None)], t0).await;
    heartbeats(&store, &b, vec![beat("site_1", Some("Globex One")), beat("site_b", None)], t0).await;
    name(&store, &b, "site_unseen", Some("Globex Unseen"), t0).await;

    assert_eq!(ids(&list(&store, &a, &query(100)).await), ["site_1", "site_a"]);
    assert_eq!(
        ids(&list(&store, &b, &query(100)).await),
        ["site_1", "site_unseen", "site_b"],
        "Globex One, Globex Unseen, site_b"
    );
    assert!(store.get_site(&a, "site_b").await.unwrap().is_none(), "another customer's");
    assert!(store.get_site(&a, "site_unseen").await.unwrap().is_none(), "another customer's");
    assert!(store.get_site(&a, "site_missing").await.unwrap().is_none());
    assert!(found(&store, &a, "globex").await.is_empty());
    assert!(found(&store, &a, "site_b").await.is_empty());
    let unknown = SiteQuery { statuses: vec![SiteStatus::Unknown], ..query(100) };
    assert!(list(&store, &a, &unknown).await.is_empty());

    // A's name for its site_1 is A's alone.
    name(&store, &a, "site_1", Some("Acme Renamed"), t0).await;
    let theirs = site(&store, &b, "site_1").await;
    assert_eq!((theirs.customer_id.as_str(), theirs.name.as_deref()), (b.as_str(), Some("Globex One")));
    assert_eq!(site(&store, &a, "site_1").await.customer_id, a);
    // And faults read their own customer's name.
    insert(&store, &[fault(&a, "tun_1", "site_1|tun_1", t0), fault(&b, "tun_1", "site_1|tun_1", t0)]).await;
    let all = FaultFilter::default();
    assert_eq!(faults(&store, &a, &all).await[0].site_name.as_deref(), Some("Acme Renamed"));
    assert_eq!(faults(&store, &b, &all).await[0].site_name.as_deref(), Some("Globex One"));
    // Naming a site of the same id as another customer's creates A's own.
    name(&store, &a, "site_b", Some("Acme B"), t0).await;
    assert_eq!(site(&store, &b, "site_b").await.name, None);
    assert_eq!(site(&store, &b, "site_b").await.status(), SiteStatus::Online);
    assert_eq!(site(&store, &a, "site_b").await.status(), SiteStatus::Unknown);
});

conformance_test!(many_sites_are_named_at_once_and_their_names_read_back, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let t0 = now_micros();
    heartbeats(&store, &a, vec![beat("site_0000", Some("Beat Zero")), beat("site_unnamed", None)], t0).await;
    heartbeats(&store, &b, vec![beat("site_0001", Some("Theirs"))], t0).await;
    // More than one statement's worth, in one call.
    let names: Vec<(String, String)> =
        (0..1_200).map(|i| (format!("site_{i:04}"), format!("Branch-{:04}", 1_199 - i))).collect();
    store.name_sites(&a, &names, t0 + SECOND).await.unwrap();

    let zero = site(&store, &a, "site_0000").await;
    assert_eq!(
        (zero.name.as_deref(), zero.named_by_operator, zero.last_heartbeat, zero.first_seen),
        (Some("Branch-1199"), true, Some(t0), t0),
        "a site seen before: named by the operator, its heartbeat kept"
    );
    let new = site(&store, &a, "site_1199").await;
    assert_eq!(
        (new.name.as_deref(), new.status(), new.first_seen),
        (Some("Branch-0000"), SiteStatus::Unknown, t0 + SECOND)
    );
    heartbeats(&store, &a, vec![beat("site_0000", Some("Beat Again"))], t0 + 2 * SECOND).await;
    assert_eq!(
        site(&store, &a, "site_0000").await.name.as_deref(),
        Some("Branch-1199"),
        "kept over heartbeats"
    );
    assert_eq!(
        site(&store, &b, "site_0001").await.name.as_deref(),
        Some("Theirs"),
        "another customer's untouched"
    );
    let (all, _) = paged(&store, &a, &query(100), 100).await;
    assert_eq!(all.len(), 1_201);
    assert_eq!(all[0].site_id, "site_1199", "Branch-0000 first");
    assert_eq!(all[1_200].site_id, "site_unnamed");

    // Names read back by id: only the customer's named sites, across statements.
    let mut asked: Vec<String> = (0..1_200).step_by(7).map(|i| format!("site_{i:04}")).collect();
    asked.extend(["site_unnamed".to_owned(), "site_missing".to_owned()]);
    let read = store.site_names(&a, &asked).await.unwrap();
    assert_eq!(read.len(), asked.len() - 2, "not the unnamed or the missing");
    assert_eq!(read["site_0000"], "Branch-1199");
    assert_eq!(read["site_1197"], "Branch-0002");
    assert!(!read.contains_key("site_unnamed"));
    let theirs = store.site_names(&b, &["site_0001".to_owned(), "site_0000".to_owned()]).await.unwrap();
    assert_eq!(theirs.into_iter().collect::<Vec<_>>(), [("site_0001".to_owned(), "Theirs".to_owned())]);
    assert!(store.site_names(&a, &[]).await.unwrap().is_empty());
});

// ---- faults with their site's name ----

conformance_test!(faults_are_read_with_their_site_name, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let t0 = now_micros() - 3_600 * SECOND;
    heartbeats(&store, &a, vec![beat("site_1", Some("One")), beat("site_2", None)], t0).await;
    let on_1 = fault(&a, "tun_1", "site_1|tun_1", t0);
    let on_2 = fault(&a, "tun_2", "site_2|tun_2", t0 + 1);
    let nowhere = fault(&a, "dev_1", "dev_1", t0 + 2);
    let unknown_site = fault(&a, "tun_3", "site_3|tun_3", t0 + 3);
    let old = resolved(fault(&a, "tun_4", "site_1|tun_4", t0 + 4));
    insert(&store, &[on_1.clone(), on_2.clone(), nowhere.clone(), unknown_site.clone(), old.clone()]).await;
    // A fault with a comment too: the name comes after the comments in the row.
    let comment =
        Comment { id: "cmt_1".into(), user_id: "usr_1".into(), comment: "on it".into(), created_at: t0 + 5 };
    let commented =
        store.add_comment(&a, &on_1.id, &comment, "test", None).await.unwrap().done().unwrap().unwrap();
    assert_eq!((commented.site_name.as_deref(), commented.comments.len()), (Some("One"), 1));

    let get = |id: String| {
        let store = store.clone();
        let a = a.clone();
        async move { store.get_fault(&a, &id).await.unwrap().unwrap().site_name }
    };
    assert_eq!(get(on_1.id.clone()).await.as_deref(), Some("One"));
    assert_eq!(get(old.id.clone()).await.as_deref(), Some("One"));
    assert_eq!(get(on_2.id.clone()).await, None, "a site without a name");
    assert_eq!(get(nowhere.id.clone()).await, None, "no site");
    assert_eq!(get(unknown_site.id.clone()).await, None, "a site never seen");
    let read = store.get_fault(&a, &on_1.id).await.unwrap().unwrap();
    assert_eq!(read.comments, vec![comment.clone()]);
    assert_eq!(read, Fault { site_name: Some("One".into()), comments: vec![comment], ..on_1.clone() });

    let expected = |one: Option<&str>| {
        let mut names = vec![
            (on_1.id.clone(), one.map(str::to_owned)),
            (on_2.id.clone(), None),
            (nowhere.id.clone(), None),
            (unknown_site.id.clone(), None),
            (old.id.clone(), one.map(str::to_owned)),
        ];
        names.sort();
        names
    };
    // Every shape of a page: the plain one, one site (through the ancestry), several sites,
    // and `recent` (a union of statuses).
    let plain = FaultFilter::default();
    let one_site = FaultFilter { sites: vec!["site_1".into()], ..FaultFilter::default() };
    let sites = FaultFilter { sites: vec!["site_1".into(), "site_2".into()], ..FaultFilter::default() };
    let recent = FaultFilter { recent: true, ..FaultFilter::default() };
    let text = FaultFilter { text: Some("down".into()), ..FaultFilter::default() };
    assert_eq!(site_names(&faults(&store, &a, &plain).await), expected(Some("One")));
    assert_eq!(site_names(&faults(&store, &a, &text).await), expected(Some("One")));
    assert_eq!(site_names(&faults(&store, &a, &recent).await), expected(Some("One")));
    let mut of_1 = vec![(on_1.id.clone(), Some("One".to_owned())), (old.id.clone(), Some("One".to_owned()))];
    of_1.sort();
    assert_eq!(site_names(&faults(&store, &a, &one_site).await), of_1);
    let mut of_both = of_1.clone();
    of_both.push((on_2.id.clone(), None));
    of_both.sort();
    assert_eq!(site_names(&faults(&store, &a, &sites).await), of_both);

    // The name follows the site: an operator's, then cleared, then a heartbeat's.
    name(&store, &a, "site_1", Some("Ops One"), t0).await;
    name(&store, &a, "site_3", Some("Three"), t0).await;
    assert_eq!(get(on_1.id.clone()).await.as_deref(), Some("Ops One"));
    assert_eq!(get(unknown_site.id.clone()).await.as_deref(), Some("Three"));
    assert_eq!(
        site_names(&faults(&store, &a, &plain).await)
            .iter()
            .filter(|(_, n)| n.as_deref() == Some("Ops One"))
            .count(),
        2
    );
    name(&store, &a, "site_1", None, t0).await;
    assert_eq!(get(on_1.id.clone()).await, None);
    assert_eq!(site_names(&faults(&store, &a, &plain).await).iter().filter(|(_, n)| n.is_some()).count(), 1);
    heartbeats(&store, &a, vec![beat("site_2", Some("Two"))], t0 + SECOND).await;
    assert_eq!(get(on_2.id.clone()).await.as_deref(), Some("Two"));
    // Resolving answers the fault with its name.
    let resolution = faultline_store::Resolution { at: t0 + 10, ttl: 0, comment: None };
    let done =
        store.resolve_fault(&a, &on_2.id, resolution, "test", None).await.unwrap().done().unwrap().unwrap();
    assert_eq!(done.site_name.as_deref(), Some("Two"));
});

// ---- console sessions ----

async fn customer_with_key(store: &Db, name: &str) -> (String, ApiKey) {
    let customer = store.create_customer(name).await.unwrap();
    let key = new_key(store, &customer.id).await;
    (customer.id, key)
}

async fn new_key(store: &Db, customer_id: &str) -> ApiKey {
    let permissions: Permissions = "faults:read".parse().unwrap();
    let (key, _) = NewApiKey::generate(customer_id, "console", permissions, None);
    store.create_api_key(key).await.unwrap()
}

fn session(id_hash: &str, key: &ApiKey, at: Micros) -> ConsoleSession {
    ConsoleSession {
        id_hash: id_hash.to_owned(),
        customer_id: key.customer_id.clone(),
        key_id: key.id.clone(),
        created_at: at,
        last_seen_at: at,
    }
}

async fn open(store: &Db, session: &ConsoleSession) {
    store.create_console_session(session, 0).await.unwrap();
}

async fn session_of(store: &Db, id_hash: &str) -> Option<ConsoleSession> {
    store.console_session(id_hash).await.unwrap().map(|(session, _)| session)
}

conformance_test!(a_console_session_acts_as_its_key_until_it_ends, |store: Db| async move {
    let (a, key) = customer_with_key(&store, "Acme").await;
    let (b, other) = customer_with_key(&store, "Globex").await;
    let s1 = session("hash_1", &key, 1_000);
    open(&store, &s1).await;
    open(&store, &session("hash_2", &other, 1_000)).await;

    let (found, as_key) = store.console_session("hash_1").await.unwrap().expect("the session");
    assert_eq!(found, s1);
    assert_eq!(as_key, key, "the key it acts as, as stored");
    assert_eq!(as_key.customer_id, a);
    let (_, theirs) = store.console_session("hash_2").await.unwrap().unwrap();
    assert_eq!((theirs.id.as_str(), theirs.customer_id.as_str()), (other.id.as_str(), b.as_str()));
    assert!(store.console_session("hash_missing").await.unwrap().is_none());

    // Touched: later only.
    store.touch_console_session("hash_1", 5_000).await.unwrap();
    assert_eq!(session_of(&store, "hash_1").await.unwrap().last_seen_at, 5_000);
    store.touch_console_session("hash_1", 4_000).await.unwrap();
    assert_eq!(session_of(&store, "hash_1").await.unwrap().last_seen_at, 5_000, "never back in time");
    assert_eq!(session_of(&store, "hash_1").await.unwrap().created_at, 1_000);
    store.touch_console_session("hash_missing", 5_000).await.unwrap();
    assert_eq!(session_of(&store, "hash_2").await.unwrap().last_seen_at, 1_000, "only the one touched");

    // Ended: gone, once.
    assert!(store.end_console_session("hash_1").await.unwrap());
    assert!(session_of(&store, "hash_1").await.is_none());
    assert!(!store.end_console_session("hash_1").await.unwrap());
    assert!(!store.end_console_session("hash_missing").await.unwrap());
    assert!(session_of(&store, "hash_2").await.is_some(), "others stay");
});

conformance_test!(revoking_a_key_ends_its_console_sessions, |store: Db| async move {
    let (a, key) = customer_with_key(&store, "Acme").await;
    let second = new_key(&store, &a).await;
    open(&store, &session("hash_1", &key, 1_000)).await;
    open(&store, &session("hash_2", &key, 1_100)).await;
    open(&store, &session("hash_3", &second, 1_200)).await;

    assert!(store.revoke_api_key(&key.id, 2_000).await.unwrap());
    assert!(store.console_session("hash_1").await.unwrap().is_none());
    assert!(store.console_session("hash_2").await.unwrap().is_none());
    let (kept, as_key) = store.console_session("hash_3").await.unwrap().expect("another key's session");
    assert_eq!((kept.key_id.as_str(), as_key.revoked_at), (second.id.as_str(), None));
    // Revoked, the key is still revoked once (its time kept), and has no session.
    assert!(store.revoke_api_key(&key.id, 3_000).await.unwrap());
    let keys = store.list_api_keys(Some(&a)).await.unwrap();
    assert_eq!(keys.iter().find(|k| k.id == key.id).unwrap().revoked_at, Some(2_000));
    assert!(!store.revoke_api_key("key_missing", 3_000).await.unwrap());
    assert!(store.console_session("hash_3").await.unwrap().is_some());
});

conformance_test!(idle_console_sessions_are_removed_when_one_is_created, |store: Db| async move {
    let (_, key) = customer_with_key(&store, "Acme").await;
    open(&store, &session("hash_idle", &key, 100)).await;
    open(&store, &session("hash_touched", &key, 100)).await;
    open(&store, &session("hash_edge", &key, 300)).await;
    open(&store, &session("hash_recent", &key, 500)).await;
    store.touch_console_session("hash_touched", 400).await.unwrap();

    // Idle since before 300: gone with the next session created; at 300 exactly: kept.
    store.create_console_session(&session("hash_new", &key, 1_000), 300).await.unwrap();
    assert!(session_of(&store, "hash_idle").await.is_none());
    for kept in ["hash_touched", "hash_edge", "hash_recent", "hash_new"] {
        assert!(session_of(&store, kept).await.is_some(), "{kept}");
    }
    assert_eq!(session_of(&store, "hash_new").await.unwrap(), session("hash_new", &key, 1_000));
});

fn link(code_hash: &str, key: &ApiKey, expires_at: Micros) -> ConsoleLink {
    ConsoleLink {
        code_hash: code_hash.to_owned(),
        customer_id: key.customer_id.clone(),
        key_id: key.id.clone(),
        created_at: 1_000,
        expires_at,
    }
}

conformance_test!(a_console_link_is_redeemed_once_before_it_expires, |store: Db| async move {
    let (a, key) = customer_with_key(&store, "Acme").await;
    let (b, other) = customer_with_key(&store, "Globex").await;
    store.create_console_link(&link("code_1", &key, 10_000), 0).await.unwrap();
    store.create_console_link(&link("code_2", &key, 10_000), 0).await.unwrap();
    store.create_console_link(&link("code_3", &other, 10_000), 0).await.unwrap();

    assert_eq!(store.redeem_console_link("code_1", 5_000).await.unwrap(), Some((a.clone(), key.id.clone())));
    assert_eq!(store.redeem_console_link("code_1", 5_001).await.unwrap(), None, "used");
    assert_eq!(store.redeem_console_link("code_1", 5_000).await.unwrap(), None, "used, whenever");
    // Expired: at its expiry and after.
    assert_eq!(store.redeem_console_link("code_2", 10_000).await.unwrap(), None);
    assert_eq!(store.redeem_console_link("code_2", 20_000).await.unwrap(), None);
    assert_eq!(store.redeem_console_link("code_missing", 5_000).await.unwrap(), None);
    assert_eq!(store.redeem_console_link("code_3", 9_999).await.unwrap(), Some((b, other.id.clone())));

    // Expired links are removed when one is created; a live one stays usable.
    store.create_console_link(&link("code_4", &key, 50_000), 0).await.unwrap();
    store.create_console_link(&link("code_5", &key, 60_000), 40_000).await.unwrap();
    assert_eq!(store.redeem_console_link("code_4", 45_000).await.unwrap(), Some((a.clone(), key.id.clone())));
    assert_eq!(store.redeem_console_link("code_5", 45_000).await.unwrap(), Some((a, key.id)));
});
