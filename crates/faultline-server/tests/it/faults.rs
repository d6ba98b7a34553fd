//! The Faults resource end to end: shapes, validation, filters, pagination, ETags, tenancy.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_owned()).collect()
}

fn is_timestamp(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 27
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && s[20..26].bytes().all(|b| b.is_ascii_digit())
}

e2e_test!(a_created_fault_has_every_documented_field, |app: TestApp| async move {
    let body = json!({
        "resource_id": "tun_8a7b", "type": "wantunnel", "severity": "HIGH",
        "message": "WAN1 to DC-East is down", "cause": "No keepalive",
        "microservice_id": "wantunnel-monitor", "resource_ancestry_path": "site_8a7b|dev_2j4k|tun_8a7b"
    });
    let response = app.request(Method::POST, "/fault").json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let fault: Value = response.json().await.unwrap();
    let id = fault["id"].as_str().unwrap();
    assert_eq!(location, format!("/fault/{id}"));
    assert!(
        id.starts_with("flt_") && id.len() == 31 && id[4..].bytes().all(|b| b.is_ascii_alphanumeric()),
        "{id}"
    );
    assert_eq!(fault["customer_id"], app.customer_id.as_str());
    assert_eq!(fault["severity"], "HIGH");
    assert_eq!(fault["status"], "unresolved");
    assert_eq!(fault["resolved_at"], Value::Null);
    assert!(is_timestamp(&fault["created_at"]), "{}", fault["created_at"]);
    assert_eq!(fault["comments"], json!([]));
    assert_eq!(fault["site_id"], "site_8a7b");
    assert_eq!(fault["type"], "wantunnel");
    assert_eq!(fault["cause"], "No keepalive");
    let created = faultline_core::time::parse_rfc3339(fault["created_at"].as_str().unwrap()).unwrap();
    assert_eq!(fault["ttl"].as_i64().unwrap(), created / 1_000_000 + 400 * 86_400);
    for field in [
        "id",
        "resource_id",
        "customer_id",
        "microservice_id",
        "type",
        "status",
        "severity",
        "message",
        "cause",
        "created_at",
        "resolved_at",
        "resource_ancestry_path",
        "ttl",
        "comments",
    ] {
        assert!(fault.get(field).is_some(), "documented field {field} present");
    }

    let read = app.get(&location).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let etag = read.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(read.json::<Value>().await.unwrap(), fault);
    let cached = app.get(&location).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(cached.headers()["etag"].to_str().unwrap(), etag);

    let minimal = app.create_fault(TestApp::fault_body("dev_1", "reboot", "LOW")).await;
    assert_eq!(minimal["microservice_id"], "manual-api-entry");
    assert_eq!(minimal["cause"], "");
    assert_eq!(minimal["resource_ancestry_path"], "dev_1");
    assert_eq!(minimal["site_id"], Value::Null);
    app.finish().await;
});

e2e_test!(back_filled_faults_keep_their_time, |app: TestApp| async move {
    let mut body = TestApp::fault_body("site_1", "site", "CRITICAL");
    body["created_at"] = json!("2026-01-02T03:04:05.123456789+02:00");
    // Only valid while the retention window covers 2026-01-02: the harness clock is real.
    let fault = app.create_fault(body).await;
    assert_eq!(fault["created_at"], "2026-01-02T01:04:05.123456Z");
    assert!(
        fault["id"].as_str().unwrap() < faultline_core::ids::IdKind::Fault.new_id().as_str(),
        "id sorts by time"
    );
    app.finish().await;
});

e2e_test!(invalid_bodies_name_the_parameter, |app: TestApp| async move {
    let post = |body: reqwest::Body, content_type: &'static str| {
        app.request(Method::POST, "/fault").header("content-type", content_type).body(body).send()
    };
    for field in ["resource_id", "type", "severity", "message"] {
        let mut body = TestApp::fault_body("dev_1", "reboot", "LOW");
        body.as_object_mut().unwrap().remove(field);
        let r = post(body.to_string().into(), "application/json").await.unwrap();
        let err =
            assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_missing").await;
        assert!(err["message"].as_str().unwrap().contains(&format!("'{field}'")), "{err}");
    }
    let invalid = [
        ("severity", json!("SEVERE")),
        ("type", json!("Has Spaces")),
        ("message", json!("")),
        ("message", json!("x".repeat(1001))),
        ("resource_id", json!(42)),
        ("cause", json!(["list"])),
        ("resource_ancestry_path", json!("site_1||dev_1")),
        ("created_at", json!("2999-01-01T00:00:00Z")),
        ("created_at", json!("1999-01-01T00:00:00Z")),
        ("created_at", json!("not a time")),
    ];
    for (field, value) in invalid {
        let mut body = TestApp::fault_body("dev_1", "reboot", "LOW");
        body[field] = value.clone();
        let r = post(body.to_string().into(), "application/json").await.unwrap();
        let err =
            assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid").await;
        assert!(err["message"].as_str().unwrap().contains(&format!("'{field}'")), "{field}={value}: {err}");
    }
    let r = post("{\"resource_id\": ".into(), "application/json").await.unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "body_invalid_json").await;
    let r = post("[1, 2]".into(), "application/json").await.unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid").await;
    let r = post("resource_id=x".into(), "application/x-www-form-urlencoded").await.unwrap();
    assert_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request_error", "content_type_unsupported")
        .await;
    let r = post("".into(), "application/json").await.unwrap();
    let err = assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_missing").await;
    assert!(err["message"].as_str().unwrap().contains("'resource_id'"));
    let list: Value = app.get_json("/fault", &app.key).await;
    assert_eq!(list["meta"]["count"], 0, "nothing was stored by a refused request");
    app.finish().await;
});

e2e_test!(deleting_needs_the_permission_and_is_final, |app: TestApp| async move {
    let fault = app.create_fault(TestApp::fault_body("dev_1", "reboot", "LOW")).await;
    let path = format!("/fault/{}", fault["id"].as_str().unwrap());
    let writer = app.create_key(&app.customer_id, "faults:read,faults:write", None).await;
    let denied = app.client.delete(app.url(&path)).bearer_auth(&writer).send().await.unwrap();
    assert_error(denied, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
    assert_eq!(
        app.get(&path).send().await.unwrap().status(),
        StatusCode::OK,
        "a denied delete changes nothing"
    );
    let deleted = app.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(deleted.bytes().await.unwrap().is_empty());
    let gone = app.get(&path).send().await.unwrap();
    assert_error(gone, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    let again = app.request(Method::DELETE, &path).send().await.unwrap();
    assert_error(again, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    app.finish().await;
});

e2e_test!(another_customers_fault_is_indistinguishable_from_a_missing_one, |app: TestApp| async move {
    let fault = app.create_fault(TestApp::fault_body("site_1", "site", "CRITICAL")).await;
    let (_, other_key) = app.other_customer().await;
    let foreign =
        app.client.get(app.url(&format!("/fault/{}", fault["id"].as_str().unwrap()))).bearer_auth(&other_key);
    let foreign = foreign.send().await.unwrap();
    let missing = app.client.get(app.url("/fault/flt_000000000000000000000000000")).bearer_auth(&other_key);
    let missing = missing.send().await.unwrap();
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    assert_eq!(foreign.status(), missing.status());
    assert_eq!(foreign.headers()["content-type"], missing.headers()["content-type"]);
    assert_eq!(foreign.bytes().await.unwrap(), missing.bytes().await.unwrap(), "byte-for-byte the same");
    let theirs: Value = app.get_json("/fault", &other_key).await;
    assert_eq!(theirs["meta"]["count"], 0);
    let filtered: Value = app.get_json("/fault?site=site_1&recent=true", &other_key).await;
    assert_eq!(filtered["meta"]["count"], 0);
    app.finish().await;
});

e2e_test!(every_filter_selects_exactly_its_faults, |app: TestApp| async move {
    let now = faultline_core::time::now_micros();
    let ago = |hours: i64| faultline_core::time::format_micros(now - hours * 3_600_000_000);
    let specs = [
        ("tun_1", "wantunnel", "HIGH", "site_A|dev_1|tun_1", "wantunnel-monitor", "Tunnel WAN1 down", 50),
        ("dev_1", "reboot", "LOW", "site_A|dev_1", "device-agent", "Router rebooted", 40),
        ("site_B", "site", "CRITICAL", "site_B", "heartbeat-monitor", "Site Branch-2 offline", 30),
        ("tun_2", "wan-degradation", "WARNING", "site_B|dev_2|tun_2", "sla-probe", "Packet LOSS 12%", 20),
        (
            "tun_1",
            "wantunnel",
            "CRITICAL",
            "site_A|dev_1|tun_1",
            "wantunnel-monitor",
            "Tunnel WAN1 flapping",
            2,
        ),
    ];
    let mut created = Vec::new();
    for (resource, fault_type, severity, path, service, message, hours) in specs {
        let body = json!({"resource_id": resource, "type": fault_type, "severity": severity,
            "resource_ancestry_path": path, "microservice_id": service, "message": message,
            "cause": "cause", "created_at": ago(hours)});
        created.push(app.create_fault(body).await["id"].as_str().unwrap().to_owned());
    }
    // created[i] is older than created[i+1]; lists are newest first.
    let expect = |indexes: &[usize]| -> Vec<String> {
        let mut v: Vec<String> = indexes.iter().map(|i| created[*i].clone()).collect();
        v.reverse();
        v
    };
    let cases: Vec<(String, Vec<String>)> = vec![
        ("".into(), expect(&[0, 1, 2, 3, 4])),
        ("severity=HIGH,CRITICAL".into(), expect(&[0, 2, 4])),
        ("severity=LOW".into(), expect(&[1])),
        ("type=wantunnel".into(), expect(&[0, 4])),
        ("type=site,reboot".into(), expect(&[1, 2])),
        ("resource_id=tun_1".into(), expect(&[0, 4])),
        ("site=site_A".into(), expect(&[0, 1, 4])),
        ("site=dev_2".into(), expect(&[3])),
        ("site=tun_1".into(), expect(&[0, 4])),
        ("site=site_A,site_B".into(), expect(&[0, 1, 2, 3, 4])),
        ("site=dev_1,tun_1".into(), expect(&[0, 1, 4])),
        ("microservice_id=sla-probe".into(), expect(&[3])),
        ("q=wan1".into(), expect(&[0, 4])),
        ("q=loss".into(), expect(&[3])),
        ("q=100%25".into(), expect(&[])),
        ("status=resolved".into(), expect(&[])),
        ("status=unresolved".into(), expect(&[0, 1, 2, 3, 4])),
        (format!("from={}", ago(35).replace('+', "%2B")), expect(&[2, 3, 4])),
        (format!("to={}", ago(35)), expect(&[0, 1])),
        (format!("from={}&to={}", ago(45), ago(10)), expect(&[1, 2, 3])),
        ("site=site_A&severity=CRITICAL".into(), expect(&[4])),
        ("recent=true".into(), expect(&[0, 1, 2, 3, 4])),
        ("recent=true&status=resolved".into(), expect(&[])),
        ("type=wantunnel&severity=HIGH&site=site_A&q=down".into(), expect(&[0])),
        (format!("from={}&to={}", ago(10), ago(45)), expect(&[])),
    ];
    for (query, expected) in cases {
        let list = app.get_json(&format!("/fault?{query}"), &app.key).await;
        assert_eq!(ids(&list), expected, "filter {query}");
        assert_eq!(list["meta"]["count"], expected.len(), "{query}");
        assert_eq!(list["meta"]["has_more"], false);
        assert_eq!(list["meta"]["cursor"], Value::Null);
    }
    app.finish().await;
});

e2e_test!(malformed_query_parameters_are_named, |app: TestApp| async move {
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("severity=SEVERE", "severity"),
        ("status=open", "status"),
        ("from=yesterday", "from"),
        ("to=2025-13-01T00:00:00Z", "to"),
        ("recent=perhaps", "recent"),
    ] {
        let r = app.get(&format!("/fault?{query}")).send().await.unwrap();
        let err =
            assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid").await;
        assert!(err["message"].as_str().unwrap().contains(&format!("'{param}'")), "{query}: {err}");
    }
    let ok = app.get("/fault?unknown=1&limit=5").send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "unknown parameters are ignored");
    app.finish().await;
});

e2e_test!(a_cursor_walk_returns_each_fault_once_in_order, |app: TestApp| async move {
    let now = faultline_core::time::now_micros();
    let faults: Vec<faultline_core::fault::Fault> = (0..130)
        .map(|i| {
            let new = faultline_core::fault::NewFault {
                resource_id: format!("dev_{}", i % 7),
                fault_type: "reboot".into(),
                severity: faultline_core::fault::Severity::Low,
                message: format!("fault {i}"),
                cause: String::new(),
                microservice_id: "device-agent".into(),
                resource_ancestry_path: format!("site_{}|dev_{}", i % 3, i % 7),
                // Several faults share a timestamp: the id breaks the tie.
                created_at: Some(now - 3_600_000_000 + (i / 3) * 1_000_000),
            };
            faultline_core::fault::Fault::create(&app.customer_id, new, now, 400 * 86_400)
        })
        .collect();
    app.store.insert_faults(&faults, "test", None).await.unwrap();
    let mut expected: Vec<(i64, String)> = faults.iter().map(|f| (f.created_at, f.id.clone())).collect();
    expected.sort();
    expected.reverse();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/fault?limit=7&cursor={c}"),
            None => "/fault?limit=7".to_owned(),
        };
        let page = app.get_json(&path, &app.key).await;
        pages += 1;
        seen.extend(ids(&page));
        // New faults arrive during the walk; they are newer than every cursor position.
        app.create_fault(TestApp::fault_body("dev_new", "reboot", "LOW")).await;
        match page["meta"]["cursor"].as_str() {
            Some(c) => {
                assert_eq!(page["meta"]["has_more"], true);
                cursor = Some(c.to_owned());
            }
            None => {
                assert_eq!(page["meta"]["has_more"], false);
                break;
            }
        }
        assert!(pages < 100, "the walk ends");
    }
    assert_eq!(seen, expected, "every fault that existed when the walk began, once, newest first");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());

    // The same walk, filtered by site, through the ancestry index.
    let first = app.get_json("/fault?site=site_1&limit=5", &app.key).await;
    let cursor = first["meta"]["cursor"].as_str().unwrap().to_owned();
    let second = app.get_json(&format!("/fault?site=site_1&limit=5&cursor={cursor}"), &app.key).await;
    assert_eq!(second["meta"]["count"], 5);
    assert!(ids(&first).iter().all(|id| !ids(&second).contains(id)));

    // A cursor is bound to its filter, its customer, and its bytes.
    let other_filter = app.get(&format!("/fault?site=site_2&limit=5&cursor={cursor}")).send().await.unwrap();
    let err =
        assert_error(other_filter, StatusCode::BAD_REQUEST, "invalid_request_error", "cursor_invalid").await;
    assert!(err["message"].as_str().unwrap().contains("'cursor'"));
    let (_, other_key) = app.other_customer().await;
    let foreign = app
        .client
        .get(app.url(&format!("/fault?site=site_1&cursor={cursor}")))
        .bearer_auth(&other_key)
        .send();
    assert_error(foreign.await.unwrap(), StatusCode::BAD_REQUEST, "invalid_request_error", "cursor_invalid")
        .await;
    let mut tampered = cursor.clone().into_bytes();
    tampered[2] = if tampered[2] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let r = app.get(&format!("/fault?site=site_1&cursor={tampered}")).send().await.unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "cursor_invalid").await;
    // The page size may change between pages.
    let resized = app.get(&format!("/fault?site=site_1&limit=2&cursor={cursor}")).send().await.unwrap();
    assert_eq!(resized.status(), StatusCode::OK);
    app.finish().await;
});

e2e_test!(recent_means_unresolved_or_from_the_last_day, |app: TestApp| async move {
    let now = faultline_core::time::now_micros();
    let mk = |hours: i64, resolved: bool| {
        let new = faultline_core::fault::NewFault {
            resource_id: format!("dev_{hours}"),
            fault_type: "reboot".into(),
            severity: faultline_core::fault::Severity::Low,
            message: "m".into(),
            cause: String::new(),
            microservice_id: "x".into(),
            resource_ancestry_path: format!("dev_{hours}"),
            created_at: Some(now - hours * 3_600_000_000),
        };
        let mut f = faultline_core::fault::Fault::create(&app.customer_id, new, now, 400 * 86_400);
        if resolved {
            f.status = faultline_core::fault::FaultStatus::Resolved;
            f.resolved_at = Some(f.created_at + 60_000_000);
        }
        f
    };
    let old_open = mk(100, false);
    let old_closed = mk(90, true);
    let new_closed = mk(5, true);
    let new_open = mk(1, false);
    app.store
        .insert_faults(&[old_open.clone(), old_closed, new_closed.clone(), new_open.clone()], "test", None)
        .await
        .unwrap();
    let list = app.get_json("/fault?recent=true", &app.key).await;
    assert_eq!(ids(&list), vec![new_open.id.clone(), new_closed.id.clone(), old_open.id.clone()]);
    let first = app.get_json("/fault?recent=true&limit=2", &app.key).await;
    let cursor = first["meta"]["cursor"].as_str().unwrap();
    let rest = app.get_json(&format!("/fault?recent=true&limit=2&cursor={cursor}"), &app.key).await;
    assert_eq!(ids(&rest), vec![old_open.id.clone()]);
    assert_eq!(rest["meta"]["has_more"], false);
    let resolved = app.get_json("/fault?recent=true&status=resolved", &app.key).await;
    assert_eq!(ids(&resolved), vec![new_closed.id.clone()]);
    let listed = app.get_json("/fault?status=resolved", &app.key).await;
    let closed = listed["data"].as_array().unwrap();
    assert_eq!(closed.len(), 2);
    assert!(closed.iter().all(|f| f["status"] == "resolved" && f["resolved_at"].is_string()));
    app.finish().await;
});

e2e_test!(list_answers_carry_an_etag, |app: TestApp| async move {
    app.create_fault(TestApp::fault_body("dev_1", "reboot", "LOW")).await;
    let first = app.get("/fault").send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let same = app.get("/fault").header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(same.status(), StatusCode::NOT_MODIFIED);
    app.create_fault(TestApp::fault_body("dev_2", "reboot", "LOW")).await;
    let changed = app.get("/fault").header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    app.finish().await;
});
