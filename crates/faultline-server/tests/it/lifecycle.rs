//! Comments, resolve and the timeline, end to end.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

e2e_test!(comments_are_added_oldest_first_by_the_acting_user, |app: TestApp| async move {
    let fault = app.create_fault(TestApp::fault_body("dev_1", "reboot", "LOW")).await;
    let id = fault["id"].as_str().unwrap();
    let me = app.get_json("/whoami", &app.key).await;
    let first =
        app.request(Method::POST, &format!("/fault/{id}/comment")).json(&json!({"comment": "  first  "}));
    let first = first.send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["id"], id);
    assert_eq!(body["comments"][0]["comment"], "first", "trimmed");
    assert_eq!(body["comments"][0]["user_id"], me["user_id"]);
    let second =
        app.request(Method::POST, &format!("/fault/{id}/comment")).json(&json!({"comment": "second"}));
    let body: Value = second.send().await.unwrap().json().await.unwrap();
    let texts: Vec<&str> =
        body["comments"].as_array().unwrap().iter().map(|c| c["comment"].as_str().unwrap()).collect();
    assert_eq!(texts, ["first", "second"]);
    assert!(body["comments"][1]["created_at"].as_str().unwrap().ends_with('Z'));
    let read = app.get_json(&format!("/fault/{id}"), &app.key).await;
    assert_eq!(read["comments"], body["comments"]);
    let listed = app.get_json("/fault", &app.key).await;
    assert_eq!(listed["data"][0]["comments"], body["comments"], "lists carry comments too");

    for (bad, code) in [
        (json!({}), "parameter_missing"),
        (json!({"comment": "   "}), "parameter_invalid"),
        (json!({"comment": "x".repeat(2001)}), "parameter_invalid"),
        (json!({"comment": 3}), "parameter_invalid"),
    ] {
        let r = app.request(Method::POST, &format!("/fault/{id}/comment")).json(&bad).send().await.unwrap();
        let err = assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", code).await;
        assert!(err["message"].as_str().unwrap().contains("'comment'"));
    }
    let (_, other) = app.other_customer().await;
    let foreign = app
        .client
        .post(app.url(&format!("/fault/{id}/comment")))
        .bearer_auth(&other)
        .json(&json!({"comment": "hi"}));
    assert_error(
        foreign.send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found_error",
        "resource_not_found",
    )
    .await;
    assert_eq!(
        app.get_json(&format!("/fault/{id}"), &app.key).await["comments"].as_array().unwrap().len(),
        2
    );
    app.finish().await;
});

e2e_test!(resolving_is_idempotent_and_takes_its_comment_along, |app: TestApp| async move {
    let fault = app.create_fault(TestApp::fault_body("tun_1", "wantunnel", "HIGH")).await;
    let id = fault["id"].as_str().unwrap();
    let resolved =
        app.request(Method::POST, &format!("/fault/{id}/resolve")).json(&json!({"comment": "ISP fixed it"}));
    let resolved = resolved.send().await.unwrap();
    assert_eq!(resolved.status(), StatusCode::OK);
    let body: Value = resolved.json().await.unwrap();
    assert_eq!(body["status"], "resolved");
    let resolved_at = body["resolved_at"].as_str().unwrap().to_owned();
    assert_eq!(body["comments"][0]["comment"], "ISP fixed it");
    let at = faultline_core::time::parse_rfc3339(&resolved_at).unwrap();
    assert_eq!(
        body["ttl"].as_i64().unwrap(),
        at / 1_000_000 + 400 * 86_400,
        "retention runs from the resolve"
    );

    let again = app.request(Method::POST, &format!("/fault/{id}/resolve")).json(&json!({"comment": "again"}));
    let again: Value = again.send().await.unwrap().json().await.unwrap();
    assert_eq!(again["resolved_at"], resolved_at.as_str(), "resolving again changes nothing");
    assert_eq!(again["comments"].as_array().unwrap().len(), 1);
    let bare = app.request(Method::POST, &format!("/fault/{id}/resolve")).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::OK, "the body is optional");

    let open = app.create_fault(TestApp::fault_body("tun_2", "wantunnel", "HIGH")).await;
    let reader = app.create_key(&app.customer_id, "faults:read", None).await;
    let denied = app
        .client
        .post(app.url(&format!("/fault/{}/resolve", open["id"].as_str().unwrap())))
        .bearer_auth(&reader);
    assert_error(
        denied.send().await.unwrap(),
        StatusCode::FORBIDDEN,
        "permission_error",
        "permission_denied",
    )
    .await;
    assert_eq!(
        app.get_json(&format!("/fault/{}", open["id"].as_str().unwrap()), &app.key).await["status"],
        "unresolved"
    );
    let missing =
        app.request(Method::POST, "/fault/flt_000000000000000000000000000/resolve").send().await.unwrap();
    assert_error(missing, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    app.finish().await;
});

e2e_test!(the_timeline_tells_the_whole_story_even_after_deletion, |app: TestApp| async move {
    let fault = app.create_fault(TestApp::fault_body("site_1", "site", "CRITICAL")).await;
    let id = fault["id"].as_str().unwrap();
    let key_id = app.get_json("/whoami", &app.key).await["credential_id"].as_str().unwrap().to_owned();
    app.request(Method::POST, &format!("/fault/{id}/comment"))
        .json(&json!({"comment": "looking"}))
        .send()
        .await
        .unwrap();
    app.request(Method::POST, &format!("/fault/{id}/resolve")).send().await.unwrap();
    app.request(Method::DELETE, &format!("/fault/{id}")).send().await.unwrap();
    let timeline = app.get_json(&format!("/fault/{id}/timeline"), &app.key).await;
    let entries = timeline["data"].as_array().unwrap();
    let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "commented", "resolved", "deleted"]);
    assert!(entries.iter().all(|e| e["actor"] == key_id.as_str()));
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let (_, other) = app.other_customer().await;
    let foreign =
        app.client.get(app.url(&format!("/fault/{id}/timeline"))).bearer_auth(&other).send().await.unwrap();
    assert_error(foreign, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    app.finish().await;
});
