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
}

const CREDS: [Cred; 6] =
    [Cred::None, Cred::Malformed, Cred::RevokedKey, Cred::ReadOnly, Cred::OtherCustomer, Cred::Owner];

struct Route {
    method: Method,
    /// `{fault}` is replaced by a fault of the owner's.
    path: &'static str,
    body: Option<Value>,
    /// Statuses for [None, Malformed, RevokedKey, ReadOnly, OtherCustomer, Owner].
    expect: [u16; 6],
    writes: bool,
}

fn routes() -> Vec<Route> {
    let body = || Some(TestApp::fault_body("dev_m", "reboot", "LOW"));
    vec![
        Route {
            method: Method::GET,
            path: "/whoami",
            body: None,
            expect: [401, 401, 401, 200, 200, 200],
            writes: false,
        },
        Route {
            method: Method::GET,
            path: "/fault",
            body: None,
            expect: [401, 401, 401, 200, 200, 200],
            writes: false,
        },
        Route {
            method: Method::GET,
            path: "/fault?site=site_m&recent=true",
            body: None,
            expect: [401, 401, 401, 200, 200, 200],
            writes: false,
        },
        Route {
            method: Method::POST,
            path: "/fault",
            body: body(),
            expect: [401, 401, 401, 403, 201, 201],
            writes: true,
        },
        Route {
            method: Method::GET,
            path: "/fault/{fault}",
            body: None,
            expect: [401, 401, 401, 200, 404, 200],
            writes: false,
        },
        Route {
            method: Method::DELETE,
            path: "/fault/{fault}",
            body: None,
            expect: [401, 401, 401, 403, 404, 204],
            writes: true,
        },
    ]
}

/// The owner's faults as the owner sees them: ids in order.
async fn owner_view(app: &TestApp) -> Vec<Value> {
    app.get_json("/fault?limit=100", &app.key).await["data"].as_array().unwrap().clone()
}

e2e_test!(every_route_answers_every_credential_as_specified, |app: TestApp| async move {
    let read_only = app.create_key(&app.customer_id, "faults:read", None).await;
    let revoked = app.create_key(&app.customer_id, "all", None).await;
    let revoked_id =
        app.store.list_api_keys(Some(&app.customer_id)).await.unwrap().last().unwrap().id.clone();
    app.store.revoke_api_key(&revoked_id, faultline_core::time::now_micros()).await.unwrap();
    let (_, other) = app.other_customer().await;

    for route in routes() {
        for (index, cred) in CREDS.iter().enumerate() {
            let mut body = TestApp::fault_body("dev_m", "reboot", "LOW");
            body["resource_ancestry_path"] = "site_m|dev_m".into();
            let fault = app.create_fault(body).await;
            let path = route.path.replace("{fault}", fault["id"].as_str().unwrap());
            let before = owner_view(&app).await;

            let mut request = app.client.request(route.method.clone(), app.url(&path));
            request = match cred {
                Cred::None => request,
                Cred::Malformed => request.header("authorization", "Bearer not-a-credential"),
                Cred::RevokedKey => request.bearer_auth(&revoked),
                Cred::ReadOnly => request.bearer_auth(&read_only),
                Cred::OtherCustomer => request.bearer_auth(&other),
                Cred::Owner => request.bearer_auth(&app.key),
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
            if status == StatusCode::OK && *cred == Cred::OtherCustomer && route.method == Method::GET {
                let body: Value = response.json().await.unwrap();
                if let Some(data) = body.get("data") {
                    assert_eq!(
                        data,
                        &Value::Array(vec![]),
                        "another customer sees none of the owner's faults"
                    );
                }
            }
        }
    }
    app.finish().await;
});
