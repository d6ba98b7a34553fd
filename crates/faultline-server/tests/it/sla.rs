//! `GET /fault/sla` against downtime computed by hand: merged and clipped outages, open
//! outages, business hours in a time zone, CSV, tenancy.

use faultline_core::fault::{Fault, FaultStatus, NewFault, Severity};
use faultline_core::time::parse_rfc3339;
use reqwest::StatusCode;
use serde_json::Value;

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

/// A fault of type `fault_type` on `site` from `start` to `end` (open without one).
fn outage(customer_id: &str, site: &str, fault_type: &str, start: &str, end: Option<&str>) -> Fault {
    let created_at = parse_rfc3339(start).unwrap();
    let new = NewFault {
        resource_id: site.into(),
        fault_type: fault_type.into(),
        severity: Severity::Critical,
        message: format!("{site} offline"),
        cause: String::new(),
        microservice_id: String::new(),
        resource_ancestry_path: site.into(),
        created_at: Some(created_at),
    };
    let mut f = Fault::create(customer_id, new, created_at, 400 * 86_400);
    if let Some(end) = end {
        f.status = FaultStatus::Resolved;
        f.resolved_at = Some(parse_rfc3339(end).unwrap());
    }
    f
}

const DAY: &str = "from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z";

e2e_test!(downtime_is_the_union_of_outages_clipped_to_the_window, |app: TestApp| async move {
    let c = app.customer_id.clone();
    let faults = vec![
        // site_a: [01:00, 02:00) and [01:30, 03:00) merge into 2 h; 30 min of one that began
        // the day before. 9,000 s down of 86,400.
        outage(&c, "site_a", "site", "2026-10-01T01:00:00Z", Some("2026-10-01T02:00:00Z")),
        outage(&c, "site_a", "site", "2026-10-01T01:30:00Z", Some("2026-10-01T03:00:00Z")),
        outage(&c, "site_a", "site", "2026-09-30T23:00:00Z", Some("2026-10-01T00:30:00Z")),
        // site_b: still open since 23:00, so down until the window's end.
        outage(&c, "site_b", "site", "2026-10-01T23:00:00Z", None),
        // site_d: 14:00-16:00 (15:00 Berlin business hours end at 15:00Z).
        outage(&c, "site_d", "site", "2026-10-01T14:00:00Z", Some("2026-10-01T16:00:00Z")),
        // Not outages: another type, and a site fault outside the window.
        outage(&c, "site_c", "wantunnel", "2026-10-01T05:00:00Z", Some("2026-10-01T06:00:00Z")),
        outage(&c, "site_e", "site", "2026-10-03T05:00:00Z", Some("2026-10-03T06:00:00Z")),
    ];
    app.store.insert_faults(&faults, "test", None).await.unwrap();
    let (other, other_key) = app.other_customer().await;
    let foreign = vec![outage(&other, "site_z", "site", "2026-10-01T05:00:00Z", None)];
    app.store.insert_faults(&foreign, "test", None).await.unwrap();
    // site_a has a name; the others show by id.
    app.store.set_site_name(&c, "site_a", Some("Lyon, Gerland"), 0).await.unwrap();

    let body = app.get_json(&format!("/fault/sla?{DAY}&target=99.9"), &app.key).await;
    let sites: Vec<&str> =
        body["data"].as_array().unwrap().iter().map(|s| s["site_id"].as_str().unwrap()).collect();
    assert_eq!(sites, ["site_a", "site_d", "site_b"], "lowest uptime first, only site outages");
    let a = &body["data"][0];
    assert_eq!(a["downtime_seconds"], 9000.0);
    assert_eq!(a["outage_count"], 2);
    assert!((a["uptime_percent"].as_f64().unwrap() - 100.0 * 77_400.0 / 86_400.0).abs() < 1e-9);
    assert_eq!(a["breached"], true);
    assert_eq!(a["measured_seconds"], 86_400.0);
    assert_eq!(a["site_name"], "Lyon, Gerland");
    assert_eq!(body["data"][1]["site_name"], Value::Null);
    assert_eq!(body["data"][2]["downtime_seconds"], 3600.0, "an open outage counts to the window's end");
    assert_eq!(body["target"], 99.9);

    // Business hours: Thursday 1 October, 08:00-17:00 CEST is 06:00-15:00Z (32,400 s).
    let hours = app
        .get_json(
            &format!("/fault/sla?{DAY}&hours=mon-fri%2008:00-17:00&tz=Europe/Berlin&site=site_a,site_d"),
            &app.key,
        )
        .await;
    assert_eq!(hours["hours"], "mon-fri 08:00-17:00");
    let by_site =
        |id: &str| hours["data"].as_array().unwrap().iter().find(|s| s["site_id"] == id).unwrap().clone();
    let a = by_site("site_a");
    assert_eq!(
        (a["downtime_seconds"].as_f64(), a["outage_count"].as_u64()),
        (Some(0.0), Some(0)),
        "at night"
    );
    assert_eq!(a["measured_seconds"], 32_400.0);
    let d = by_site("site_d");
    assert_eq!(d["downtime_seconds"], 3600.0);
    assert!((d["uptime_percent"].as_f64().unwrap() - 100.0 * 28_800.0 / 32_400.0).abs() < 1e-9);
    assert_eq!(hours["data"].as_array().unwrap().len(), 2, "site= limits the report");

    // CSV, read back.
    let csv = app.get(&format!("/fault/sla?{DAY}")).header("Accept", "text/csv").send().await.unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "site_id,uptime_percent,downtime_seconds,outage_count,breached,measured_seconds,site_name"
    );
    assert_eq!(lines.len(), 4);
    assert!(
        lines[1].starts_with("site_a,") && lines[1].ends_with(",9000,2,true,86400,\"Lyon, Gerland\""),
        "{}",
        lines[1]
    );

    // Another customer sees only its own site.
    let theirs = app.get_json(&format!("/fault/sla?{DAY}"), &other_key).await;
    let sites: Vec<&str> =
        theirs["data"].as_array().unwrap().iter().map(|s| s["site_id"].as_str().unwrap()).collect();
    assert_eq!(sites, ["site_z"]);
    app.finish().await;
});

e2e_test!(a_token_sees_only_the_sites_of_its_scope, |app: TestApp| async move {
    let c = app.customer_id.clone();
    let faults = vec![
        outage(&c, "site_a", "site", "2026-10-01T01:00:00Z", Some("2026-10-01T02:00:00Z")),
        outage(&c, "site_b", "site", "2026-10-01T01:00:00Z", Some("2026-10-01T02:00:00Z")),
    ];
    app.store.insert_faults(&faults, "test", None).await.unwrap();
    let token =
        crate::tokens::mint(&app, serde_json::json!({"expire_after_minutes": 30, "site_ids": ["site_b"]}))
            .await;
    let body: Value = app.get_json(&format!("/fault/sla?{DAY}"), token["token"].as_str().unwrap()).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["site_id"], "site_b");
    app.finish().await;
});

e2e_test!(malformed_sla_parameters_answer_400_naming_them, |app: TestApp| async move {
    for (query, name) in [
        ("target=101", "target"),
        ("target=high", "target"),
        ("hours=weekdays", "hours"),
        ("hours=mon-fri%2017:00-08:00", "hours"),
        ("tz=Nowhere/Land", "tz"),
        ("from=2026-10-02T00:00:00Z&to=2026-10-01T00:00:00Z", "from"),
        ("from=2020-01-01T00:00:00Z&to=2026-10-01T00:00:00Z", "from"),
    ] {
        let response = app.get(&format!("/fault/sla?{query}")).send().await.unwrap();
        let err =
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid")
                .await;
        assert!(err["message"].as_str().unwrap().contains(&format!("'{name}'")), "{query}: {err}");
    }
    app.finish().await;
});
