//! The console's sign-in and sessions over HTTP: the sign-in page, the session cookie and its
//! attributes, the cookie as a credential on the API, `Origin` on every change, logout, one-time
//! links, revoked keys, idle sessions, rate-limited sign-in, and tenancy. (The console in a real
//! browser is `browser.rs`'s.)

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{Client, Method, StatusCode, redirect};
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

/// A client that shows redirects instead of following them, and keeps no cookies.
fn client() -> Client {
    Client::builder().redirect(redirect::Policy::none()).build().unwrap()
}

/// Sign in with `key` by the form; the cookie's `name=value`, and the whole `Set-Cookie`.
async fn sign_in(app: &TestApp, key: &str) -> (String, String) {
    let response = client()
        .post(app.url("/console/login"))
        .header(ORIGIN, &app.base)
        .form(&[("api_key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", response.text().await.unwrap());
    assert_eq!(response.headers()[LOCATION], "/console");
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    (pair, set_cookie)
}

/// A request that carries only the console's cookie (and, when given, an `Origin`).
fn with_cookie(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = client().request(method, app.url(path)).header(COOKIE, cookie);
    match origin {
        Some(origin) => request.header(ORIGIN, origin),
        None => request,
    }
}

async fn whoami_status(app: &TestApp, cookie: &str) -> StatusCode {
    with_cookie(app, Method::GET, "/whoami", cookie, None).send().await.unwrap().status()
}

e2e_test!(without_a_session_the_console_is_its_sign_in_page, |app: TestApp| async move {
    let response = client().get(app.url("/console")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let csp = response.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("form-action 'self'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("action=\"/console/login\"") && html.contains("name=\"api_key\""), "{html}");
    assert!(!html.contains("{{"), "every placeholder is filled: {html}");
    assert!(!html.contains("/assets/console-") || !html.contains(".js\""), "the sign-in page runs no script");
    app.finish().await;
});

e2e_test!(signing_in_sets_a_strict_http_only_cookie_that_acts_as_the_key, |app: TestApp| async move {
    let key = app.create_key(&app.customer_id, "faults:read,faults:write", None).await;
    let (cookie, set_cookie) = sign_in(&app, &key).await;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: no Secure ({set_cookie})");
    assert!(!set_cookie.contains(&key), "the key never reaches the cookie");

    // The cookie is the key: same customer, same permissions.
    let me: Value =
        with_cookie(&app, Method::GET, "/whoami", &cookie, None).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["customer_id"], app.customer_id.as_str());
    assert_eq!(me["permissions"], json!(["faults:read", "faults:write"]));
    let response = with_cookie(&app, Method::GET, "/console", &cookie, None).send().await.unwrap();
    let html = response.text().await.unwrap();
    assert!(html.contains("/assets/console-") && html.contains(".js"), "signed in: the console's shell");
    assert!(!html.contains("{{"), "{html}");
    let script = html.split("src=\"").nth(1).unwrap().split('"').next().unwrap();
    let asset = client().get(app.url(script)).send().await.unwrap();
    assert_eq!(asset.status(), StatusCode::OK);
    assert!(asset.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));

    // Permissions hold: this key may not delete.
    let fault = app.create_fault(TestApp::fault_body("dev_1", "reboot", "LOW")).await;
    let id = fault["id"].as_str().unwrap();
    let denied = with_cookie(&app, Method::DELETE, &format!("/fault/{id}"), &cookie, Some(&app.base))
        .send()
        .await
        .unwrap();
    assert_error(denied, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
    app.finish().await;
});

e2e_test!(behind_https_the_cookie_is_secure, |app: TestApp| async move {
    let response = client()
        .post(app.url("/console/login"))
        .header(ORIGIN, &app.base)
        .header("X-Forwarded-Proto", "https")
        .form(&[("api_key", app.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(response.headers()[SET_COOKIE].to_str().unwrap().contains("; Secure"));
    app.finish().await;
});

e2e_test!(a_wrong_or_revoked_key_does_not_sign_in, |app: TestApp| async move {
    for (key, expected) in
        [("flk_nope_nope", StatusCode::UNAUTHORIZED), ("not a key", StatusCode::UNAUTHORIZED)]
    {
        let response = client()
            .post(app.url("/console/login"))
            .header(ORIGIN, &app.base)
            .form(&[("api_key", key)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{key}");
        assert!(response.headers().get(SET_COOKIE).is_none());
        let html = response.text().await.unwrap();
        assert!(html.contains("role=\"alert\""), "the page says why: {html}");
    }
    let key = app.create_key(&app.customer_id, "faults:read", None).await;
    let keys = app.store.list_api_keys(Some(&app.customer_id)).await.unwrap();
    let newest = keys.iter().max_by_key(|k| (k.created_at, k.id.clone())).unwrap();
    app.store.revoke_api_key(&newest.id, faultline_core::time::now_micros()).await.unwrap();
    app.clock.advance(std::time::Duration::from_secs(2));
    let response = client()
        .post(app.url("/console/login"))
        .header(ORIGIN, &app.base)
        .form(&[("api_key", key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.text().await.unwrap().contains("revoked"));
    app.finish().await;
});

e2e_test!(changes_by_cookie_need_the_consoles_own_origin, |app: TestApp| async move {
    let (cookie, _) = sign_in(&app, &app.key).await;
    let body = TestApp::fault_body("dev_1", "reboot", "LOW");
    // No Origin, or another one: refused before anything happens.
    for origin in [None, Some("https://evil.example"), Some("null")] {
        let response =
            with_cookie(&app, Method::POST, "/fault", &cookie, origin).json(&body).send().await.unwrap();
        assert_error(response, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
    }
    let listed = app.get_json("/fault", &app.key).await;
    assert_eq!(listed["data"], json!([]), "nothing was created");
    // From the console's origin (the public URL, or the host the request went to): allowed.
    let response =
        with_cookie(&app, Method::POST, "/fault", &cookie, Some(&app.base)).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // Reads need no Origin; a bearer key needs none either (no cookie, no CSRF).
    assert_eq!(whoami_status(&app, &cookie).await, StatusCode::OK);
    let response = app.request(Method::POST, "/fault").json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // The sign-in and sign-out forms check it too.
    let response = client()
        .post(app.url("/console/login"))
        .header(ORIGIN, "https://evil.example")
        .form(&[("api_key", app.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(SET_COOKIE).is_none());
    let response = with_cookie(&app, Method::POST, "/console/logout", &cookie, Some("https://evil.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(whoami_status(&app, &cookie).await, StatusCode::OK, "a cross-site logout does nothing");
    app.finish().await;
});

e2e_test!(logging_out_ends_the_session, |app: TestApp| async move {
    let (cookie, _) = sign_in(&app, &app.key).await;
    let (other, _) = sign_in(&app, &app.key).await;
    let response =
        with_cookie(&app, Method::POST, "/console/logout", &cookie, Some(&app.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cleared = response.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let response = with_cookie(&app, Method::GET, "/whoami", &cookie, None).send().await.unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "authentication_error", "api_key_invalid").await;
    let page =
        with_cookie(&app, Method::GET, "/console", &cookie, None).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("action=\"/console/login\"") && page.contains("session has ended"), "{page}");
    assert_eq!(whoami_status(&app, &other).await, StatusCode::OK, "another session goes on");
    app.finish().await;
});

e2e_test!(revoking_the_key_ends_its_sessions, |app: TestApp| async move {
    let key = app.create_key(&app.customer_id, "faults:read", None).await;
    let (cookie, _) = sign_in(&app, &key).await;
    assert_eq!(whoami_status(&app, &cookie).await, StatusCode::OK);
    let keys = app.store.list_api_keys(Some(&app.customer_id)).await.unwrap();
    let newest = keys.iter().max_by_key(|k| (k.created_at, k.id.clone())).unwrap();
    app.store.revoke_api_key(&newest.id, faultline_core::time::now_micros()).await.unwrap();
    app.clock.advance(std::time::Duration::from_secs(2));
    assert_eq!(whoami_status(&app, &cookie).await, StatusCode::UNAUTHORIZED);
    app.finish().await;
});

e2e_test!(a_session_unused_for_twelve_hours_is_over, |app: TestApp| async move {
    use faultline_store::ConsoleSession;
    let keys = app.store.list_api_keys(Some(&app.customer_id)).await.unwrap();
    let now = faultline_core::time::now_micros();
    let hour = 3_600_000_000;
    let mut cookies = Vec::new();
    for (n, idle) in [11 * hour, 13 * hour].into_iter().enumerate() {
        let secret = format!("{n}{}", "a".repeat(42));
        let session = ConsoleSession {
            id_hash: faultline_core::secret::sha256_hex(&secret),
            customer_id: app.customer_id.clone(),
            key_id: keys[0].id.clone(),
            created_at: now - idle,
            last_seen_at: now - idle,
        };
        app.store.create_console_session(&session, now - 100 * hour).await.unwrap();
        cookies.push(format!("faultline_console={secret}"));
    }
    assert_eq!(whoami_status(&app, &cookies[0]).await, StatusCode::OK, "11 hours idle");
    assert_eq!(whoami_status(&app, &cookies[1]).await, StatusCode::UNAUTHORIZED, "13 hours idle");
    app.finish().await;
});

e2e_test!(a_sign_in_link_works_once_within_ten_minutes, |app: TestApp| async move {
    let key = app.create_key(&app.customer_id, "faults:read", None).await;
    let response = client().post(app.url("/console/links")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let link: Value = response.json().await.unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/console/login/", app.base)), "{url}");
    let expires = faultline_core::time::parse_rfc3339(link["expires_at"].as_str().unwrap()).unwrap();
    let left = expires - faultline_core::time::now_micros();
    assert!((590_000_000..=600_000_000).contains(&left), "ten minutes: {left}");

    // Opening the link uses nothing up (previews fetch links): a page whose button posts it.
    for _ in 0..2 {
        let page = client().get(url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.headers().get(SET_COOKIE).is_none());
        let html = page.text().await.unwrap();
        let path = url.strip_prefix(&app.base).unwrap();
        assert!(html.contains(&format!("action=\"{path}\"")) && html.contains("method=\"post\""), "{html}");
    }
    // Posted from elsewhere (login CSRF: signing a browser in to someone else's account): 403,
    // and the link is still good.
    for origin in [None, Some("https://evil.example")] {
        let mut post = client().post(url);
        if let Some(origin) = origin {
            post = post.header(ORIGIN, origin);
        }
        let refused = post.send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.headers().get(SET_COOKIE).is_none());
    }
    let first = client().post(url).header(ORIGIN, &app.base).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let cookie = first.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let me: Value =
        with_cookie(&app, Method::GET, "/whoami", &cookie, None).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["permissions"], json!(["faults:read"]), "the link signs in as the key that made it");
    let again = client().post(url).header(ORIGIN, &app.base).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::GONE, "single use");
    assert!(again.headers().get(SET_COOKIE).is_none());
    let made_up = app.url(&format!("/console/login/{}", "b".repeat(43)));
    let made_up = client().post(&made_up).header(ORIGIN, &app.base).send().await.unwrap();
    assert_eq!(made_up.status(), StatusCode::GONE);
    let malformed = client().get(app.url("/console/login/short")).send().await.unwrap();
    assert_eq!(malformed.status(), StatusCode::GONE);

    // An access token cannot make one; nor can a request without a credential.
    let token = crate::tokens::mint(&app, json!({"expire_after_minutes": 30})).await;
    let jwt = token["token"].as_str().unwrap();
    let response = client().post(app.url("/console/links")).bearer_auth(jwt).send().await.unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
    let response = client().post(app.url("/console/links")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.finish().await;
});

e2e_test!(sign_in_attempts_are_rate_limited_per_address, |app: TestApp| async move {
    let limit = faultline_server::console::SIGN_IN_RATE_PER_MINUTE;
    for _ in 0..limit {
        let response = client()
            .post(app.url("/console/login"))
            .header(ORIGIN, &app.base)
            .form(&[("api_key", "flk_x_y")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = client()
        .post(app.url("/console/login"))
        .header(ORIGIN, &app.base)
        .form(&[("api_key", app.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "even the right key waits");
    assert!(response.headers().get("retry-after").is_some());
    assert!(response.headers().get(SET_COOKIE).is_none());
    app.finish().await;
});

e2e_test!(a_session_sees_only_its_customers_data, |app: TestApp| async move {
    let (_, other_key) = app.other_customer().await;
    let theirs: Value = client()
        .post(app.url("/fault"))
        .bearer_auth(&other_key)
        .json(&TestApp::fault_body("dev_b", "reboot", "HIGH"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (cookie, _) = sign_in(&app, &app.key).await;
    let id = theirs["id"].as_str().unwrap();
    let response =
        with_cookie(&app, Method::GET, &format!("/fault/{id}"), &cookie, None).send().await.unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    let listed: Value =
        with_cookie(&app, Method::GET, "/fault", &cookie, None).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["data"], json!([]));
    app.finish().await;
});

e2e_test!(the_live_stream_stays_open_on_a_session, |app: TestApp| async move {
    let (cookie, _) = sign_in(&app, &app.key).await;
    let mut stream = with_cookie(&app, Method::GET, "/fault/stream", &cookie, None).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    // Past the stream's credential re-checks, which must find the session still good.
    tokio::time::sleep(std::time::Duration::from_millis(4_500)).await;
    let fault = app.create_fault(TestApp::fault_body("dev_live", "reboot", "HIGH")).await;
    let id = fault["id"].as_str().unwrap().to_owned();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains(&id) {
        let chunk =
            tokio::time::timeout_at(deadline, stream.chunk()).await.expect("the event arrives in time");
        let chunk = chunk.unwrap().expect("the stream is still open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("fault.created"), "{seen}");
    app.finish().await;
});
