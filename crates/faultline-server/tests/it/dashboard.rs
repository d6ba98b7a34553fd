//! The shared dashboard: the page a short link opens, its headers and size, and (in headless
//! Chromium) what a viewer sees: the faults, filters, live arrivals, revocation, framing.

use std::sync::{Arc, OnceLock};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::e2e_test;
use crate::harness::TestApp;

/// A fault of customer A, `created_at` `minutes_ago` minutes ago.
async fn seed(
    app: &TestApp,
    resource: &str,
    site: &str,
    severity: &str,
    message: &str,
    minutes_ago: i64,
) -> Value {
    let mut body = TestApp::fault_body(resource, "wantunnel", severity);
    body["resource_ancestry_path"] = json!(format!("{site}|{resource}"));
    body["message"] = json!(message);
    body["cause"] = json!(format!("cause of {message}"));
    let at = faultline_core::time::now_micros() - minutes_ago * 60_000_000;
    body["created_at"] = json!(faultline_core::time::format_micros(at));
    app.create_fault(body).await
}

async fn resolve(app: &TestApp, fault: &Value) {
    let path = format!("/fault/{}/resolve", fault["id"].as_str().unwrap());
    assert_eq!(app.request(Method::POST, &path).send().await.unwrap().status(), StatusCode::OK);
}

fn id(fault: &Value) -> String {
    fault["id"].as_str().unwrap().to_owned()
}

/// The ids of the rows shown in a fault table (`open` or `resolved`), in order.
const ROW_IDS: &str = "return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr'))\
    .map(function (tr) { return tr.getAttribute('data-id'); });";

e2e_test!(the_page_carries_its_token_and_locks_itself_down, |app: TestApp| async move {
    // The longest texts a fault may have, a hundred times: the first render stays small.
    let events: Vec<Value> = (0..100)
        .map(|i| {
            json!({"action": "trigger", "resource_id": format!("dev_{i}"), "type": "reboot", "severity": "LOW",
                "message": "m".repeat(1000), "cause": "c".repeat(2000)})
        })
        .collect();
    let r =
        app.request(Method::POST, "/fault/events").json(&json!({ "events": events })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    seed(&app, "tun_a", "site_A", "CRITICAL", "Site A <tunnel> down", 0).await;
    let minted =
        crate::tokens::mint(&app, json!({"expire_after_minutes": 4320, "label": "NOC & wall"})).await;
    let jwt = minted["token"].as_str().unwrap();
    let page = app.client.get(minted["short_link"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let csp = headers["content-security-policy"].to_str().unwrap().to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = page.text().await.unwrap();
    // The JWT handed out at minting, signed again from its row, in the page and in no URL.
    assert!(html.contains(&format!("<meta name=\"faultline-token\" content=\"{jwt}\">")), "{html}");
    assert_eq!(html.matches(jwt).count(), 1);
    assert!(html.contains("Site A &lt;tunnel&gt; down") && html.contains("NOC &amp; wall"), "escaped");
    assert!(!html.contains("<script>") && !html.contains("style=\""), "no inline script or style");
    assert!(html.contains("data-label=\"Duration\" class=\"dur\" data-start=\""), "{html}");
    assert!(html.contains(">less than a minute</td>"), "a first view without script shows durations too");

    // First render: the page, its stylesheet and its script, well under 100 KB.
    let mut bytes = html.len();
    for (asset, content_type) in [(".css\"", "text/css"), (".js\"", "text/javascript")] {
        let end = html.find(asset).unwrap() + asset.len() - 1;
        let start = html[..end].rfind("/assets/dashboard-").unwrap();
        let r = app.client.get(app.url(&html[start..end])).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", &html[start..end]);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(content_type));
        assert!(r.headers()["cache-control"].to_str().unwrap().contains("immutable"));
        bytes += r.bytes().await.unwrap().len();
    }
    assert!(bytes < 100_000, "first render is {bytes} bytes");
    assert!(html.contains("more faults load with the live view."), "the first view says it is partial");
    let missing = app.client.get(app.url("/assets/dashboard-000000000000.js")).send().await.unwrap();
    crate::harness::assert_error(missing, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found")
        .await;
    app.finish().await;
});

e2e_test!(a_viewer_sees_filters_and_follows_the_faults_live, |app: TestApp| async move {
    let Some(browser) = Browser::start("dashboard_live", 1280, 900).await else {
        return app.finish().await;
    };
    let critical = seed(&app, "tun_a", "site_A", "CRITICAL", "Tunnel to DC-East down", 30).await;
    let low = seed(&app, "dev_b", "site_B", "LOW", "Fan speed high", 120).await;
    let fixed = seed(&app, "dev_c", "site_A", "HIGH", "Router rebooted", 60).await;
    resolve(&app, &fixed).await;
    let old = seed(&app, "dev_d", "site_B", "MEDIUM", "Old outage", 3 * 24 * 60).await;
    resolve(&app, &old).await;
    let minted = crate::tokens::mint(&app, json!({"expire_after_minutes": 4320, "label": "NOC wall"})).await;
    let token_id = minted["id"].as_str().unwrap().to_owned();
    let jwt = minted["token"].as_str().unwrap().to_owned();

    browser.goto(minted["short_link"].as_str().unwrap()).await;
    browser
        .wait_for(
            "the first load",
            "return document.getElementById('live').textContent.indexOf('Live (') === 0;",
            json!([]),
        )
        .await;
    // Open faults first (newest first), then the last 24 hours; older resolved ones are not listed.
    assert_eq!(browser.run(ROW_IDS, json!(["open"])).await, json!([id(&critical), id(&low)]));
    assert_eq!(browser.run(ROW_IDS, json!(["resolved"])).await, json!([id(&fixed)]));
    let first_row = browser
        .run(
            "var tr = document.querySelector('#open tbody tr'); return ['.sev', 'td:nth-child(2)', '.site', '.res', \
             '.msg', '.cause', 'time', '.dur'].map(function (s) { return tr.querySelector(s).textContent; });",
            json!([]),
        )
        .await;
    let cells: Vec<&str> = first_row.as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(
        &cells[..6],
        [
            "CRITICAL",
            "wantunnel",
            "site_A",
            "tun_a",
            "Tunnel to DC-East down",
            "cause of Tunnel to DC-East down"
        ]
    );
    assert!(cells[6].starts_with("today ") || cells[6].contains(':'), "start in local time: {}", cells[6]);
    assert!(
        ["29m ", "30m ", "31m "].iter().any(|m| cells[7].starts_with(m)),
        "running duration: {}",
        cells[7]
    );
    let expiry = browser.run("return document.getElementById('expiry').textContent;", json!([])).await;
    assert!(expiry.as_str().unwrap().starts_with("link expires in 3 days"), "{expiry}");

    // The chart and the top list say what the API says.
    let analytics = app.get_json("/fault/analytics?interval=hour&group_by=severity", &jwt).await;
    let summary = browser
        .wait_for(
            "the chart",
            "var s = document.getElementById('chart-summary'); return s && s.textContent;",
            json!([]),
        )
        .await;
    assert_eq!(analytics["totals"]["count"], 3, "the last 48 hours, by default");
    assert!(summary.as_str().unwrap().starts_with("3 faults from "), "{summary}");
    assert!(summary.as_str().unwrap().ends_with("Open now: 2."), "{summary}");
    browser
        .run(
            "var r = document.getElementById('range'); r.value = 'day'; r.dispatchEvent(new Event('change'));",
            json!([]),
        )
        .await;
    let thirty_days = "var s = document.getElementById('chart-summary'); return s.textContent.indexOf('4 faults from ') === 0;";
    browser.wait_for("the 30-day chart, with the older fault", thirty_days, json!([])).await;
    let bars = browser
        .run("return document.querySelectorAll('#chart svg rect[class^=fill-]').length;", json!([]))
        .await;
    assert!(bars.as_u64().unwrap() >= 2, "bars of different days or severities: {bars}");
    let top = app.get_json("/fault/top_faults?limit=10", &jwt).await;
    let expected: Vec<Value> = top.as_array().unwrap().iter().map(|t| t["resource_id"].clone()).collect();
    let shown = browser
        .wait_for(
            "the top list",
            "var l = document.querySelectorAll('#top li[data-resource]'); return l.length && Array.from(l)\
             .map(function (li) { return li.getAttribute('data-resource'); });",
            json!([]),
        )
        .await;
    assert_eq!(shown, Value::Array(expected));

    // From a phone to a wall screen: nothing wider than the window; on the wall, the lists sit
    // beside the chart and the top list; on a phone, rows are cards with their labels.
    let layout = "return [document.documentElement.scrollWidth <= window.innerWidth, \
        document.querySelector('.side').getBoundingClientRect().left >= \
        document.querySelector('.faults').getBoundingClientRect().right, \
        getComputedStyle(document.querySelector('#open tbody td'), '::before').content];";
    for (width, height, beside, labels) in
        [(360, 740, false, true), (1280, 900, false, false), (3840, 2160, true, false)]
    {
        // Emulated: a window will not go narrower than 500 px, so resizing would test 500.
        browser.emulate(width, height, width < 500).await;
        let inner = browser.run("return window.innerWidth;", json!([])).await;
        assert_eq!(inner, json!(width), "the viewport is {width} px wide");
        let what = format!("the layout at {width} px");
        let check = format!("var r = (function () {{ {layout} }})(); return r[0] && r[1] === {beside} && r;");
        let seen = browser.wait_for(&what, &check, json!([])).await;
        assert_eq!(seen[2] == json!("\"Severity\""), labels, "{what}: card labels {}", seen[2]);
    }
    browser.emulate(1280, 900, false).await;

    // Filters: text typed into the search box, then a severity.
    let search = browser.find("input[name=q]").await;
    browser.type_into(&search, "dc-east").await;
    let narrowed = browser
        .wait_for(
            "the text filter",
            "var ids = Array.from(document.querySelectorAll('#open tbody tr')); return ids.length === 1 && \
             ids[0].getAttribute('data-id');",
            json!([]),
        )
        .await;
    assert_eq!(narrowed, json!(id(&critical)));
    assert_eq!(browser.run(ROW_IDS, json!(["resolved"])).await, json!([]));
    browser
        .run(
            "var f = document.getElementById('filters'); f.elements.q.value = ''; f.elements.severity.value = 'LOW'; \
             f.elements.severity.dispatchEvent(new Event('change', {bubbles: true}));",
            json!([]),
        )
        .await;
    assert_eq!(browser.run(ROW_IDS, json!(["open"])).await, json!([id(&low)]));
    browser
        .run(
            "var f = document.getElementById('filters'); f.elements.severity.value = ''; f.elements.resolved.click();",
            json!([]),
        )
        .await;
    assert_eq!(
        browser.run("return document.getElementById('resolved').hidden;", json!([])).await,
        json!(true)
    );
    assert_eq!(browser.run(ROW_IDS, json!(["open"])).await, json!([id(&critical), id(&low)]));

    // Live: a new fault, a resolution and a comment arrive without a reload.
    let arrived = seed(&app, "tun_e", "site_C", "WARNING", "Packet loss 4%", 0).await;
    let comment = app.request(Method::POST, &format!("/fault/{}/comment", id(&critical)));
    let comment = comment.json(&json!({"comment": "ISP ticket 4411"})).send().await.unwrap();
    assert_eq!(comment.status(), StatusCode::CREATED);
    resolve(&app, &low).await;
    let live = format!(
        "return document.querySelector('#open tr[data-id=\"{}\"]') !== null && \
         document.querySelector('#open tr[data-id=\"{}\"]') === null && \
         document.querySelector('#open tr[data-id=\"{}\"]').textContent.indexOf('ISP ticket 4411') >= 0;",
        id(&arrived),
        id(&low),
        id(&critical)
    );
    browser.wait_for("the new fault, the resolution and the comment", &live, json!([])).await;
    let label = browser.run("return document.getElementById('live').textContent;", json!([])).await;
    assert!(
        label.as_str().unwrap().starts_with("Live (stream)"),
        "the page follows the event stream: {label}"
    );
    browser.run("document.getElementById('filters').elements.resolved.click();", json!([])).await;
    assert_eq!(browser.run(ROW_IDS, json!(["resolved"])).await, json!([id(&fixed), id(&low)]));
    assert_eq!(browser.run(ROW_IDS, json!(["open"])).await, json!([id(&arrived), id(&critical)]));

    // Nothing went wrong, and nothing left loopback.
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let urls = browser.requested_urls().await;
    assert!(urls.iter().any(|u| u.contains("/fault?recent=true")), "{urls:?}");
    assert!(urls.iter().any(|u| u.ends_with("/fault/stream")), "the page reads the event stream: {urls:?}");
    for url in &urls {
        assert!(url.starts_with(&app.base) || url.starts_with("data:"), "a request left the service: {url}");
        assert!(!url.contains(&jwt), "the token travelled in a URL: {url}");
    }
    let resources = browser
        .run(
            "return performance.getEntriesByType('resource').map(function (e) { return e.name; });",
            json!([]),
        )
        .await;
    for url in resources.as_array().unwrap() {
        assert!(url.as_str().unwrap().starts_with(&app.base), "{url}");
    }

    // Revoked: the open page notices, and the link answers the 410 page.
    let revoked = app.request(Method::DELETE, &format!("/fault/token/{token_id}")).send().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let gone = "var g = document.getElementById('gone'); return !g.hidden && document.getElementById('main').hidden \
                && g.textContent;";
    let text = browser.wait_for("the revoked state", gone, json!([])).await;
    assert!(text.as_str().unwrap().contains("This link is no longer available"), "{text}");
    browser.goto(minted["short_link"].as_str().unwrap()).await;
    let reloaded = browser.run("return document.querySelector('h1').textContent;", json!([])).await;
    assert_eq!(reloaded, "This link is no longer available");
    browser.quit().await;
    app.finish().await;
});

/// A second loopback server whose page shows `link` in an iframe.
async fn framing_site(listener: tokio::net::TcpListener, link: Arc<OnceLock<String>>) {
    let page = axum::routing::get(move || {
        let link = link.get().cloned().unwrap_or_default();
        async move {
            axum::response::Html(format!(
                "<!doctype html><title>host</title><link rel=\"icon\" href=\"data:,\"><iframe id=\"embed\" src=\"{link}\" width=\"800\" height=\"600\"></iframe>"
            ))
        }
    });
    let router = axum::Router::new().route("/", page);
    tokio::spawn(async move { axum::serve(listener, router).await });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_opens_in_frames_of_allowed_origins_only() {
    let Some(browser) = Browser::start("dashboard_frames", 1100, 800).await else { return };
    let allowed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_origin = format!("http://{}", allowed.local_addr().unwrap());
    let refused_origin = format!("http://{}", refused.local_addr().unwrap());
    let origin = allowed_origin.clone();
    let configure = move |config: &mut faultline_server::ServerConfig| config.frame_ancestors = vec![origin];
    let Some(app) =
        TestApp::spawn_with(faultline_store::Backend::Sqlite, "dashboard_frames", configure, None).await
    else {
        return;
    };
    let fault = seed(&app, "tun_f", "site_F", "HIGH", "Framed fault", 1).await;
    let minted = crate::tokens::mint(&app, json!({"expire_after_minutes": 60})).await;
    let link = Arc::new(OnceLock::new());
    link.set(minted["short_link"].as_str().unwrap().to_owned()).unwrap();
    framing_site(allowed, link.clone()).await;
    framing_site(refused, link).await;

    let page = app.client.get(minted["short_link"].as_str().unwrap()).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.ends_with(&format!("frame-ancestors {allowed_origin}")), "{csp}");

    browser.goto(&allowed_origin).await;
    let frame = browser.find("#embed").await;
    browser.switch_to_frame(Some(&frame)).await;
    let row = format!(
        "return document.getElementById('live').textContent.indexOf('Live (') === 0 && \
         document.querySelector('#open tr[data-id=\"{}\"]') !== null;",
        id(&fault)
    );
    browser.wait_for("the dashboard inside the allowed frame", &row, json!([])).await;
    browser.switch_to_frame(None).await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors in the allowed frame: {errors:?}");

    browser.goto(&refused_origin).await;
    let frame = browser.find("#embed").await;
    browser.switch_to_frame(Some(&frame)).await;
    let blocked = browser
        .wait_for(
            "the refused frame to settle",
            "return document.readyState === 'complete' && location.href !== 'about:blank' && location.href;",
            json!([]),
        )
        .await;
    assert!(blocked.as_str().unwrap().starts_with("chrome-error://"), "the frame was refused: {blocked}");
    assert_eq!(browser.run("return document.getElementById('open');", json!([])).await, Value::Null);
    browser.switch_to_frame(None).await;
    let refusal = browser.console_errors().await;
    assert!(
        refusal.iter().any(|e| e["message"].as_str().is_some_and(|m| m.contains("frame-ancestors"))),
        "the browser says why: {refusal:?}"
    );
    browser.quit().await;
    app.finish().await;
}
