//! The legacy analytics views end to end: `GET /fault/recent` (and `GET /recent`) and
//! `GET /fault/top_faults`: shapes, durations, windows, filters, validation, tenancy and scope.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn ago(micros: i64) -> String {
    faultline_core::time::format_micros(faultline_core::time::now_micros() - micros)
}

/// `POST /fault` of `resource` (in `site`) created `age` ago; returns the fault.
async fn fault_at(app: &TestApp, resource: &str, site: &str, fault_type: &str, age: i64) -> Value {
    let body = json!({"resource_id": resource, "type": fault_type, "severity": "HIGH",
        "message": format!("{resource} down {age}"), "cause": "No keepalive",
        "resource_ancestry_path": format!("{site}|{resource}"), "created_at": ago(age)});
    app.create_fault(body).await
}

/// A fault of `resource` that began `started` ago and was resolved `lasted` later, through
/// event ingest (which takes both times); returns its id.
async fn closed_fault(app: &TestApp, resource: &str, started: i64, lasted: i64) -> String {
    let now = faultline_core::time::now_micros();
    let at = |t: i64| faultline_core::time::format_micros(t);
    let events = json!({"events": [
        {"action": "trigger", "resource_id": resource, "type": "wantunnel", "severity": "CRITICAL",
         "message": format!("{resource} down"), "resource_ancestry_path": format!("site_C|{resource}"),
         "occurred_at": at(now - started)},
        {"action": "resolve", "resource_id": resource, "type": "wantunnel",
         "occurred_at": at(now - started + lasted)}]});
    let r = app.request(Method::POST, "/fault/events").json(&events).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let results: Value = r.json().await.unwrap();
    assert_eq!(results["results"][1]["outcome"], "resolved");
    results["results"][0]["fault_id"].as_str().unwrap().to_owned()
}

/// `GET path` with `credential`: the status, the `Faultline-Has-More` header and the body.
async fn get(app: &TestApp, path: &str, credential: &str) -> (StatusCode, Option<String>, Value) {
    let r = app.client.get(app.url(path)).bearer_auth(credential).send().await.unwrap();
    let more = r.headers().get("faultline-has-more").map(|v| v.to_str().unwrap().to_owned());
    (r.status(), more, r.json().await.unwrap_or(Value::Null))
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect()
}

fn field<'a>(list: &'a Value, name: &str) -> Vec<&'a str> {
    list.as_array().unwrap().iter().map(|f| f[name].as_str().unwrap()).collect()
}

fn assert_legacy_shape(fault: &Value) {
    let mut keys: Vec<&str> = fault.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "cause",
            "created_at",
            "duration",
            "id",
            "message",
            "resolved_at",
            "resource_identifier",
            "severity",
            "site_id",
            "site_name",
            "type"
        ],
        "{fault}"
    );
    let created = fault["created_at"].as_str().unwrap();
    assert!(created.len() == 27 && created.ends_with('Z') && created.as_bytes()[19] == b'.', "{created}");
    assert!(fault["resolved_at"].is_null() || fault["resolved_at"].as_str().unwrap().len() == 27);
    let severity = fault["severity"].as_str().unwrap();
    assert!(["low", "medium", "high", "critical", "warning"].contains(&severity), "{fault}");
}

e2e_test!(the_recent_view_answers_legacy_faults_with_human_durations, |app: TestApp| async move {
    // Unresolved: the duration runs up to now (each age is 20-40 s clear of a minute boundary).
    let days =
        fault_at(&app, "tun_days", "site_A", "wantunnel", 3 * DAY + 4 * HOUR + 10 * MINUTE + 20_000_000)
            .await;
    let minutes = fault_at(&app, "dev_minutes", "site_A", "reboot", 58 * MINUTE + 20_000_000).await;
    let seconds = fault_at(&app, "dev_seconds", "site_B", "reboot", 20_000_000).await;
    // Resolved: the duration is resolved_at - created_at; only the last 24 hours' are recent.
    let hours = closed_fault(&app, "tun_hours", 3 * HOUR, 2 * HOUR + 15 * MINUTE + 30_000_000).await;
    let one_minute = closed_fault(&app, "tun_minute", 23 * HOUR, MINUTE).await;
    let too_old = closed_fault(&app, "tun_old", 25 * HOUR, 10 * MINUTE).await;

    let (status, more, recent) = get(&app, "/fault/recent", &app.key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(more.as_deref(), Some("false"));
    let expected = [
        seconds["id"].as_str().unwrap(),
        minutes["id"].as_str().unwrap(),
        &hours,
        &one_minute,
        days["id"].as_str().unwrap(),
    ];
    assert_eq!(ids(&recent), expected, "newest first; a day-old resolved fault is not recent");
    assert!(!ids(&recent).contains(&too_old.as_str()));
    assert_eq!(
        field(&recent, "duration"),
        ["less than a minute", "58 minutes", "2 hours, 15 minutes", "1 minute", "3 days, 4 hours"]
    );
    for fault in recent.as_array().unwrap() {
        assert_legacy_shape(fault);
    }
    let listed = &recent[1];
    assert_eq!(listed["message"], minutes["message"]);
    assert_eq!(listed["created_at"], minutes["created_at"]);
    assert_eq!(listed["resolved_at"], Value::Null);
    assert_eq!(listed["severity"], "high", "lower case");
    assert_eq!(listed["type"], "reboot");
    assert_eq!(listed["cause"], "No keepalive");
    assert_eq!(listed["site_id"], "site_A");
    assert_eq!(listed["resource_identifier"], "dev_minutes");
    let resolved = app.get_json(&format!("/fault/{hours}"), &app.key).await;
    assert_eq!(recent[2]["resolved_at"], resolved["resolved_at"]);
    assert_eq!(recent[2]["severity"], "critical");
    assert_eq!(recent[2]["site_id"], "site_C");

    // The older path answers the same, and both carry an ETag.
    let r = app.get("/recent").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(r.json::<Value>().await.unwrap(), recent);
    let unchanged = app.get("/fault/recent").header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    app.finish().await;
});

e2e_test!(the_recent_view_filters_bounds_and_validates, |app: TestApp| async move {
    let a1 = fault_at(&app, "tun_1", "site_A", "wantunnel", 5 * HOUR).await;
    let a2 = fault_at(&app, "dev_1", "site_A", "reboot", 4 * HOUR).await;
    let b1 = fault_at(&app, "tun_2", "site_B", "wantunnel", 3 * HOUR).await;
    let b2 = fault_at(&app, "site_B", "site_B", "site", 2 * HOUR).await;
    let id = |f: &Value| f["id"].as_str().unwrap().to_owned();
    let cases = [
        ("", vec![id(&b2), id(&b1), id(&a2), id(&a1)]),
        ("site=site_A", vec![id(&a2), id(&a1)]),
        ("site=dev_1", vec![id(&a2)]),
        ("site=site_A,site_B&type=wantunnel", vec![id(&b1), id(&a1)]),
        ("type=site,reboot", vec![id(&b2), id(&a2)]),
        ("type=site&type=reboot&site=site_B", vec![id(&b2)]),
        ("site=site_Z", vec![]),
        // Parameters this view does not take are ignored, as everywhere.
        ("severity=LOW&status=resolved&unknown=1", vec![id(&b2), id(&b1), id(&a2), id(&a1)]),
    ];
    for (query, expected) in cases {
        let (status, _, list) = get(&app, &format!("/fault/recent?{query}"), &app.key).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(ids(&list), expected, "{query}");
    }

    let (_, more, page) = get(&app, "/fault/recent?limit=3", &app.key).await;
    assert_eq!(ids(&page), [id(&b2), id(&b1), id(&a2)], "the newest `limit`");
    assert_eq!(more.as_deref(), Some("true"));
    let (_, more, page) = get(&app, "/recent?limit=4", &app.key).await;
    assert_eq!(page.as_array().unwrap().len(), 4);
    assert_eq!(more.as_deref(), Some("false"));
    assert_eq!(get(&app, "/fault/recent?limit=1000", &app.key).await.0, StatusCode::OK);

    let long_site = format!("site={}", "s".repeat(256));
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=-5", "limit"),
        (long_site.as_str(), "site"),
        ("site=site%00A", "site"),
        ("type=wan%00tunnel", "type"),
    ] {
        for path in ["/fault/recent", "/recent"] {
            let r = app.get(&format!("{path}?{query}")).send().await.unwrap();
            let err =
                assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid").await;
            assert!(
                err["message"].as_str().unwrap().contains(&format!("'{param}'")),
                "{path}?{query}: {err}"
            );
        }
    }

    let no_read = app.create_key(&app.customer_id, "tokens:write", None).await;
    for path in ["/fault/recent", "/recent", "/fault/top_faults"] {
        let r = app.client.get(app.url(path)).bearer_auth(&no_read).send().await.unwrap();
        assert_error(r, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_error(r, StatusCode::UNAUTHORIZED, "authentication_error", "api_key_missing").await;
    }
    app.finish().await;
});

e2e_test!(top_faults_ranks_resources_by_faults_in_the_window, |app: TestApp| async move {
    for age in [1, 2, 3, 4, 5, 6] {
        fault_at(&app, "dev_3", "site_A", "reboot", age * HOUR).await;
    }
    for resource in ["tun_2", "tun_1"] {
        for age in [10, 11, 12] {
            fault_at(&app, resource, "site_A", "wantunnel", age * HOUR).await;
        }
    }
    // tun_1's newest fault names it.
    let mut named = TestApp::fault_body("tun_1", "wantunnel", "LOW");
    named["message"] = json!("WAN1 to DC-East is down");
    named["resource_ancestry_path"] = json!("site_A|dev_1|tun_1");
    named["created_at"] = json!(ago(9 * HOUR));
    app.create_fault(named).await;
    fault_at(&app, "tun_2", "site_A", "wantunnel", 13 * HOUR).await;
    fault_at(&app, "tun_4", "site_B", "wantunnel", 2 * DAY).await;
    for age in [20, 21, 22] {
        fault_at(&app, "tun_4", "site_B", "wantunnel", age * DAY).await;
    }
    let no_site = json!({"resource_id": "tun_5", "type": "wantunnel", "severity": "LOW",
        "message": "tun_5 down", "created_at": ago(30 * HOUR)});
    app.create_fault(no_site).await;
    // Another customer's faults on the same resources count for nobody else.
    let (_, other) = app.other_customer().await;
    for _ in 0..10 {
        let r = app
            .client
            .post(app.url("/fault"))
            .bearer_auth(&other)
            .json(&TestApp::fault_body("tun_4", "wantunnel", "HIGH"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }

    let counts = |top: &Value| -> Vec<(String, i64)> {
        top.as_array()
            .unwrap()
            .iter()
            .map(|r| (r["resource_id"].as_str().unwrap().to_owned(), r["count"].as_i64().unwrap()))
            .collect()
    };
    let owned = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
        pairs.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect()
    };
    app.store.set_site_name(&app.customer_id, "site_A", Some("Annecy"), 0).await.unwrap();
    let top = app.get_json("/fault/top_faults", &app.key).await;
    assert_eq!(
        counts(&top),
        owned(&[("dev_3", 6), ("tun_1", 4), ("tun_2", 4), ("tun_4", 1), ("tun_5", 1)]),
        "most faults first, ties by resource id; faults older than 14 days do not count"
    );
    for item in top.as_array().unwrap() {
        let mut keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["count", "faults", "resource_id", "site_id", "site_name", "tunnel_name"], "{item}");
        let faults = item["faults"].as_array().unwrap();
        assert_eq!(faults.len() as i64, item["count"].as_i64().unwrap().min(5), "a sample of at most 5");
        let created: Vec<&str> = faults.iter().map(|f| f["created_at"].as_str().unwrap()).collect();
        assert!(created.windows(2).all(|w| w[0] > w[1]), "newest first: {created:?}");
        for fault in faults {
            assert_legacy_shape(fault);
            assert_eq!(fault["resource_identifier"], item["resource_id"]);
        }
        assert_eq!(item["tunnel_name"], faults[0]["message"], "named by its newest fault");
    }
    assert_eq!(top[0]["tunnel_name"], "dev_3 down 3600000000");
    assert_eq!(top[0]["site_id"], "site_A");
    assert_eq!(top[0]["site_name"], "Annecy", "sites show by name");
    assert_eq!(top[0]["faults"][0]["site_name"], "Annecy");
    assert_eq!(top[3]["site_name"], Value::Null, "site_B has no name");
    assert_eq!(top[1]["tunnel_name"], "WAN1 to DC-East is down");
    assert_eq!(top[1]["faults"][0]["severity"], "low");
    assert_eq!(top[3]["site_id"], "site_B");
    assert_eq!(top[4]["site_id"], Value::Null, "a resource outside any site");

    let first_two = app.get_json("/fault/top_faults?limit=2", &app.key).await;
    assert_eq!(counts(&first_two), owned(&[("dev_3", 6), ("tun_1", 4)]));
    let month = app.get_json("/fault/top_faults?days=30", &app.key).await;
    assert_eq!(
        counts(&month),
        owned(&[("dev_3", 6), ("tun_1", 4), ("tun_2", 4), ("tun_4", 4), ("tun_5", 1)])
    );
    let today = app.get_json("/fault/top_faults?days=1&limit=100", &app.key).await;
    assert_eq!(counts(&today), owned(&[("dev_3", 6), ("tun_1", 4), ("tun_2", 4)]));
    let theirs = app.get_json("/fault/top_faults?days=90", &other).await;
    assert_eq!(counts(&theirs), owned(&[("tun_4", 10)]), "only the caller's own faults count");

    for (query, param) in [
        ("days=0", "days"),
        ("days=91", "days"),
        ("days=two", "days"),
        ("days=", "days"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=1.5", "limit"),
    ] {
        let r = app.get(&format!("/fault/top_faults?{query}")).send().await.unwrap();
        let err =
            assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid").await;
        assert!(err["message"].as_str().unwrap().contains(&format!("'{param}'")), "{query}: {err}");
    }
    app.finish().await;
});

e2e_test!(access_tokens_see_only_their_scope_in_both_views, |app: TestApp| async move {
    let a1 = fault_at(&app, "tun_1", "site_A", "wantunnel", HOUR).await;
    let a2 = fault_at(&app, "dev_1", "site_A", "reboot", 2 * HOUR).await;
    fault_at(&app, "tun_1", "site_B", "wantunnel", 3 * HOUR).await; // the same resource, another site
    fault_at(&app, "tun_2", "site_B", "wantunnel", 4 * HOUR).await;
    fault_at(&app, "tun_2", "site_B", "wantunnel", 5 * HOUR).await;

    let site_a = crate::tokens::mint(&app, json!({"expire_after_minutes": 5, "site_ids": ["site_A"]})).await;
    let site_a = site_a["token"].as_str().unwrap().to_owned();
    for path in ["/fault/recent", "/recent"] {
        let (status, _, recent) = get(&app, path, &site_a).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids(&recent), [a1["id"].as_str().unwrap(), a2["id"].as_str().unwrap()]);
    }
    assert_eq!(get(&app, "/fault/recent?site=site_B", &site_a).await.2, json!([]), "filters only narrow");
    let (_, _, top) = get(&app, "/fault/top_faults", &site_a).await;
    let ranked: Vec<(&str, i64)> = top
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["resource_id"].as_str().unwrap(), r["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(ranked, [("dev_1", 1), ("tun_1", 1)], "only the scope's faults count");
    assert_eq!(top[1]["faults"][0]["id"], a1["id"]);

    let tunnels = crate::tokens::mint(&app, json!({"expire_after_minutes": 5, "type": ["wantunnel"]})).await;
    let tunnels = tunnels["token"].as_str().unwrap().to_owned();
    let (_, _, recent) = get(&app, "/fault/recent", &tunnels).await;
    assert_eq!(recent.as_array().unwrap().len(), 4);
    assert!(field(&recent, "type").iter().all(|t| *t == "wantunnel"));
    let (_, _, top) = get(&app, "/fault/top_faults", &tunnels).await;
    assert_eq!(top.as_array().unwrap().len(), 2);
    assert_eq!((top[0]["resource_id"].as_str(), top[0]["count"].as_i64()), (Some("tun_1"), Some(2)));

    let (_, other) = app.other_customer().await;
    assert_eq!(get(&app, "/fault/recent", &other).await.2, json!([]));
    assert_eq!(get(&app, "/fault/top_faults", &other).await.2, json!([]));
    app.finish().await;
});
