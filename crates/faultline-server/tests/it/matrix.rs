//! The route × method × credential matrix: every route, every kind of credential, the
//! status each must get, and proof that a refused write changed nothing. Later features add
//! their routes (and the access-token credentials) to the table.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::e2e_test;
use crate::harness::TestApp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    None,
    Malformed,
    RevokedKey,
    ReadOnly,
    OtherCustomer,
    Owner,
    /// An access token of the owner, unrestricted scope.
    Token,
    RevokedToken,
    ExpiredToken,
}

const CREDS: [Cred; 9] = [
    Cred::None,
    Cred::Malformed,
    Cred::RevokedKey,
    Cred::ReadOnly,
    Cred::OtherCustomer,
    Cred::Owner,
    Cred::Token,
    Cred::RevokedToken,
    Cred::ExpiredToken,
];

struct Route {
    method: Method,
    /// `{fault}` is replaced by a fault of the owner's, `{token}` by a fresh token id of the
    /// owner's.
    path: &'static str,
    body: Option<Value>,
    /// Statuses for each of [`CREDS`], in order.
    expect: [u16; 9],
    writes: bool,
}

fn routes() -> Vec<Route> {
    let body = || Some(TestApp::fault_body("dev_m", "reboot", "LOW"));
    vec![
        Route {
            method: Method::GET,
            path: "/whoami",
            body: None,
            expect: [401, 401, 401, 200, 200, 200, 200, 401, 401],
            writes: false,
        },
        Route {
            method: Method::GET,
            path: "/fault",
            body: None,
            expect: [401, 401, 401, 200, 200, 200, 200, 401, 401],
            writes: false,
        },
        Route {
            method: Method::GET,
            path: "/fault?site=site_m&recent=true",
            body: None,
            expect: [401, 401, 401, 200, 200, 200, 200, 401, 401],
            writes: false,
        },
        Route {
            method: Method::GET,
            path: "/fault/analytics?interval=hour&group_by=site",
            body: None,
            expect: [401, 401, 401, 200, 200, 200, 200, 401, 401],
            writes: false,
        },
        Route {
            method: Method::GET,
            path: "/fault/sla?hours=mon-fri%2008:00-17:00",
            body: None,
            expect: [401, 401, 401, 200, 200, 200, 200, 401, 401],
            writes: false,
        },
        Route {
            method: Method::GET,
            path: "/fault/recent?site=site_m",
            body: None,
            expect: [401, 401, 401, 200, 200, 200, 200, 401, 401],
            writes: false,
        },
        Route {
            method: Method::GET,
            path: "/recent",
            body: None,
            expect: [401, 401, 401, 200, 200, 200, 200, 401, 401],
            writes: false,
        },
        Route {
            method: Method::GET,
            path: "/fault/top_faults?days=1",
            body: None,
            expect: [401, 401, 401, 200, 200, 200, 200, 401, 401],
            writes: false,
        },
        Route {
            method: Method::POST,
            path: "/fault",
            body: body(),
            expect: [401, 401, 401, 403, 201, 201, 403, 401, 401],
            writes: true,
        },
        Route {
            method: Method::GET,
            path: "/fault/{fault}",
            body: None,
            expect: [401, 401, 401, 200, 404, 200, 200, 401, 401],
            writes: false,
        },
        Route {
            method: Method::DELETE,
            path: "/fault/{fault}",
            body: None,
            expect: [401, 401, 401, 403, 404, 204, 403, 401, 401],
            writes: true,
        },
        Route {
            method: Method::POST,
            path: "/fault/events",
            body: Some(
                serde_json::json!({"events": [{"action": "trigger", "resource_id": "dev_e", "type": "reboot",
                "severity": "LOW", "message": "m"}]}),
            ),
            expect: [401, 401, 401, 403, 200, 200, 403, 401, 401],
            writes: true,
        },
        Route {
            method: Method::POST,
            path: "/fault/{fault}/comment",
            body: Some(serde_json::json!({"comment": "matrix"})),
            expect: [401, 401, 401, 403, 404, 201, 403, 401, 401],
            writes: true,
        },
        Route {
            method: Method::POST,
            path: "/fault/{fault}/resolve",
            body: None,
            expect: [401, 401, 401, 403, 404, 200, 403, 401, 401],
            writes: true,
        },
        Route {
            method: Method::GET,
            path: "/fault/{fault}/timeline",
            body: None,
            expect: [401, 401, 401, 200, 404, 200, 200, 401, 401],
            writes: false,
        },
        Route {
            method: Method::POST,
            path: "/fault/token",
            body: Some(serde_json::json!({"expire_after_minutes": 5})),
            expect: [401, 401, 401, 403, 200, 200, 403, 401, 401],
            writes: true,
        },
        Route {
            method: Method::GET,
            path: "/fault/token",
            body: None,
            expect: [401, 401, 401, 403, 200, 200, 403, 401, 401],
            writes: false,
        },
        Route {
            method: Method::DELETE,
            path: "/fault/token/{token}",
            body: None,
            expect: [401, 401, 401, 403, 404, 204, 403, 401, 401],
            writes: true,
        },
        Route {
            method: Method::GET,
            path: "/fault/stream",
            body: None,
            expect: [401, 401, 401, 200, 200, 200, 200, 401, 401],
            writes: false,
        },
        Route {
            method: Method::POST,
            path: "/heartbeat",
            body: Some(serde_json::json!({"site_id": "site_m"})),
            expect: [401, 401, 401, 403, 200, 200, 403, 401, 401],
            writes: true,
        },
        // Public routes answer alike whatever credential comes along (and ignore it).
        Route {
            method: Method::GET,
            path: "/fault/token/{jwt}",
            body: None,
            expect: [200; 9],
            writes: false,
        },
        Route {
            method: Method::GET,
            path: "/.well-known/jwks.json",
            body: None,
            expect: [200; 9],
            writes: false,
        },
        Route { method: Method::GET, path: "/s/{link}", body: None, expect: [200; 9], writes: false },
        Route { method: Method::GET, path: "{script}", body: None, expect: [200; 9], writes: false },
        Route { method: Method::GET, path: "{style}", body: None, expect: [200; 9], writes: false },
        Route { method: Method::GET, path: "/assets/nope.js", body: None, expect: [404; 9], writes: false },
        Route { method: Method::GET, path: "/healthz", body: None, expect: [200; 9], writes: false },
    ]
}

/// Everything of the owner's a refused write could have changed: faults and tokens.
async fn owner_view(app: &TestApp) -> (Value, Value) {
    let faults = app.get_json("/fault?limit=100", &app.key).await["data"].clone();
    let mut tokens = app.get_json("/fault/token", &app.key).await["data"].clone();
    // Use counts and times move with every use of a token; they are not the owner's data.
    for token in tokens.as_array_mut().unwrap() {
        token.as_object_mut().unwrap().retain(|k, _| k != "use_count" && k != "last_used_at");
    }
    (faults, tokens)
}

/// The id and JWT of a fresh access token of the owner's.
async fn owner_token(app: &TestApp) -> (String, String) {
    let minted = crate::tokens::mint(app, serde_json::json!({"expire_after_minutes": 30})).await;
    (minted["id"].as_str().unwrap().to_owned(), minted["token"].as_str().unwrap().to_owned())
}

/// A JWT of the owner's whose row and `exp` are in the past.
async fn expired_token(app: &TestApp) -> String {
    let (id, jwt) = owner_token(app).await;
    let header = crate::tokens::decode_part(jwt.split('.').next().unwrap());
    let mut claims = crate::tokens::decode_part(jwt.split('.').nth(1).unwrap());
    let now = faultline_core::time::now_micros() / 1_000_000;
    claims["iat"] = serde_json::json!(now - 7200);
    claims["nbf"] = serde_json::json!(now - 7200);
    claims["exp"] = serde_json::json!(now - 3600);
    let _ = id;
    crate::tokens::sign_with_active_key(app, header, claims).await
}

e2e_test!(every_route_answers_every_credential_as_specified, |app: TestApp| async move {
    let read_only = app.create_key(&app.customer_id, "faults:read", None).await;
    let revoked = app.create_key(&app.customer_id, "all", None).await;
    let revoked_id =
        app.store.list_api_keys(Some(&app.customer_id)).await.unwrap().last().unwrap().id.clone();
    app.store.revoke_api_key(&revoked_id, faultline_core::time::now_micros()).await.unwrap();
    let (_, other) = app.other_customer().await;
    let (_, token) = owner_token(&app).await;
    let shared = crate::tokens::mint(&app, serde_json::json!({"expire_after_minutes": 30})).await;
    let link_code = shared["short_link"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let shared_jwt = shared["token"].as_str().unwrap().to_owned();
    let (revoked_token_id, revoked_token) = owner_token(&app).await;
    app.request(Method::DELETE, &format!("/fault/token/{revoked_token_id}")).send().await.unwrap();
    let expired = expired_token(&app).await;

    for route in routes() {
        for (index, cred) in CREDS.iter().enumerate() {
            let mut body = TestApp::fault_body("dev_m", "reboot", "LOW");
            body["resource_ancestry_path"] = "site_m|dev_m".into();
            let fault = app.create_fault(body).await;
            let (fresh_token, _) = owner_token(&app).await;
            let path = route
                .path
                .replace("{fault}", fault["id"].as_str().unwrap())
                .replace("{token}", &fresh_token)
                .replace("{jwt}", &shared_jwt)
                .replace("{link}", &link_code)
                .replace("{script}", &faultline_server::dashboard::asset_paths()[0])
                .replace("{style}", &faultline_server::dashboard::asset_paths()[1]);
            let before = owner_view(&app).await;

            let mut request = app.client.request(route.method.clone(), app.url(&path));
            request = match cred {
                Cred::None => request,
                Cred::Malformed => request.header("authorization", "Bearer not-a-credential"),
                Cred::RevokedKey => request.bearer_auth(&revoked),
                Cred::ReadOnly => request.bearer_auth(&read_only),
                Cred::OtherCustomer => request.bearer_auth(&other),
                Cred::Owner => request.bearer_auth(&app.key),
                Cred::Token => request.bearer_auth(&token),
                Cred::RevokedToken => request.bearer_auth(&revoked_token),
                Cred::ExpiredToken => request.bearer_auth(&expired),
            };
            if let Some(body) = &route.body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            assert_eq!(status.as_u16(), route.expect[index], "{} {} as {cred:?}", route.method, route.path);

            let after = owner_view(&app).await;
            if route.writes && (status.is_client_error() || *cred == Cred::OtherCustomer) {
                assert_eq!(
                    after, before,
                    "{} {} as {cred:?} changed the owner's data",
                    route.method, route.path
                );
            }
            // The stream never ends: its tenancy is checked in `stream.rs`.
            let endless = route.path == "/fault/stream";
            if status == StatusCode::OK
                && *cred == Cred::OtherCustomer
                && route.method == Method::GET
                && !endless
            {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                // A page (`data`), or a bare array of faults or of resources with their faults.
                // (A public route shows what its path grants, whoever asks: not checked here.)
                let public = route.expect[0] != 401;
                let items = body.get("data").or(Some(&body)).and_then(Value::as_array).filter(|_| !public);
                if let Some(items) = items {
                    let (faults, tokens) = &after;
                    let owned: Vec<&Value> = faults
                        .as_array()
                        .unwrap()
                        .iter()
                        .chain(tokens.as_array().unwrap())
                        .map(|x| &x["id"])
                        .collect();
                    let nested = items.iter().filter_map(|item| item["faults"].as_array()).flatten();
                    assert!(
                        items.iter().chain(nested).all(|item| !owned.contains(&&item["id"])),
                        "another customer sees none of the owner's data: {body}"
                    );
                }
            }
        }
    }
    app.finish().await;
});
