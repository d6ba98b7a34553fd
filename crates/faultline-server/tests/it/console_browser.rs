//! The operators' console in headless Chromium (`browser.rs`), as an operator uses it: signing in
//! by the form and by a one-time link, the fault list with site names, filters kept in the
//! address, resolving with a comment, live arrivals, share links, signing out, a revoked key,
//! another customer's fault, a read-only key and a phone's width; and the size of the first
//! load. `FAULTLINE_SCREENSHOTS=<dir>` with `--ignored` writes the screenshots of `docs/`
//! (`console_screenshots`). The HTTP side of sessions is `console.rs`'s.

use std::time::Duration;

use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use reqwest::{Method, StatusCode, redirect};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::e2e_test;
use crate::harness::TestApp;

/// A fault of customer A at `site` (its ancestry starts with the site's id).
async fn fault(
    app: &TestApp,
    site: &str,
    resource: &str,
    fault_type: &str,
    severity: &str,
    message: &str,
) -> Value {
    let mut body = TestApp::fault_body(resource, fault_type, severity);
    body["resource_ancestry_path"] = json!(format!("{site}|{resource}"));
    body["message"] = json!(message);
    app.create_fault(body).await
}

fn id(fault: &Value) -> String {
    fault["id"].as_str().unwrap().to_owned()
}

/// Name a site as an operator does (`PUT /sites/{id}`).
async fn name_site(app: &TestApp, site: &str, name: &str) {
    let r = app.request(Method::PUT, &format!("/sites/{site}")).json(&json!({ "name": name })).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::OK, "PUT /sites/{site}");
}

/// Open the console, type `key` into the sign-in form and send it; wait for the console.
async fn sign_in(browser: &Browser, app: &TestApp, key: &str) {
    browser.goto(&app.url("/console")).await;
    let input = browser.find("form#signin input#api-key[name=api_key][type=password]").await;
    browser.type_into(&input, key).await;
    browser.click(&browser.find("form#signin button#sign-in").await).await;
    signed_in(browser).await;
}

/// Wait for the console's shell to know its permissions (the sign-in worked).
async fn signed_in(browser: &Browser) {
    let script =
        "return !!document.getElementById('nav') && document.body.classList.contains('perms-known');";
    browser.wait_for("the console, signed in", script, json!([])).await;
}

/// Wait for the sign-in page; its notice (`#notice`) and error (`#error`).
async fn sign_in_page(browser: &Browser, what: &str) -> (String, String) {
    let script = "var f = document.getElementById('signin'); return f && !document.getElementById('nav') && \
                  [document.getElementById('notice').textContent.trim(), document.getElementById('error').textContent.trim()];";
    let seen = browser.wait_for(what, script, json!([])).await;
    (seen[0].as_str().unwrap().to_owned(), seen[1].as_str().unwrap().to_owned())
}

/// The fault list's rows as `[id, severity, status]`, once the list has loaded.
async fn rows(browser: &Browser) -> Vec<[String; 3]> {
    let script = "var t = document.getElementById('faults'); var s = document.getElementById('faults-status'); \
        if (t.getAttribute('aria-busy') === 'true' || /Loading/.test(s.textContent)) return null; \
        return Array.from(t.tBodies[0].rows).map(function (tr) { return [tr.getAttribute('data-id'), \
        tr.getAttribute('data-severity'), tr.getAttribute('data-status')]; });";
    let seen = browser.wait_for("the fault list", script, json!([])).await;
    seen.as_array()
        .unwrap()
        .iter()
        .map(|r| std::array::from_fn(|i| r[i].as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Wait until the list shows exactly `expected` (ids, in order).
async fn wait_rows(browser: &Browser, what: &str, expected: &[String]) {
    let script = "var ids = Array.from(document.querySelectorAll('#faults tbody tr')).map(function (tr) { \
        return tr.getAttribute('data-id'); }); return JSON.stringify(ids) === JSON.stringify(arguments[0]) || null;";
    browser.wait_for(what, script, json!([expected])).await;
}

/// Wait until the console follows the event stream.
async fn wait_live(browser: &Browser) {
    let script = "return /^Live( ·|$)/.test(document.getElementById('live').textContent);";
    browser.wait_for("the live stream", script, json!([])).await;
}

/// The HTTP statuses the browser received for `url`, from the DevTools log (read since the
/// last call).
async fn statuses_of(browser: &Browser, url: &str) -> Vec<u64> {
    browser
        .log("performance")
        .await
        .iter()
        .filter_map(|entry| serde_json::from_str::<Value>(entry["message"].as_str()?).ok())
        .filter_map(|m| {
            // A redirect's answer comes with the request it leads to.
            let response = match m["message"]["method"].as_str()? {
                "Network.responseReceived" => &m["message"]["params"]["response"],
                "Network.requestWillBeSent" => &m["message"]["params"]["redirectResponse"],
                _ => return None,
            };
            (response["url"] == url).then(|| response["status"].as_u64()).flatten()
        })
        .collect()
}

/// The console's session cookie as the browser holds it.
async fn session_cookie(browser: &Browser) -> Value {
    let cookies = browser.cookies().await;
    cookies.into_iter().find(|c| c["name"] == "faultline_console").expect("the session cookie")
}

/// `GET /whoami` with nothing but `cookie` (`name=value`).
async fn whoami_with_cookie(app: &TestApp, cookie: &str) -> StatusCode {
    let r = app.client.get(app.url("/whoami")).header(COOKIE, cookie).send().await.unwrap();
    r.status()
}

/// The console's errors the browser logged, but for answers the test asked for (`allowed`
/// substrings, e.g. a 404 it provoked).
async fn assert_no_console_errors(browser: &Browser, allowed: &[&str]) {
    let errors: Vec<Value> = browser
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !allowed.iter().any(|a| e["message"].as_str().is_some_and(|m| m.contains(a))))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

e2e_test!(signing_in_by_the_form_shows_the_faults_with_site_names, |app: TestApp| async move {
    let Some(browser) = Browser::start("console_sign_in", 1280, 900).await else {
        return app.finish().await;
    };
    name_site(&app, "site_lyon", "Lyon branch").await;
    let named = fault(&app, "site_lyon", "tun_1", "wantunnel", "CRITICAL", "Tunnel to DC-East down").await;
    let unnamed = fault(&app, "site_oslo", "dev_2", "reboot", "LOW", "Router rebooted").await;

    assert_eq!(named["site_name"], "Lyon branch", "the answer of POST /fault names the site");
    let listed = app.get_json(&format!("/fault/{}", id(&named)), &app.key).await;
    assert_eq!(listed["site_name"], "Lyon branch");
    sign_in(&browser, &app, &app.key).await;
    let shown = rows(&browser).await;
    let ids: Vec<&str> = shown.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, [id(&unnamed), id(&named)], "newest first");
    let sites = browser
        .run(
            "return Array.from(document.querySelectorAll('#faults tbody tr')).map(function (tr) { \
             var s = tr.querySelector('.site'); return [s.textContent, s.title]; });",
            json!([]),
        )
        .await;
    assert_eq!(sites, json!([["site_oslo", "site_oslo"], ["Lyon branch", "site_lyon"]]), "site names");
    assert_eq!(browser.current_url().await, app.url("/console#/faults"));
    let nav = browser
        .run("return document.querySelector('#nav a[aria-current=page]').dataset.view;", json!([]))
        .await;
    assert_eq!(nav, "faults");

    // The session is a cookie the page's script cannot read.
    let cookie = session_cookie(&browser).await;
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    let script_sees = browser.run("return document.cookie;", json!([])).await;
    assert!(!script_sees.as_str().unwrap().contains("faultline_console"), "document.cookie: {script_sees}");
    assert!(!script_sees.as_str().unwrap().contains(cookie["value"].as_str().unwrap()));
    assert_no_console_errors(&browser, &[]).await;
    browser.quit().await;
    app.finish().await;
});

e2e_test!(a_one_time_link_signs_in_once, |app: TestApp| async move {
    let Some(browser) = Browser::start("console_link", 1280, 900).await else {
        return app.finish().await;
    };
    let key = app.create_key(&app.customer_id, "faults:read", None).await;
    let made = app.client.post(app.url("/console/links")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let link: Value = made.json().await.unwrap();
    let url = link["url"].as_str().unwrap().to_owned();

    // The link opens a page whose button signs in (opening it alone uses nothing up).
    browser.goto(&url).await;
    browser.click(&browser.find("#continue").await).await;
    signed_in(&browser).await;
    assert_eq!(browser.current_url().await, app.url("/console#/faults"));
    let who = browser.run("return document.getElementById('who').title;", json!([])).await;
    assert!(
        who.as_str().unwrap().ends_with("permissions: faults:read"),
        "signed in as the link's key: {who}"
    );
    assert_eq!(statuses_of(&browser, &url).await, [200, 303], "the page, then the post");

    // Used once: the same link again is the sign-in page, answered 410.
    browser.goto(&url).await;
    browser.click(&browser.find("#continue").await).await;
    let (_, error) = sign_in_page(&browser, "the sign-in page of a used link").await;
    assert!(error.contains("already used or has expired"), "{error}");
    assert_eq!(statuses_of(&browser, &url).await, [200, 410]);
    let hidden =
        browser.run("return getComputedStyle(document.getElementById('notice')).display;", json!([])).await;
    assert_eq!(hidden, "none", "an empty notice takes no room");
    browser.quit().await;
    app.finish().await;
});

e2e_test!(filters_narrow_the_list_and_live_in_the_address, |app: TestApp| async move {
    let Some(browser) = Browser::start("console_filters", 1280, 900).await else {
        return app.finish().await;
    };
    let crit_tunnel = fault(&app, "site_a", "tun_1", "wantunnel", "CRITICAL", "Tunnel down").await;
    let crit_reboot = fault(&app, "site_a", "dev_1", "reboot", "CRITICAL", "Router down").await;
    let low_tunnel = fault(&app, "site_b", "tun_2", "wantunnel", "LOW", "Tunnel jitter").await;
    let high_reboot = fault(&app, "site_b", "dev_2", "reboot", "HIGH", "Router rebooted").await;
    sign_in(&browser, &app, &app.key).await;
    assert_eq!(rows(&browser).await.len(), 4);

    // A severity applies as soon as it is ticked.
    browser.click(&browser.find("#filters input[name=severity][value=CRITICAL]").await).await;
    wait_rows(&browser, "the CRITICAL faults", &[id(&crit_reboot), id(&crit_tunnel)]).await;
    assert!(rows(&browser).await.iter().all(|r| r[1] == "CRITICAL"));
    assert!(browser.current_url().await.ends_with("#/faults?severity=CRITICAL"));

    // A type applies with Enter.
    let typed = browser.find("#filters input[name=type]").await;
    browser.type_into(&typed, "wantunnel\u{E007}").await;
    wait_rows(&browser, "the CRITICAL tunnel faults", &[id(&crit_tunnel)]).await;
    let url = browser.current_url().await;
    assert!(url.ends_with("#/faults?severity=CRITICAL&type=wantunnel"), "{url}");
    let types = browser
        .run("return Array.from(document.querySelectorAll('#faults tbody td[data-label=Type]')).map(function (td) { return td.textContent; });", json!([]))
        .await;
    assert_eq!(types, json!(["wantunnel"]));

    // Clear shows everything again; an address with filters opens with them, form filled in.
    browser.click(&browser.find("#clear-filters").await).await;
    wait_rows(
        &browser,
        "every fault",
        &[id(&high_reboot), id(&low_tunnel), id(&crit_reboot), id(&crit_tunnel)],
    )
    .await;
    browser.goto(&app.url("/console#/faults?severity=LOW,HIGH&status=unresolved")).await;
    wait_rows(&browser, "the bookmarked filter", &[id(&high_reboot), id(&low_tunnel)]).await;
    let form = browser
        .run(
            "var f = document.getElementById('filters'); return [f.elements.status.value, \
             Array.from(f.querySelectorAll('input[name=severity]:checked')).map(function (i) { return i.value; })];",
            json!([]),
        )
        .await;
    assert_eq!(form, json!(["unresolved", ["HIGH", "LOW"]]));
    assert_no_console_errors(&browser, &[]).await;
    browser.quit().await;
    app.finish().await;
});

e2e_test!(resolving_with_a_comment_and_faults_arriving_live, |app: TestApp| async move {
    let Some(browser) = Browser::start("console_resolve", 1280, 900).await else {
        return app.finish().await;
    };
    let target = fault(&app, "site_a", "tun_1", "wantunnel", "HIGH", "Tunnel to DC-West down").await;
    sign_in(&browser, &app, &app.key).await;
    rows(&browser).await;
    // Remembered across the test: the page is never loaded again.
    browser.run("window.notReloaded = true;", json!([])).await;

    // The row's link opens the detail view.
    let link = browser.find(&format!("#faults tr[data-id=\"{}\"] a.msg", id(&target))).await;
    browser.click(&link).await;
    let heading = browser
        .wait_for(
            "the detail view",
            "return !document.getElementById('detail-body').hidden && document.getElementById('detail-h').textContent;",
            json!([]),
        )
        .await;
    assert_eq!(heading, "Tunnel to DC-West down");
    assert!(browser.current_url().await.ends_with(&format!("#/faults/{}", id(&target))));
    let fields = browser.run("return document.getElementById('detail-fields').textContent;", json!([])).await;
    assert!(fields.as_str().unwrap().contains(&id(&target)), "{fields}");
    browser
        .wait_for(
            "the timeline",
            "return document.querySelector('#timeline li[data-kind=created]') !== null;",
            json!([]),
        )
        .await;

    let comment = browser.find("form#resolve textarea[name=comment]").await;
    browser.type_into(&comment, "Carrier replaced the line card").await;
    browser.click(&browser.find("#resolve-submit").await).await;
    browser
        .wait_for(
            "the resolve panel to go",
            "return document.getElementById('resolve-panel').hidden;",
            json!([]),
        )
        .await;
    let resolved = app.get_json(&format!("/fault/{}", id(&target)), &app.key).await;
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    let comments: Vec<&str> =
        resolved["comments"].as_array().unwrap().iter().map(|c| c["comment"].as_str().unwrap()).collect();
    assert_eq!(comments, ["Carrier replaced the line card"]);
    browser
        .wait_for(
            "the comment and the resolution in the view",
            "return document.getElementById('comments').textContent.indexOf('Carrier replaced the line card') >= 0 && \
             document.querySelector('#timeline li[data-kind=resolved]') !== null;",
            json!([]),
        )
        .await;

    // Back to the list: the fault shows resolved; a new one arrives through the stream.
    browser.click(&browser.find("#back").await).await;
    wait_live(&browser).await;
    let status = browser
        .wait_for(
            "the resolved row",
            "var tr = document.querySelector('#faults tr[data-id=\"' + arguments[0] + '\"]'); return tr && tr.dataset.status;",
            json!([id(&target)]),
        )
        .await;
    assert_eq!(status, "resolved");
    let arrived = fault(&app, "site_b", "dev_9", "reboot", "CRITICAL", "Router unreachable").await;
    wait_rows(&browser, "the new fault, live", &[id(&arrived), id(&target)]).await;
    assert_eq!(browser.run("return window.notReloaded === true;", json!([])).await, true, "no reload");
    let urls = browser.requested_urls().await;
    assert!(urls.iter().any(|u| u.ends_with("/fault/stream")), "{urls:?}");
    assert_no_console_errors(&browser, &[]).await;
    browser.quit().await;
    app.finish().await;
});

e2e_test!(a_share_link_is_minted_listed_and_revoked, |app: TestApp| async move {
    let Some(browser) = Browser::start("console_tokens", 1280, 900).await else {
        return app.finish().await;
    };
    fault(&app, "site_lyon", "tun_1", "wantunnel", "CRITICAL", "Tunnel down").await;
    sign_in(&browser, &app, &app.key).await;
    browser.click(&browser.find("#nav a[data-view=tokens]").await).await;
    browser
        .wait_for(
            "the share links view",
            "return !document.getElementById('view-tokens').hidden && document.getElementById('tokens-empty').hidden === false;",
            json!([]),
        )
        .await;

    let form = "form#mint";
    browser.type_into(&browser.find(&format!("{form} input[name=label]")).await, "Lyon NOC").await;
    let minutes = browser.find(&format!("{form} input[name=expire_after_minutes]")).await;
    browser.clear(&minutes).await;
    browser.type_into(&minutes, "90").await;
    browser.type_into(&browser.find(&format!("{form} input[name=site_ids]")).await, "site_lyon").await;
    browser.click(&browser.find(&format!("{form} input[name=severity][value=CRITICAL]")).await).await;
    browser.click(&browser.find("#mint-submit").await).await;
    let link = browser
        .wait_for(
            "the minted link",
            "var alert = document.getElementById('alert').textContent; if (alert) return 'error: ' + alert; \
             return !document.getElementById('minted').hidden && document.getElementById('short-link').value;",
            json!([]),
        )
        .await;
    let link = link.as_str().unwrap().to_owned();
    assert!(link.starts_with(&app.url("/s/")), "{link}");

    let listed = app.get_json("/fault/token", &app.key).await;
    let token = listed["data"].as_array().unwrap().iter().find(|t| t["label"] == "Lyon NOC").unwrap().clone();
    assert_eq!(token["scope"]["site_ids"], json!(["site_lyon"]), "{token}");
    assert_eq!(token["scope"]["severity"], json!(["CRITICAL"]), "{token}");
    let created = faultline_core::time::parse_rfc3339(token["created_at"].as_str().unwrap()).unwrap();
    let expires = faultline_core::time::parse_rfc3339(token["expires_at"].as_str().unwrap()).unwrap();
    assert!((expires - created - 90 * 60_000_000).abs() < 2_000_000, "90 minutes: {token}");
    let token_id = token["id"].as_str().unwrap().to_owned();
    let row = format!("#tokens tr[data-id=\"{token_id}\"]");
    let status = browser
        .wait_for(
            "the listed link",
            "var tr = document.querySelector(arguments[0]); return tr && tr.dataset.status;",
            json!([row]),
        )
        .await;
    assert_eq!(status, "active");
    let scope = browser
        .run("return document.querySelector(arguments[0] + ' td.scope').textContent;", json!([row]))
        .await;
    assert_eq!(scope, "sites: site_lyon; severity: CRITICAL");
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), StatusCode::OK);

    browser.click(&browser.find(&format!("{row} button.revoke")).await).await;
    browser
        .wait_for(
            "the revoked link",
            "var tr = document.querySelector(arguments[0]); return tr && tr.dataset.status === 'revoked' && \
             !tr.querySelector('button.revoke');",
            json!([row]),
        )
        .await;
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), StatusCode::GONE);
    assert_no_console_errors(&browser, &[]).await;
    browser.quit().await;
    app.finish().await;
});

e2e_test!(signing_out_ends_the_session, |app: TestApp| async move {
    let Some(browser) = Browser::start("console_sign_out", 1280, 900).await else {
        return app.finish().await;
    };
    sign_in(&browser, &app, &app.key).await;
    let cookie = session_cookie(&browser).await;
    let pair = format!("faultline_console={}", cookie["value"].as_str().unwrap());
    assert_eq!(whoami_with_cookie(&app, &pair).await, StatusCode::OK);

    browser.click(&browser.find("form#logout button#sign-out").await).await;
    let (notice, error) = sign_in_page(&browser, "the sign-in page after signing out").await;
    assert_eq!((notice.as_str(), error.as_str()), ("", ""));
    assert!(browser.cookies().await.iter().all(|c| c["name"] != "faultline_console"), "the cookie is gone");
    assert_eq!(whoami_with_cookie(&app, &pair).await, StatusCode::UNAUTHORIZED, "the old cookie is dead");

    // The old cookie put back into the browser opens nothing.
    browser
        .add_cookie(
            json!({"name": "faultline_console", "value": cookie["value"], "path": "/", "httpOnly": true}),
        )
        .await;
    browser.goto(&app.url("/console")).await;
    let (notice, _) = sign_in_page(&browser, "the sign-in page with the old cookie").await;
    assert!(notice.contains("session has ended"), "{notice}");
    browser.quit().await;
    app.finish().await;
});

e2e_test!(a_revoked_keys_session_goes_back_to_sign_in, |app: TestApp| async move {
    let Some(browser) = Browser::start("console_revoked", 1280, 900).await else {
        return app.finish().await;
    };
    let key = app.create_key(&app.customer_id, "faults:read,faults:write", None).await;
    fault(&app, "site_a", "dev_1", "reboot", "HIGH", "Router rebooted").await;
    sign_in(&browser, &app, &key).await;
    assert_eq!(rows(&browser).await.len(), 1);

    let keys = app.store.list_api_keys(Some(&app.customer_id)).await.unwrap();
    let newest = keys.iter().max_by_key(|k| (k.created_at, k.id.clone())).unwrap();
    app.store.revoke_api_key(&newest.id, faultline_core::time::now_micros()).await.unwrap();
    app.clock.advance(Duration::from_secs(2));

    // The next view's request is refused: the console sends the browser to sign in.
    browser.click(&browser.find("#nav a[data-view=sites]").await).await;
    let (notice, _) = sign_in_page(&browser, "the sign-in page once the key is revoked").await;
    assert!(notice.contains("session has ended"), "{notice}");
    browser.refresh().await;
    sign_in_page(&browser, "the sign-in page after a reload").await;
    assert_eq!(browser.current_url().await, app.url("/console"));
    browser.quit().await;
    app.finish().await;
});

e2e_test!(another_customers_fault_is_not_found, |app: TestApp| async move {
    let Some(browser) = Browser::start("console_tenancy", 1280, 900).await else {
        return app.finish().await;
    };
    let (_, other_key) = app.other_customer().await;
    let mut body = TestApp::fault_body("dev_secret", "reboot", "CRITICAL");
    body["message"] = json!("Other customer's secret outage");
    body["resource_ancestry_path"] = json!("site_other|dev_secret");
    let theirs: Value = app
        .client
        .post(app.url("/fault"))
        .bearer_auth(&other_key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    sign_in(&browser, &app, &app.key).await;
    assert!(rows(&browser).await.is_empty(), "none of the other customer's faults are listed");

    browser.goto(&app.url(&format!("/console#/faults/{}", id(&theirs)))).await;
    let status = browser
        .wait_for(
            "the not-found answer",
            "var s = document.getElementById('detail-status').textContent; return !/Loading/.test(s) && s;",
            json!([]),
        )
        .await;
    assert_eq!(status, "There is no such fault (it may have been deleted).");
    let shown = browser
        .run(
            "return [document.getElementById('detail-body').hidden, document.getElementById('detail-fields').children.length, \
             document.body.innerText];",
            json!([]),
        )
        .await;
    assert_eq!(shown[0], true);
    assert_eq!(shown[1], 0);
    let text = shown[2].as_str().unwrap();
    assert!(
        !text.contains("secret outage") && !text.contains("dev_secret") && !text.contains("site_other"),
        "{text}"
    );
    let alert = browser.run("return document.getElementById('alert').textContent;", json!([])).await;
    assert!(!alert.as_str().unwrap().is_empty(), "the error is said");
    assert_no_console_errors(&browser, &[&id(&theirs)]).await;
    browser.quit().await;
    app.finish().await;
});

e2e_test!(a_read_only_key_sees_no_changes_it_cannot_make, |app: TestApp| async move {
    let Some(browser) = Browser::start("console_read_only", 1280, 900).await else {
        return app.finish().await;
    };
    let target = fault(&app, "site_a", "dev_1", "reboot", "HIGH", "Router rebooted").await;
    let key = app.create_key(&app.customer_id, "faults:read", None).await;
    sign_in(&browser, &app, &key).await;
    let visible = "return Array.from(arguments[0]).map(function (s) { var e = document.querySelector(s); \
                   return [s, !!e && e.getClientRects().length > 0]; });";
    let nav = browser
        .run(
            visible,
            json!([[
                "#nav a[data-view=faults]",
                "#nav a[data-view=sites]",
                "#nav a[data-view=analytics]",
                "#nav a[data-view=tokens]",
                "#nav a[data-view=webhooks]",
            ]]),
        )
        .await;
    assert_eq!(
        nav,
        json!([
            ["#nav a[data-view=faults]", true],
            ["#nav a[data-view=sites]", true],
            ["#nav a[data-view=analytics]", true],
            ["#nav a[data-view=tokens]", false],
            ["#nav a[data-view=webhooks]", false],
        ])
    );
    let classes = browser.run("return document.body.className;", json!([])).await;
    assert!(!classes.as_str().unwrap().contains("can-faults-write"), "{classes}");

    browser.goto(&app.url(&format!("/console#/faults/{}", id(&target)))).await;
    browser
        .wait_for("the detail view", "return !document.getElementById('detail-body').hidden;", json!([]))
        .await;
    let forms =
        browser.run(visible, json!([["#resolve-panel", "form#resolve", "form#comment", "#comments"]])).await;
    assert_eq!(
        forms,
        json!([
            ["#resolve-panel", false],
            ["form#resolve", false],
            ["form#comment", false],
            ["#comments", true]
        ])
    );
    // Typed by hand, the share links' address says what is missing instead of a form.
    browser.goto(&app.url("/console#/tokens")).await;
    let denied = browser
        .wait_for(
            "the share links view",
            "return !document.getElementById('view-tokens').hidden && \
             [document.querySelector('#view-tokens [data-deny]').getClientRects().length > 0, \
             document.getElementById('mint').getClientRects().length > 0];",
            json!([]),
        )
        .await;
    assert_eq!(denied, json!([true, false]));
    assert_no_console_errors(&browser, &[]).await;
    browser.quit().await;
    app.finish().await;
});

e2e_test!(on_a_phone_the_list_fits_the_width, |app: TestApp| async move {
    let Some(browser) = Browser::start("console_phone", 800, 740).await else {
        return app.finish().await;
    };
    browser.emulate(360, 740, true).await;
    name_site(&app, "site_lyon", "Lyon branch with a rather long name").await;
    for i in 0..8 {
        let message =
            format!("Tunnel {i} to DC-East-Frankfurt-Interconnect-Primary down after repeated flaps");
        fault(
            &app,
            "site_lyon",
            &format!("tun_with_a_long_identifier_{i}"),
            "wantunnel",
            "CRITICAL",
            &message,
        )
        .await;
    }
    sign_in(&browser, &app, &app.key).await;
    assert_eq!(rows(&browser).await.len(), 8);
    let width = browser
        .run(
            "var wrap = document.querySelector('#view-faults .table-wrap'); return [window.innerWidth, \
             document.documentElement.scrollWidth, document.body.scrollWidth, wrap.scrollWidth - wrap.clientWidth];",
            json!([]),
        )
        .await;
    assert_eq!(width[0], 360, "the window is a phone's: {width}");
    assert!(
        width[1].as_u64().unwrap() <= 360 && width[2].as_u64().unwrap() <= 360,
        "no sideways scroll: {width}"
    );
    assert_eq!(width[3], 0, "nor inside the table: {width}");
    // The filters start folded, so the first fault is on the first screen.
    let first = browser
        .run(
            "return [document.getElementById('filters-fold').open, \
             document.querySelector('table#faults tbody tr').getBoundingClientRect().top, window.innerHeight];",
            json!([]),
        )
        .await;
    assert_eq!(first[0], false, "folded filters: {first}");
    assert!(first[1].as_f64().unwrap() < first[2].as_f64().unwrap(), "the first row on screen: {first}");
    assert_no_console_errors(&browser, &[]).await;
    browser.quit().await;
    app.finish().await;
});

e2e_test!(the_first_load_is_under_200_kb, |app: TestApp| async move {
    let client = reqwest::Client::builder().redirect(redirect::Policy::none()).build().unwrap();
    let response = client
        .post(app.url("/console/login"))
        .header(ORIGIN, &app.base)
        .form(&[("api_key", app.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = client.get(app.url("/console")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.bytes().await.unwrap();
    let text = std::str::from_utf8(&html).unwrap();
    let script = text.split("<script src=\"").nth(1).expect("the shell's script").split('"').next().unwrap();
    assert!(script.starts_with("/assets/console-") && script.ends_with(".js"), "{script}");
    let asset = client.get(app.url(script)).send().await.unwrap();
    assert_eq!(asset.status(), StatusCode::OK);
    let script_bytes = asset.bytes().await.unwrap().len();
    let total = html.len() + script_bytes;
    assert!(
        total < 200_000,
        "the console's document ({} B) and script ({script_bytes} B): {total} B",
        html.len()
    );
    app.finish().await;
});

/// The screenshots of `docs/`: the console on a demo fleet (`faultline_core::demo`), signed in,
/// at 1440×900 and 390×844, and a fault's detail. Run with
/// `FAULTLINE_SCREENSHOTS=$PWD/docs cargo test -p faultline-server --test it console_screenshots -- --ignored`
/// from the workspace's root (tests run in the crate's directory: give an absolute path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes screenshots when FAULTLINE_SCREENSHOTS names a directory"]
async fn console_screenshots() {
    let Some(dir) = std::env::var_os("FAULTLINE_SCREENSHOTS").map(std::path::PathBuf::from) else {
        return;
    };
    let Some(app) = TestApp::spawn(faultline_store::Backend::Sqlite, "console_screenshots").await else {
        return;
    };
    let Some(browser) = Browser::start("console_screenshots", 1440, 900).await else {
        return app.finish().await;
    };
    browser.emulate(1440, 900, false).await;
    load_demo(&app).await;
    sign_in(&browser, &app, &app.key).await;
    let save = |name: &str, png: Vec<u8>| {
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{name}: {} bytes", png.len());
        std::fs::write(dir.join(name), png).unwrap();
    };

    let first = rows(&browser).await;
    wait_live(&browser).await;
    save("console-desktop.png", browser.screenshot().await);

    // The detail of the newest open fault, commented on.
    let open = first.iter().find(|r| r[2] == "unresolved").expect("an open fault");
    let path = format!("/fault/{}/comment", open[0]);
    let comment = json!({"comment": "Carrier ticket 4411 opened; engineer on site at 14:00."});
    assert_eq!(
        app.request(Method::POST, &path).json(&comment).send().await.unwrap().status(),
        StatusCode::CREATED
    );
    browser.goto(&app.url(&format!("/console#/faults/{}", open[0]))).await;
    browser
        .wait_for(
            "the detail view",
            "return !document.getElementById('detail-body').hidden && \
             document.querySelectorAll('#timeline li[data-kind]').length >= 2;",
            json!([]),
        )
        .await;
    save("console-detail.png", browser.screenshot().await);

    browser.emulate(390, 844, true).await;
    // A new document at the phone's width (a hash change would keep the desktop's state).
    browser.goto("about:blank").await;
    browser.goto(&app.url("/console#/faults")).await;
    rows(&browser).await;
    save("console-phone.png", browser.screenshot().await);
    browser.quit().await;
    app.finish().await;
}

/// A demo fleet's history (as `faultline demo` loads it) for customer A: named sites, and a
/// few thousand faults over the last year, the newest still open.
async fn load_demo(app: &TestApp) {
    use faultline_core::demo::{DemoConfig, DemoFaults};
    let now = faultline_core::time::now_micros();
    let config = DemoConfig {
        faults: 3_000,
        sites: 40,
        customers: 1,
        seed: 1,
        now,
        retention_seconds: 400 * 86_400,
        customer_ids: vec![app.customer_id.clone()],
    };
    let mut generator = DemoFaults::new(config).unwrap();
    let names: Vec<(String, String)> =
        generator.site_names().into_iter().map(|(_, site, name)| (site, name)).collect();
    app.store.name_sites(&app.customer_id, &names, now).await.unwrap();
    loop {
        let chunk = generator.next_chunk(500);
        if chunk.is_empty() {
            break;
        }
        app.store.insert_faults(&chunk, "demo", None).await.unwrap();
    }
}
