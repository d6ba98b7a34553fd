//! `/sites` end to end: the answer's shape, paging and filters, validation, permissions and
//! tenancy; and the site's name as faults carry it (`site_name`) wherever a fault is shown: the
//! fault JSON, the live stream, the legacy views, the CSV export and the shared dashboard.

use faultline_core::heartbeat::{OfflinePolicy, parse_heartbeats};
use faultline_core::time::{format_micros, now_micros, parse_rfc3339};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};
use crate::stream::SseClient;

const INTERVAL: i64 = 30_000_000;
const POLICY: OfflinePolicy = OfflinePolicy { interval: INTERVAL, misses: 10 };
const RETENTION: i64 = 400 * 86_400;

/// `POST /heartbeat` with customer A's key; the receipt.
async fn beat(app: &TestApp, body: Value) -> Value {
    let r = app.request(Method::POST, "/heartbeat").json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{body}");
    r.json().await.unwrap()
}

/// Heartbeats of customer A written at `at`, as the handler would with that clock.
async fn beat_at(app: &TestApp, body: Value, at: i64) {
    let beats = parse_heartbeats(&body).unwrap();
    app.store.record_heartbeats(&app.customer_id, &beats, at, RETENTION, "test", None).await.unwrap();
}

/// `PUT /sites/{site_id}` with `key`.
async fn put_name(app: &TestApp, key: &str, site_id: &str, body: Value) -> reqwest::Response {
    app.client.put(app.url(&format!("/sites/{site_id}"))).bearer_auth(key).json(&body).send().await.unwrap()
}

/// Name a site with customer A's key; the site as answered.
async fn name(app: &TestApp, site_id: &str, name: Value) -> Value {
    let r = put_name(app, &app.key, site_id, json!({ "name": name })).await;
    assert_eq!(r.status(), StatusCode::OK, "PUT /sites/{site_id} {name}");
    r.json().await.unwrap()
}

/// `GET path` with `key`: status and body.
async fn get(app: &TestApp, path: &str, key: &str) -> (StatusCode, Value) {
    let r = app.client.get(app.url(path)).bearer_auth(key).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

fn site_ids(list: &Value) -> Vec<&str> {
    list["data"].as_array().unwrap().iter().map(|s| s["site_id"].as_str().unwrap()).collect()
}

/// An RFC 3339 UTC timestamp with exactly six fractional digits, as the API writes them.
fn assert_timestamp(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("a timestamp, not {value}"));
    let bytes = text.as_bytes();
    assert!(text.len() == 27 && bytes[10] == b'T' && bytes[19] == b'.' && text.ends_with('Z'), "{text}");
    assert!(bytes[20..26].iter().all(u8::is_ascii_digit), "{text}");
    let micros = parse_rfc3339(text).unwrap();
    assert_eq!(format_micros(micros), text);
}

/// A site object: exactly its fields, each of its type.
fn assert_site_shape(site: &Value) {
    let mut keys: Vec<&str> = site.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "first_seen_at",
            "last_heartbeat_at",
            "name",
            "named_by",
            "offline_since",
            "open_faults",
            "site_id",
            "status"
        ],
        "{site}"
    );
    assert!(site["site_id"].is_string());
    assert!(site["name"].is_null() || site["name"].is_string(), "{site}");
    assert!(["online", "offline", "unknown"].contains(&site["status"].as_str().unwrap()), "{site}");
    let named_by = &site["named_by"];
    assert!(named_by.is_null() || named_by == "heartbeat" || named_by == "operator", "{site}");
    assert_eq!(named_by.is_null(), site["name"].is_null(), "named by someone exactly when named: {site}");
    assert_timestamp(&site["first_seen_at"]);
    for ts in ["last_heartbeat_at", "offline_since"] {
        if !site[ts].is_null() {
            assert_timestamp(&site[ts]);
        }
    }
    assert!(site["open_faults"].as_i64().is_some_and(|n| n >= 0), "{site}");
}

/// A fault of customer A on `resource` in `site`, via `POST /fault`.
async fn fault_in(app: &TestApp, site: &str, resource: &str) -> Value {
    let mut body = TestApp::fault_body(resource, "wantunnel", "HIGH");
    body["resource_ancestry_path"] = json!(format!("{site}|{resource}"));
    app.create_fault(body).await
}

fn id(fault: &Value) -> &str {
    fault["id"].as_str().unwrap()
}

async fn get_fault(app: &TestApp, fault: &Value) -> Value {
    app.get_json(&format!("/fault/{}", id(fault)), &app.key).await
}

/// A token of customer A for every fault, 60 minutes.
async fn token(app: &TestApp) -> Value {
    crate::tokens::mint(app, json!({"expire_after_minutes": 60})).await
}

// ---- the list ----

e2e_test!(sites_are_listed_with_their_status_names_and_open_faults, |app: TestApp| async move {
    assert_eq!(
        app.get_json("/sites", &app.key).await,
        json!({"data": [], "meta": {"count": 0, "cursor": null, "has_more": false}})
    );
    // Lyon named by its heartbeats, Oslo unnamed; both silent long ago, then Lyon back.
    let t0 = now_micros() - 100 * INTERVAL;
    beat_at(
        &app,
        json!({"heartbeats": [{"site_id": "site_lyon", "name": "Lyon"}, {"site_id": "site_oslo"}]}),
        t0,
    )
    .await;
    assert_eq!(
        faultline_server::heartbeats::detect(&*app.store, &POLICY, t0 + 10 * INTERVAL, RETENTION)
            .await
            .unwrap(),
        2
    );
    let receipt = beat(&app, json!({"site_id": "site_lyon", "name": "Lyon Part-Dieu"})).await;
    // Named by an operator, never seen.
    let unknown = name(&app, "site_new", json!("Annecy")).await;
    for resource in ["tun_1", "tun_2"] {
        fault_in(&app, "site_lyon", resource).await;
    }
    let resolved = fault_in(&app, "site_lyon", "tun_3").await;
    let r = app.request(Method::POST, &format!("/fault/{}/resolve", id(&resolved))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let list = app.get_json("/sites", &app.key).await;
    assert_eq!(list["meta"], json!({"count": 3, "cursor": null, "has_more": false}));
    let data = list["data"].as_array().unwrap();
    data.iter().for_each(assert_site_shape);
    assert_eq!(site_ids(&list), ["site_new", "site_lyon", "site_oslo"], "Annecy, Lyon Part-Dieu, site_oslo");
    let (new, lyon, oslo) = (&data[0], &data[1], &data[2]);
    assert_eq!(
        lyon,
        &json!({"site_id": "site_lyon", "name": "Lyon Part-Dieu", "named_by": "heartbeat", "status": "online",
            "last_heartbeat_at": receipt["received_at"], "offline_since": null,
            "first_seen_at": format_micros(t0), "open_faults": 2})
    );
    assert_eq!(
        oslo,
        &json!({"site_id": "site_oslo", "name": null, "named_by": null, "status": "offline",
            "last_heartbeat_at": format_micros(t0), "offline_since": format_micros(t0 + INTERVAL),
            "first_seen_at": format_micros(t0), "open_faults": 1}),
        "its outage is its open fault"
    );
    assert_eq!(new, &unknown);
    assert_eq!(
        (&new["status"], &new["name"], &new["named_by"], &new["last_heartbeat_at"], &new["open_faults"]),
        (&json!("unknown"), &json!("Annecy"), &json!("operator"), &Value::Null, &json!(0))
    );
    // One site: the same object.
    for site in data {
        let one = app.get_json(&format!("/sites/{}", site["site_id"].as_str().unwrap()), &app.key).await;
        assert_eq!(&one, site);
    }
    // A key that may read faults may read sites.
    let reader = app.create_key(&app.customer_id, "faults:read", None).await;
    assert_eq!(app.get_json("/sites", &reader).await, list);
    app.finish().await;
});

e2e_test!(sites_are_paged_by_cursor_bound_to_their_filter, |app: TestApp| async move {
    // 7 sites: named alike, unnamed, and named like another's id.
    beat(
        &app,
        json!({"heartbeats": [
            {"site_id": "site_b", "name": "Alpha"}, {"site_id": "site_a", "name": "Alpha"},
            {"site_id": "site_c"}, {"site_id": "site_d", "name": "site_c"}, {"site_id": "site_e", "name": "Bravo"},
            {"site_id": "site_f"}, {"site_id": "site_g", "name": "Zulu"}]}),
    )
    .await;
    let all = app.get_json("/sites?limit=100", &app.key).await;
    let expected = ["site_a", "site_b", "site_e", "site_g", "site_c", "site_d", "site_f"];
    assert_eq!(site_ids(&all), expected, "by label, then id");
    assert_eq!(site_ids(&app.get_json("/sites", &app.key).await), expected, "50 by default");

    for limit in [1, 2, 3] {
        let (mut seen, mut path, mut pages) = (Vec::new(), format!("/sites?limit={limit}"), 0);
        loop {
            let page = app.get_json(&path, &app.key).await;
            pages += 1;
            let count = page["data"].as_array().unwrap().len();
            assert_eq!(page["meta"]["count"], count);
            seen.extend(site_ids(&page).into_iter().map(str::to_owned));
            let Some(cursor) = page["meta"]["cursor"].as_str() else {
                assert_eq!(page["meta"]["has_more"], false);
                break;
            };
            assert_eq!((page["meta"]["has_more"].as_bool(), count), (Some(true), limit));
            path = format!("/sites?limit={limit}&cursor={cursor}");
            assert!(pages < 20, "the cursor moves on");
        }
        assert_eq!(seen, expected, "limit {limit}: no gaps, no duplicates");
        assert_eq!(pages, expected.len().div_ceil(limit), "limit {limit}: the last page says so");
    }

    // A cursor is for its filter (not its limit), and its customer.
    let first = app.get_json("/sites?limit=2&status=online", &app.key).await;
    let cursor = first["meta"]["cursor"].as_str().unwrap().to_owned();
    let next = app.get_json(&format!("/sites?limit=5&status=online&cursor={cursor}"), &app.key).await;
    assert_eq!(site_ids(&next), &expected[2..]);
    let (_, other) = app.other_customer().await;
    for path in [
        format!("/sites?cursor={cursor}"),
        format!("/sites?limit=2&status=online,offline&cursor={cursor}"),
        format!("/sites?limit=2&status=online&q=site&cursor={cursor}"),
        format!("/sites?limit=2&status=online&cursor={cursor}x"),
        "/sites?cursor=garbage".to_owned(),
    ] {
        let r = app.get(&path).send().await.unwrap();
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "cursor_invalid").await;
    }
    let r =
        app.client.get(app.url(&format!("/sites?limit=2&status=online&cursor={cursor}"))).bearer_auth(&other);
    assert_error(r.send().await.unwrap(), StatusCode::BAD_REQUEST, "invalid_request_error", "cursor_invalid")
        .await;
    // The same filter written another way is the same filter.
    let q_first = app.get_json("/sites?limit=1&q=ALPHA", &app.key).await;
    let q_cursor = q_first["meta"]["cursor"].as_str().unwrap();
    let q_next = app.get_json(&format!("/sites?q=ALPHA&cursor={q_cursor}"), &app.key).await;
    assert_eq!((site_ids(&q_first), site_ids(&q_next)), (vec!["site_a"], vec!["site_b"]));
    let s_first = app.get_json("/sites?limit=1&status=offline,online", &app.key).await;
    let s_cursor = s_first["meta"]["cursor"].as_str().unwrap();
    let s_next =
        app.get_json(&format!("/sites?limit=1&status=online,offline&cursor={s_cursor}"), &app.key).await;
    assert_eq!(site_ids(&s_next), ["site_b"]);
    app.finish().await;
});

e2e_test!(paging_passes_sites_with_the_longest_names, |app: TestApp| async move {
    // Pages that end on sites with the longest names and ids the API takes: 200 characters of
    // a name in Cyrillic (400 bytes), of one in Japanese (600 bytes), and a 255-character id.
    let cyrillic = "Ж".repeat(200);
    let japanese = "東".repeat(200);
    let long_id = format!("site_{}", "x".repeat(250));
    name(&app, "site_1", json!("A")).await;
    name(&app, "site_2", json!(cyrillic)).await;
    name(&app, &long_id, json!("B".repeat(200))).await;
    name(&app, "site_3", json!(japanese)).await;
    name(&app, "site_4", json!("ü")).await;
    let expected = ["site_1", long_id.as_str(), "site_4", "site_2", "site_3"];
    assert_eq!(site_ids(&app.get_json("/sites", &app.key).await), expected, "in byte order");
    let (mut seen, mut path) = (Vec::new(), "/sites?limit=1".to_owned());
    for _ in 0..expected.len() {
        let r = app.get(&path).send().await.unwrap();
        let status = r.status();
        let page: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "after {seen:?}: {page}");
        seen.extend(site_ids(&page).into_iter().map(str::to_owned));
        let Some(cursor) = page["meta"]["cursor"].as_str() else { break };
        path = format!("/sites?limit=1&cursor={cursor}");
    }
    assert_eq!(seen, expected, "every site, one a page");
    app.finish().await;
});

e2e_test!(sites_are_filtered_by_status_and_text, |app: TestApp| async move {
    let t0 = now_micros() - 100 * INTERVAL;
    beat_at(&app, json!({"heartbeats": [{"site_id": "site_down", "name": "Down 50%"}]}), t0).await;
    faultline_server::heartbeats::detect(&*app.store, &POLICY, t0 + 10 * INTERVAL, RETENTION).await.unwrap();
    beat(&app, json!({"heartbeats": [{"site_id": "site_up", "name": "LYON Up"}, {"site_id": "site_lyon"}]}))
        .await;
    name(&app, "site_unseen", json!("Under_score")).await;

    for (query, expected) in [
        ("status=online", vec!["site_up", "site_lyon"]),
        ("status=offline", vec!["site_down"]),
        ("status=unknown", vec!["site_unseen"]),
        ("status=unknown,offline", vec!["site_down", "site_unseen"]),
        ("status=unknown&status=offline", vec!["site_down", "site_unseen"]),
        ("status=online,offline,unknown", vec!["site_down", "site_up", "site_unseen", "site_lyon"]),
        ("q=lyon", vec!["site_up", "site_lyon"]),
        ("q=Lyon&status=offline", vec![]),
        ("q=SITE_LY", vec!["site_lyon"]),
        ("q=50%25", vec!["site_down"]),
        ("q=r_s", vec!["site_unseen"]),
        ("q=wn_5", vec![]),
        ("q=%25", vec!["site_down"]),
        ("q=", vec!["site_down", "site_up", "site_unseen", "site_lyon"]),
        ("q=nowhere", vec![]),
    ] {
        let list = app.get_json(&format!("/sites?{query}"), &app.key).await;
        assert_eq!(site_ids(&list), expected, "{query}");
        for site in list["data"].as_array().unwrap() {
            assert_site_shape(site);
        }
    }
    let offline = app.get_json("/sites?status=offline", &app.key).await;
    assert_eq!(offline["data"][0]["status"], "offline");
    assert_eq!(app.get_json("/sites?status=unknown", &app.key).await["data"][0]["status"], "unknown");
    assert_eq!(app.get_json("/sites?status=online", &app.key).await["data"][0]["status"], "online");
    app.finish().await;
});

e2e_test!(bad_list_parameters_are_refused, |app: TestApp| async move {
    let long_q = format!("q={}", "a".repeat(201));
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("status=asleep", "status"),
        ("status=online,asleep", "status"),
        ("status=ONLINE", "status"),
        (long_q.as_str(), "q"),
    ] {
        let r = app.get(&format!("/sites?{query}")).send().await.unwrap();
        let err =
            assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid").await;
        assert!(err["message"].as_str().unwrap().contains(&format!("'{param}'")), "{query}: {err}");
    }
    assert_eq!(app.get("/sites?limit=100").send().await.unwrap().status(), StatusCode::OK);
    // Unknown parameters are ignored, as on every list.
    assert_eq!(app.get("/sites?sort=name").send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.get("/sites?limit=1").send().await.unwrap().status(), StatusCode::OK);
    let q200 = format!("/sites?q={}", "a".repeat(200));
    assert_eq!(app.get(&q200).send().await.unwrap().status(), StatusCode::OK);
    let r = app.client.get(app.url("/sites")).send().await.unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "authentication_error", "api_key_missing").await;
    app.finish().await;
});

// ---- one site, naming ----

e2e_test!(a_site_is_read_and_named_by_its_customer_only, |app: TestApp| async move {
    beat(&app, json!({"site_id": "site_1", "name": "Beat One"})).await;
    let (_, other) = app.other_customer().await;
    let r = app
        .client
        .post(app.url("/heartbeat"))
        .bearer_auth(&other)
        .json(&json!({"site_id": "site_b", "name": "Theirs"}));
    assert_eq!(r.send().await.unwrap().status(), StatusCode::OK);
    let r = app
        .client
        .post(app.url("/heartbeat"))
        .bearer_auth(&other)
        .json(&json!({"site_id": "site_1", "name": "Their One"}));
    assert_eq!(r.send().await.unwrap().status(), StatusCode::OK);

    for path in ["/sites/site_b", "/sites/site_missing"] {
        let r = app.get(path).send().await.unwrap();
        assert_error(r, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    }
    assert_eq!(site_ids(&app.get_json("/sites", &app.key).await), ["site_1"]);
    assert_eq!(app.get_json("/sites/site_1", &app.key).await["name"], "Beat One");
    assert_eq!(app.get_json("/sites/site_1", &other).await["name"], "Their One");
    // A's name for A's site_1; B's stays B's.
    let named = name(&app, "site_1", json!("Ops One")).await;
    assert_site_shape(&named);
    assert_eq!(
        (&named["name"], &named["named_by"], &named["status"]),
        (&json!("Ops One"), &json!("operator"), &json!("online"))
    );
    assert_eq!(app.get_json("/sites/site_1", &app.key).await, named);
    assert_eq!(app.get_json("/sites/site_1", &other).await["name"], "Their One");
    // Naming an id another customer uses makes a site of A's own, unknown; theirs is unchanged.
    let mine = name(&app, "site_b", json!("Mine")).await;
    assert_eq!((&mine["status"], &mine["name"]), (&json!("unknown"), &json!("Mine")));
    let theirs = app.get_json("/sites/site_b", &other).await;
    assert_eq!(
        (&theirs["status"], &theirs["name"], &theirs["named_by"]),
        (&json!("online"), &json!("Theirs"), &json!("heartbeat"))
    );
    assert_eq!(site_ids(&app.get_json("/sites", &other).await), ["site_1", "site_b"], "Their One, Theirs");
    app.finish().await;
});

e2e_test!(an_operator_name_wins_over_heartbeats_until_cleared, |app: TestApp| async move {
    beat(&app, json!({"site_id": "site_1", "name": "Beat One"})).await;
    let fault = fault_in(&app, "site_1", "tun_1").await;
    assert_eq!(get_fault(&app, &fault).await["site_name"], "Beat One", "a heartbeat's name shows");
    assert_eq!(app.get_json("/sites/site_1", &app.key).await["named_by"], "heartbeat");

    name(&app, "site_1", json!("Ops One")).await;
    beat(&app, json!({"site_id": "site_1", "name": "Beat Two"})).await;
    let site = app.get_json("/sites/site_1", &app.key).await;
    assert_eq!(
        (&site["name"], &site["named_by"]),
        (&json!("Ops One"), &json!("operator")),
        "the operator's name wins"
    );
    assert_eq!(get_fault(&app, &fault).await["site_name"], "Ops One");

    // Cleared: no name, until a heartbeat sends one.
    let cleared = name(&app, "site_1", Value::Null).await;
    assert_eq!(
        (&cleared["name"], &cleared["named_by"], &cleared["status"]),
        (&Value::Null, &Value::Null, &json!("online"))
    );
    assert_eq!(get_fault(&app, &fault).await["site_name"], Value::Null);
    beat(&app, json!({"site_id": "site_1", "name": "Beat Three"})).await;
    let site = app.get_json("/sites/site_1", &app.key).await;
    assert_eq!((&site["name"], &site["named_by"]), (&json!("Beat Three"), &json!("heartbeat")));
    assert_eq!(get_fault(&app, &fault).await["site_name"], "Beat Three");

    // A site named before any heartbeat: unknown, then online with its first, keeping its name.
    let unseen = name(&app, "site_2", json!("Ops Two")).await;
    assert_eq!((&unseen["status"], &unseen["last_heartbeat_at"]), (&json!("unknown"), &Value::Null));
    let receipt = beat(&app, json!({"site_id": "site_2", "name": "Beat Two"})).await;
    let seen = app.get_json("/sites/site_2", &app.key).await;
    assert_eq!((&seen["status"], &seen["name"]), (&json!("online"), &json!("Ops Two")));
    assert_eq!(seen["last_heartbeat_at"], receipt["received_at"]);
    assert_eq!(seen["first_seen_at"], unseen["first_seen_at"]);
    // Clearing the name of a site never seen creates nothing.
    let r = put_name(&app, &app.key, "site_never", json!({"name": null})).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    assert_eq!(get(&app, "/sites/site_never", &app.key).await.0, StatusCode::NOT_FOUND);
    app.finish().await;
});

e2e_test!(naming_a_site_is_validated, |app: TestApp| async move {
    let longest = "n".repeat(200);
    let too_long = "n".repeat(201);
    for (body, param) in [
        (json!({"name": ""}), "name"),
        (json!({"name": too_long}), "name"),
        (json!({"name": 3}), "name"),
        (json!({"name": ["a"]}), "name"),
        (json!({"name": {"text": "a"}}), "name"),
        (json!({"name": true}), "name"),
        (json!({"name": "Lyon", "colour": "red"}), "colour"),
        (json!({"site_id": "site_2", "name": "Lyon"}), "site_id"),
        (json!({}), "name"),
        (json!(["Lyon"]), "body"),
        (json!("Lyon"), "body"),
    ] {
        let r = put_name(&app, &app.key, "site_1", body.clone()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let err: Value = r.json().await.unwrap();
        assert!(err["code"] == "parameter_invalid" || err["code"] == "parameter_missing", "{body}: {err}");
        assert!(err["message"].as_str().unwrap().contains(&format!("'{param}'")), "{body}: {err}");
    }
    let r = app
        .client
        .put(app.url("/sites/site_1"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json");
    let r = r.body("{\"name\": ").send().await.unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "body_invalid_json").await;
    let r = put_name(&app, &app.key, "site_a%7Cb", json!({"name": "Pipe"})).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid").await;
    let r = put_name(&app, &app.key, &format!("site_{}", "x".repeat(251)), json!({"name": "Long"})).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid").await;
    // Nothing was named or made by the refusals.
    assert_eq!(app.get_json("/sites", &app.key).await["data"], json!([]));
    // The longest name is a name; multi-byte characters count as one.
    assert_eq!(name(&app, "site_1", json!(longest)).await["name"], longest);
    let accents = "é".repeat(200);
    assert_eq!(name(&app, "site_1", json!(accents)).await["name"], accents);
    let r = put_name(&app, &app.key, "site_1", json!({"name": "é".repeat(201)})).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid").await;
    assert_eq!(app.get_json("/sites/site_1", &app.key).await["name"], accents);
    app.finish().await;
});

e2e_test!(sites_need_an_api_key_with_the_permission, |app: TestApp| async move {
    beat(&app, json!({"site_id": "site_1", "name": "One"})).await;
    let reader = app.create_key(&app.customer_id, "faults:read", None).await;
    let r = put_name(&app, &reader, "site_1", json!({"name": "Renamed"})).await;
    let err = assert_error(r, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
    assert!(err["message"].as_str().unwrap().contains("faults:write"), "{err}");
    assert_eq!(app.get_json("/sites/site_1", &reader).await["name"], "One", "unchanged");
    let writer_only = app.create_key(&app.customer_id, "tokens:write", None).await;
    for path in ["/sites", "/sites/site_1"] {
        let r = app.client.get(app.url(path)).bearer_auth(&writer_only).send().await.unwrap();
        assert_error(r, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
    }

    // An access token, even one for every fault, reads no sites and names none.
    let minted = token(&app).await;
    let jwt = minted["token"].as_str().unwrap();
    assert_eq!(get(&app, "/fault", jwt).await.0, StatusCode::OK, "the token works");
    for path in ["/sites", "/sites/site_1", "/sites?status=online"] {
        let r = app.client.get(app.url(path)).bearer_auth(jwt).send().await.unwrap();
        assert_error(r, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
    }
    let r = put_name(&app, jwt, "site_1", json!({"name": "Renamed"})).await;
    assert_error(r, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
    assert_eq!(app.get_json("/sites/site_1", &app.key).await["name"], "One", "unchanged");
    let r = app.client.put(app.url("/sites/site_1")).json(&json!({"name": "x"})).send().await.unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "authentication_error", "api_key_missing").await;
    app.finish().await;
});

// ---- faults carry the site's name ----

e2e_test!(faults_carry_their_site_name, |app: TestApp| async move {
    beat(&app, json!({"site_id": "site_1", "name": "Lyon <Part-Dieu>"})).await;
    beat(&app, json!({"site_id": "site_2"})).await;
    let on_1 = fault_in(&app, "site_1", "tun_1").await;
    let on_2 = fault_in(&app, "site_2", "tun_2").await;
    let unseen = fault_in(&app, "site_3", "tun_3").await;
    let nowhere = app.create_fault(TestApp::fault_body("dev_1", "reboot", "LOW")).await;
    assert_eq!(nowhere["site_id"], Value::Null);

    let read = get_fault(&app, &on_1).await;
    assert_eq!(read["site_name"], "Lyon <Part-Dieu>");
    assert_eq!(read["site_id"], "site_1");
    for fault in [&on_2, &unseen, &nowhere] {
        let read = get_fault(&app, fault).await;
        assert!(read.get("site_name").is_some_and(Value::is_null), "present, null: {read}");
    }
    let list = app.get_json("/fault", &app.key).await;
    let names: Vec<(&str, &Value)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap(), &f["site_name"]))
        .collect();
    assert_eq!(
        names,
        [
            (id(&nowhere), &Value::Null),
            (id(&unseen), &Value::Null),
            (id(&on_2), &Value::Null),
            (id(&on_1), &json!("Lyon <Part-Dieu>"))
        ]
    );
    let of_site = app.get_json("/fault?site=site_1", &app.key).await;
    assert_eq!(of_site["data"][0]["site_name"], "Lyon <Part-Dieu>");

    // Renamed: every read follows, and a conditional GET sees a new body.
    let path = format!("/fault/{}", id(&on_1));
    let before = app.get(&path).send().await.unwrap();
    let etag = before.headers()["etag"].to_str().unwrap().to_owned();
    name(&app, "site_1", json!("Lyon")).await;
    name(&app, "site_3", json!("Annecy")).await;
    let after = app.get(&path).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::OK, "the name changed the fault's answer");
    assert_ne!(after.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(after.json::<Value>().await.unwrap()["site_name"], "Lyon");
    assert_eq!(get_fault(&app, &unseen).await["site_name"], "Annecy");
    let list = app.get_json("/fault?site=site_1,site_3", &app.key).await;
    let mut names: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|f| f["site_name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Annecy", "Lyon"]);
    // The NDJSON export too.
    let r = app.get("/fault?site=site_1").header("Accept", "application/x-ndjson").send().await.unwrap();
    let line: Value = serde_json::from_str(r.text().await.unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["site_name"], "Lyon");
    // And the legacy recent view.
    let recent = app.get_json("/fault/recent", &app.key).await;
    let legacy = recent.as_array().unwrap().iter().find(|f| f["id"] == on_1["id"]).unwrap().clone();
    assert_eq!((&legacy["site_id"], &legacy["site_name"]), (&json!("site_1"), &json!("Lyon")));
    let other = recent.as_array().unwrap().iter().find(|f| f["id"] == on_2["id"]).unwrap();
    assert!(other.get("site_name").is_some_and(Value::is_null), "{other}");
    let legacy_path = app.get_json("/recent?site=site_1", &app.key).await;
    assert_eq!(legacy_path[0]["site_name"], "Lyon");
    // The answers of a comment and a resolve, and an access token's feed.
    let r = app
        .request(Method::POST, &format!("/fault/{}/comment", id(&on_1)))
        .json(&json!({"comment": "on it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["site_name"], "Lyon");
    let r = app.request(Method::POST, &format!("/fault/{}/resolve", id(&on_1))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["site_name"], "Lyon");
    let minted = token(&app).await;
    let feed = app
        .get_json(&format!("/fault/token/{}?site=site_1", minted["token"].as_str().unwrap()), &app.key)
        .await;
    assert_eq!(feed[0]["site_name"], "Lyon", "{feed}");
    app.finish().await;
});

e2e_test!(a_created_fault_is_answered_with_its_site_name, |app: TestApp| async move {
    name(&app, "site_1", json!("Lyon")).await;
    let created = fault_in(&app, "site_1", "tun_1").await;
    assert_eq!(created["site_name"], "Lyon", "the answer to POST /fault, as a GET reads it: {created}");
    app.finish().await;
});

e2e_test!(top_faults_samples_carry_their_site_name, |app: TestApp| async move {
    name(&app, "site_1", json!("Lyon")).await;
    fault_in(&app, "site_1", "tun_1").await;
    let top = app.get_json("/fault/top_faults", &app.key).await;
    assert_eq!(top[0]["resource_id"], "tun_1");
    assert_eq!((&top[0]["site_id"], &top[0]["site_name"]), (&json!("site_1"), &json!("Lyon")), "{top}");
    assert_eq!(top[0]["faults"][0]["site_name"], "Lyon", "{top}");
    // A resource outside any named site: null, in the item and its faults.
    fault_in(&app, "site_2", "tun_2").await;
    fault_in(&app, "site_2", "tun_2").await;
    let top = app.get_json("/fault/top_faults", &app.key).await;
    assert_eq!(top[0]["resource_id"], "tun_2");
    assert!(top[0].get("site_name").is_some_and(Value::is_null), "{top}");
    assert!(top[0]["faults"][0].get("site_name").is_some_and(Value::is_null), "{top}");
    assert_eq!(top[1]["faults"][0]["site_name"], "Lyon");
    app.finish().await;
});

e2e_test!(the_stream_sends_faults_with_their_site_name, |app: TestApp| async move {
    beat(&app, json!({"site_id": "site_1", "name": "Lyon"})).await;
    let mut stream = SseClient::open(&app, &app.key, None).await;
    let named = fault_in(&app, "site_1", "tun_1").await;
    let created = stream.expect().await;
    assert_eq!((created.event.as_str(), &created.data["fault_id"]), ("fault.created", &named["id"]));
    assert_eq!(created.data["fault"]["site_name"], "Lyon");
    let unnamed = fault_in(&app, "site_2", "tun_2").await;
    let created = stream.expect().await;
    assert_eq!(created.data["fault_id"], unnamed["id"]);
    assert!(created.data["fault"].get("site_name").is_some_and(Value::is_null), "{:?}", created.data);
    // Renamed, then resolved: the event carries the new name.
    name(&app, "site_1", json!("Lyon Part-Dieu")).await;
    let r = app.request(Method::POST, &format!("/fault/{}/resolve", id(&named))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let resolved = stream.expect().await;
    assert_eq!(resolved.event, "fault.resolved");
    assert_eq!(resolved.data["fault"]["site_name"], "Lyon Part-Dieu");
    // An access token's stream carries it too.
    let minted = token(&app).await;
    let mut scoped = SseClient::open(&app, minted["token"].as_str().unwrap(), None).await;
    fault_in(&app, "site_1", "tun_3").await;
    assert_eq!(scoped.expect().await.data["fault"]["site_name"], "Lyon Part-Dieu");
    app.finish().await;
});

e2e_test!(the_csv_export_ends_with_the_site_name, |app: TestApp| async move {
    beat(&app, json!({"site_id": "site_1", "name": "Lyon, \"Part-Dieu\""})).await;
    name(&app, "site_2", json!("Oslo")).await;
    let on_1 = fault_in(&app, "site_1", "tun_1").await;
    let on_2 = fault_in(&app, "site_2", "tun_2").await;
    let nowhere = app.create_fault(TestApp::fault_body("dev_1", "reboot", "LOW")).await;
    let r = app.get("/fault").header("Accept", "text/csv").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let rows = crate::export::python_csv(&r.text().await.unwrap());
    assert_eq!(rows[0].len(), 15);
    assert_eq!(rows[0][14], "site_name", "the last column: {:?}", rows[0]);
    assert_eq!(rows[0][13], "comment_count");
    assert_eq!(rows[0][7], "site_id", "the columns before it stay where they were");
    let by_id = |fault: &Value| rows[1..].iter().find(|r| r[0] == id(fault)).unwrap().clone();
    assert_eq!((by_id(&on_1)[7].as_str(), by_id(&on_1)[14].as_str()), ("site_1", "Lyon, \"Part-Dieu\""));
    assert_eq!((by_id(&on_2)[7].as_str(), by_id(&on_2)[14].as_str()), ("site_2", "Oslo"));
    assert_eq!((by_id(&nowhere)[7].as_str(), by_id(&nowhere)[14].as_str()), ("", ""));
    assert!(rows.iter().all(|r| r.len() == 15));
    app.finish().await;
});

e2e_test!(the_shared_dashboard_shows_site_names, |app: TestApp| async move {
    beat(&app, json!({"site_id": "site_1", "name": "Lyon & Co"})).await;
    beat(&app, json!({"site_id": "site_2"})).await;
    let on_1 = fault_in(&app, "site_1", "tun_1").await;
    let on_2 = fault_in(&app, "site_2", "tun_2").await;
    let minted = crate::tokens::mint(&app, json!({"expire_after_minutes": 60, "label": "NOC"})).await;
    let page = app.client.get(minted["short_link"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let row = |fault: &Value| -> String {
        let start = html.find(&format!("<tr data-id=\"{}\"", id(fault))).expect("the fault's row");
        let end = start + html[start..].find("</tr>").unwrap();
        html[start..end].to_owned()
    };
    let named = row(&on_1);
    assert!(
        named.contains("<span class=\"site\" title=\"site_1\">Lyon &amp; Co</span>"),
        "the name, the id in its title: {named}"
    );
    let unnamed = row(&on_2);
    assert!(unnamed.contains("<span class=\"site\">site_2</span>"), "the id alone: {unnamed}");
    // An operator's name shows instead of the heartbeat's.
    name(&app, "site_1", json!("Lyon \"HQ\"")).await;
    let html =
        app.client.get(minted["short_link"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<span class=\"site\" title=\"site_1\">Lyon &quot;HQ&quot;</span>"), "{html}");
    assert!(!html.contains("Lyon &amp; Co"));
    app.finish().await;
});
