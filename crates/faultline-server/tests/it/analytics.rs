//! `GET /fault/analytics` against figures computed by hand: local-day buckets across a DST
//! change, groups, repair-time percentiles, the previous period, validation, tenancy and scope.

use faultline_core::fault::{Fault, FaultStatus, NewFault, Severity};
use faultline_core::time::parse_rfc3339;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

fn at(text: &str) -> i64 {
    parse_rfc3339(text).unwrap()
}

/// A fault of `customer_id` created at `created` (RFC 3339), resolved `repair_seconds` later
/// when given.
fn fault(customer_id: &str, created: &str, severity: Severity, repair_seconds: Option<i64>) -> Fault {
    let created_at = at(created);
    let new = NewFault {
        resource_id: "tun_1".into(),
        fault_type: "wantunnel".into(),
        severity,
        message: "WAN tunnel down".into(),
        cause: String::new(),
        microservice_id: String::new(),
        resource_ancestry_path: "site_a|dev_a|tun_1".into(),
        created_at: Some(created_at),
    };
    let mut f = Fault::create(customer_id, new, created_at, 400 * 86_400);
    if let Some(seconds) = repair_seconds {
        f.status = FaultStatus::Resolved;
        f.resolved_at = Some(created_at + seconds * 1_000_000);
    }
    f
}

async fn analytics(app: &TestApp, query: &str, key: &str) -> Value {
    app.get_json(&format!("/fault/analytics?{query}"), key).await
}

// Europe/Berlin leaves summer time on 2026-10-25 at 03:00 CEST (01:00Z): that day lasts 25 h.
const WINDOW: &str = "from=2026-10-23T22:00:00Z&to=2026-10-26T23:00:00Z&tz=Europe/Berlin";

e2e_test!(day_buckets_follow_local_midnight_across_a_dst_change, |app: TestApp| async move {
    let c = app.customer_id.clone();
    let faults = vec![
        fault(&c, "2026-10-23T22:00:00Z", Severity::High, Some(60)), // Oct 24 00:00 local
        fault(&c, "2026-10-24T21:59:59Z", Severity::Low, None),      // Oct 24 23:59:59
        fault(&c, "2026-10-24T22:00:00Z", Severity::High, Some(120)), // Oct 25 00:00 CEST
        fault(&c, "2026-10-25T22:30:00Z", Severity::High, Some(300)), // Oct 25 23:30 CET
        fault(&c, "2026-10-25T23:00:00Z", Severity::Critical, None), // Oct 26 00:00 CET
        fault(&c, "2026-10-26T22:59:59Z", Severity::Low, None),      // Oct 26 23:59:59
        fault(&c, "2026-10-26T23:00:00Z", Severity::Low, None),      // after the window
        // The previous period (3 days before): two faults, one repaired in 30 s.
        fault(&c, "2026-10-21T12:00:00Z", Severity::High, Some(30)),
        fault(&c, "2026-10-22T12:00:00Z", Severity::Low, None),
    ];
    app.store.insert_faults(&faults, "test", None).await.unwrap();

    let body = analytics(&app, &format!("{WINDOW}&interval=day&group_by=severity"), &app.key).await;
    let starts: Vec<&str> =
        body["buckets"].as_array().unwrap().iter().map(|b| b["start"].as_str().unwrap()).collect();
    assert_eq!(
        starts,
        ["2026-10-23T22:00:00.000000Z", "2026-10-24T22:00:00.000000Z", "2026-10-25T23:00:00.000000Z"],
        "local midnights; the 25th lasts 25 hours"
    );
    let counts: Vec<i64> =
        body["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_i64().unwrap()).collect();
    assert_eq!(counts, [2, 2, 2]);
    assert_eq!(body["buckets"][1]["groups"], json!({"HIGH": 2}));
    assert_eq!(body["buckets"][2]["groups"], json!({"CRITICAL": 1, "LOW": 1}));
    assert_eq!(body["totals"]["count"], 6);
    assert_eq!(body["totals"]["groups"], json!({"CRITICAL": 1, "HIGH": 3, "LOW": 2}));
    // Repairs of 60, 120 and 300 s: mean 160, median 120, p90 120 + 0.8 × 180 = 264.
    let ttr = &body["totals"]["time_to_resolve"];
    assert_eq!(ttr["count"], 3);
    assert_eq!(ttr["mean_seconds"], 160.0);
    assert_eq!(ttr["median_seconds"], 120.0);
    assert!((ttr["p90_seconds"].as_f64().unwrap() - 264.0).abs() < 1e-9, "{ttr}");
    // Open now: every unresolved fault of the filter, whenever it started.
    assert_eq!(body["open_now"], 5);
    assert_eq!(body["previous"]["from"], "2026-10-20T21:00:00.000000Z");
    assert_eq!(body["previous"]["count"], 2);
    assert_eq!(body["previous"]["time_to_resolve"]["median_seconds"], 30.0);
    assert_eq!(body["change"]["count"], json!({"absolute": 4.0, "percent": 200.0}));
    assert_eq!(body["change"]["mean_seconds"]["absolute"], 130.0);

    // Hour buckets: the repeated 02:00 of the 25th is two buckets, so the day has 25.
    let hours = analytics(
        &app,
        "from=2026-10-24T22:00:00Z&to=2026-10-25T23:00:00Z&tz=Europe/Berlin&interval=hour",
        &app.key,
    )
    .await;
    assert_eq!(hours["buckets"].as_array().unwrap().len(), 25);
    assert!(hours.get("group_by").is_some_and(Value::is_null));
    assert!(hours["buckets"][0].get("groups").is_none());
    app.finish().await;
});

e2e_test!(analytics_count_only_what_the_credential_may_see, |app: TestApp| async move {
    let c = app.customer_id.clone();
    let faults = vec![
        fault(&c, "2026-10-24T10:00:00Z", Severity::High, None),
        fault(&c, "2026-10-24T11:00:00Z", Severity::Low, None),
    ];
    app.store.insert_faults(&faults, "test", None).await.unwrap();
    let (other_customer, other_key) = app.other_customer().await;
    let foreign = vec![fault(&other_customer, "2026-10-24T10:30:00Z", Severity::High, None)];
    app.store.insert_faults(&foreign, "test", None).await.unwrap();

    let mine = analytics(&app, WINDOW, &app.key).await;
    assert_eq!(mine["totals"]["count"], 2);
    let theirs = analytics(&app, WINDOW, &other_key).await;
    assert_eq!(theirs["totals"]["count"], 1, "another customer counts only its own");

    let token = crate::tokens::mint(&app, json!({"expire_after_minutes": 30, "severity": ["HIGH"]})).await;
    let scoped =
        analytics(&app, &format!("{WINDOW}&group_by=severity"), token["token"].as_str().unwrap()).await;
    assert_eq!(scoped["totals"]["groups"], json!({"HIGH": 1}), "a token sees only its scope");
    assert_eq!(scoped["open_now"], 1);
    // Filters narrow further.
    let low = analytics(&app, &format!("{WINDOW}&severity=LOW"), &app.key).await;
    assert_eq!(low["totals"]["count"], 1);
    app.finish().await;
});

e2e_test!(malformed_analytics_parameters_answer_400_naming_them, |app: TestApp| async move {
    for (query, name) in [
        ("interval=month", "interval"),
        ("tz=Mars/Olympus_Mons", "tz"),
        ("group_by=colour", "group_by"),
        ("from=2026-10-25T00:00:00Z&to=2026-10-24T00:00:00Z", "from"),
        ("from=2020-01-01T00:00:00Z&to=2026-10-24T00:00:00Z&interval=hour", "interval"),
        ("severity=LOUD", "severity"),
    ] {
        let response = app.get(&format!("/fault/analytics?{query}")).send().await.unwrap();
        let err =
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid")
                .await;
        assert!(err["message"].as_str().unwrap().contains(&format!("'{name}'")), "{query}: {err}");
    }
    app.finish().await;
});
