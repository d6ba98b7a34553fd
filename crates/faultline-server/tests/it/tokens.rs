//! Access tokens end to end: the seed operation, scope, revocation, short links, the JWKS
//! document, key rotation, and the attacks QUALITY.md lists.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::{TestApp, assert_error};

/// `POST /fault/token` with customer A's key; panics unless 200.
pub async fn mint(app: &TestApp, body: Value) -> Value {
    let r = app.request(Method::POST, "/fault/token").json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{body}");
    r.json().await.unwrap()
}

pub fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A JWT with any header and claims, signed by the deployment's active key (as a thief of
/// nothing but the algorithm could not do; used to prove the claim checks).
pub async fn sign_with_active_key(app: &TestApp, header: Value, claims: Value) -> String {
    let keys = app.store.signing_keys(faultline_core::time::now_micros()).await.unwrap();
    let active = keys.iter().find(|k| k.retired_at.is_none()).unwrap();
    sign_with(&active.secret_key, header, claims)
}

fn sign_with(secret: &[u8], header: Value, claims: Value) -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(secret.try_into().unwrap());
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

async fn bearer_status(app: &TestApp, jwt: &str) -> (StatusCode, Value) {
    let r = app.client.get(app.url("/fault")).bearer_auth(jwt).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

e2e_test!(minting_follows_the_seed_specification, |app: TestApp| async move {
    let started = faultline_core::time::now_micros() / 1_000_000;
    let minted = mint(&app, json!({"expire_after_minutes": 60})).await;
    let keys: Vec<&str> = minted.as_object().unwrap().keys().map(String::as_str).collect();
    for field in ["token", "type", "expires_in_minutes", "expires_at", "short_link", "id"] {
        assert!(keys.contains(&field), "{field} in {minted}");
    }
    assert_eq!(minted["type"], "jwt");
    assert_eq!(minted["expires_in_minutes"], 60);
    let id = minted["id"].as_str().unwrap();
    assert!(id.starts_with("tok_") && id.len() == 31);
    let parts: Vec<&str> = minted["token"].as_str().unwrap().split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode_part(parts[0]);
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()));
    let claims = decode_part(parts[1]);
    for claim in ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "scope"] {
        assert!(claims.get(claim).is_some(), "claim {claim}");
    }
    assert_eq!(claims.as_object().unwrap().len(), 8, "no other claim (no personal data): {claims}");
    assert_eq!(claims["sub"], app.customer_id.as_str());
    assert_eq!(claims["jti"], id);
    assert_eq!(claims["iss"], app.base.as_str());
    let exp = claims["exp"].as_i64().unwrap();
    assert!((started + 3600..=started + 3602).contains(&exp));
    assert_eq!(
        minted["expires_at"],
        faultline_core::time::format_micros(exp * 1_000_000),
        "expires_at equals exp"
    );
    assert!(minted["expires_at"].as_str().unwrap().ends_with(".000000Z"));
    let link = minted["short_link"].as_str().unwrap();
    let code = link.strip_prefix(&format!("{}/s/", app.base)).expect("short link under <public url>/s");
    assert!(code.len() >= 16 && code.bytes().all(|b| b.is_ascii_alphanumeric()), "{code}");
    assert!(!link.contains(minted["token"].as_str().unwrap()));
    app.finish().await;
});

e2e_test!(malformed_mint_requests_name_the_parameter, |app: TestApp| async move {
    let send = |body: Option<String>| {
        let mut r = app.request(Method::POST, "/fault/token");
        if let Some(body) = body {
            r = r.header("content-type", "application/json").body(body);
        }
        r.send()
    };
    for body in [None, Some("{}".to_owned()), Some(r#"{"label": "x"}"#.to_owned())] {
        let r = send(body).await.unwrap();
        let err =
            assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_missing").await;
        assert!(err["message"].as_str().unwrap().contains("'expire_after_minutes'"));
    }
    for value in ["60.5", "60.0", "\"60\"", "null", "0", "43201", "-5", "true", "[60]"] {
        let r = send(Some(format!(r#"{{"expire_after_minutes": {value}}}"#))).await.unwrap();
        let err =
            assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid").await;
        assert!(err["message"].as_str().unwrap().contains("'expire_after_minutes'"), "{value}");
    }
    let r = send(Some("{not json".to_owned())).await.unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request_error", "body_invalid_json").await;
    let reader = app.create_key(&app.customer_id, "faults:read,faults:write", None).await;
    let r = app
        .client
        .post(app.url("/fault/token"))
        .bearer_auth(&reader)
        .json(&json!({"expire_after_minutes": 5}));
    assert_error(r.send().await.unwrap(), StatusCode::FORBIDDEN, "permission_error", "permission_denied")
        .await;
    let r = app
        .client
        .post(app.url("/fault/token"))
        .json(&json!({"expire_after_minutes": 5}))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "authentication_error", "api_key_missing").await;
    let listed = app.get_json("/fault/token", &app.key).await;
    assert_eq!(listed["data"], json!([]), "nothing was minted");
    app.finish().await;
});

e2e_test!(the_jwks_document_verifies_tokens_independently, |app: TestApp| async move {
    let minted = mint(&app, json!({"expire_after_minutes": 5})).await;
    let jwt = minted["token"].as_str().unwrap();
    let jwks: Value =
        app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let (signing_input, signature) = jwt.rsplit_once('.').unwrap();
    let kid = decode_part(jwt.split('.').next().unwrap())["kid"].clone();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("kid published");
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(jwk.get("d").is_none(), "never the private part");
    // ed25519-dalek directly, not the service's JWT library.
    let public: [u8; 32] = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap().try_into().unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
    let signature: [u8; 64] = URL_SAFE_NO_PAD.decode(signature).unwrap().try_into().unwrap();
    key.verify_strict(signing_input.as_bytes(), &ed25519_dalek::Signature::from_bytes(&signature))
        .expect("verifies");
    app.finish().await;
});

e2e_test!(a_token_reads_exactly_its_scope_and_writes_nothing, |app: TestApp| async move {
    let mut in_scope = TestApp::fault_body("tun_a", "wantunnel", "CRITICAL");
    in_scope["resource_ancestry_path"] = json!("site_A|dev_a|tun_a");
    in_scope["message"] = json!("Site A tunnel down");
    let a = app.create_fault(in_scope).await;
    let mut out_of_scope = TestApp::fault_body("tun_b", "wantunnel", "CRITICAL");
    out_of_scope["resource_ancestry_path"] = json!("site_B|dev_b|tun_b");
    out_of_scope["message"] = json!("Site B tunnel down");
    let b = app.create_fault(out_of_scope).await;
    let (_, other_key) = app.other_customer().await;

    // Every id must be the caller's: a foreign or unknown id stores nothing.
    for scope in [
        json!({"site_ids": ["site_Z"]}),
        json!({"fault_ids": [b["id"].clone(), "flt_x"]}),
        json!({"resource_ids": ["nope"]}),
    ] {
        let mut body = scope.clone();
        body["expire_after_minutes"] = json!(5);
        let r = app.request(Method::POST, "/fault/token").json(&body).send().await.unwrap();
        assert_error(r, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    }
    let r = app
        .client
        .post(app.url("/fault/token"))
        .bearer_auth(&other_key)
        .json(&json!({"expire_after_minutes": 5, "site_ids": ["site_A"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "another customer's site is unknown to B");
    assert_eq!(app.get_json("/fault/token", &app.key).await["data"], json!([]));

    let minted =
        mint(&app, json!({"expire_after_minutes": 5, "site_ids": ["site_A"], "label": "Site A NOC"})).await;
    let jwt = minted["token"].as_str().unwrap().to_owned();
    let list = app.get_json("/fault", &jwt).await;
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![a["id"].as_str().unwrap()]);
    let filtered = app.get_json("/fault?site=site_B", &jwt).await;
    assert_eq!(filtered["meta"]["count"], 0, "a filter never widens the scope");
    assert_eq!(app.get_json(&format!("/fault/{}", a["id"].as_str().unwrap()), &jwt).await["id"], a["id"]);
    let hidden =
        app.client.get(app.url(&format!("/fault/{}", b["id"].as_str().unwrap()))).bearer_auth(&jwt).send();
    assert_error(hidden.await.unwrap(), StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;

    let feed = app.client.get(app.url(&format!("/fault/token/{jwt}"))).send().await.unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
    let feed: Value = feed.json().await.unwrap();
    assert_eq!(feed.as_array().unwrap().len(), 1, "a bare array of the scope's recent faults");
    assert_eq!(feed[0]["id"], a["id"]);

    let writes = [
        (Method::POST, "/fault".to_owned(), Some(TestApp::fault_body("x", "reboot", "LOW"))),
        (Method::DELETE, format!("/fault/{}", a["id"].as_str().unwrap()), None),
        (Method::POST, "/fault/token".to_owned(), Some(json!({"expire_after_minutes": 5}))),
        (Method::GET, "/fault/token".to_owned(), None),
        (Method::DELETE, format!("/fault/token/{}", minted["id"].as_str().unwrap()), None),
    ];
    for (method, path, body) in writes {
        let mut r = app.client.request(method.clone(), app.url(&path)).bearer_auth(&jwt);
        if let Some(body) = body {
            r = r.json(&body);
        }
        let r = r.send().await.unwrap();
        assert_error(r, StatusCode::FORBIDDEN, "permission_error", "permission_denied").await;
    }
    assert_eq!(app.get_json("/fault", &app.key).await["meta"]["count"], 2, "nothing was written");
    assert_eq!(app.get_json("/fault", &jwt).await["meta"]["count"], 1, "and the token still works");
    app.finish().await;
});

e2e_test!(revocation_stops_the_token_and_its_link_at_once, |app: TestApp| async move {
    app.create_fault(TestApp::fault_body("dev_1", "reboot", "LOW")).await;
    let minted = mint(&app, json!({"expire_after_minutes": 60, "label": "customer"})).await;
    let jwt = minted["token"].as_str().unwrap();
    let link = minted["short_link"].as_str().unwrap().to_owned();
    assert_eq!(bearer_status(&app, jwt).await.0, StatusCode::OK);
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("reboot fault on dev_1"), "the page lists the faults");
    assert!(!link.contains(jwt), "the JWT travels in the page (see dashboard.rs), never in its URL");

    let (_, other_key) = app.other_customer().await;
    let path = format!("/fault/token/{}", minted["id"].as_str().unwrap());
    let foreign = app.client.delete(app.url(&path)).bearer_auth(&other_key).send().await.unwrap();
    assert_error(foreign, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    assert_eq!(bearer_status(&app, jwt).await.0, StatusCode::OK, "a foreign revoke changed nothing");

    let revoked = app.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let (status, body) = bearer_status(&app, jwt).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("token_revoked")));
    let feed = app.client.get(app.url(&format!("/fault/token/{jwt}"))).send().await.unwrap();
    assert_error(feed, StatusCode::NOT_FOUND, "not_found_error", "resource_not_found").await;
    let gone = app.client.get(&link).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::GONE);
    let gone_body = gone.text().await.unwrap();
    let unknown = app.client.get(app.url("/s/AAAAAAAAAAAAAAAAAAAAAA")).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::GONE);
    assert_eq!(unknown.text().await.unwrap(), gone_body, "unknown and revoked links look the same");
    let listed = app.get_json("/fault/token", &app.key).await;
    assert_eq!(listed["data"][0]["status"], "revoked");
    assert!(listed["data"][0]["revoked_at"].is_string());
    assert!(!listed.to_string().contains(jwt), "the list never shows the JWT");
    app.finish().await;
});

e2e_test!(uses_are_counted_and_listed, |app: TestApp| async move {
    let minted = mint(&app, json!({"expire_after_minutes": 60, "label": "wall"})).await;
    let jwt = minted["token"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(bearer_status(&app, jwt).await.0, StatusCode::OK);
    }
    // Uses are written in batches (every second); write the pending batch now.
    app.token_usage.flush(&*app.store).await;
    let listed = app.get_json("/fault/token", &app.key).await;
    let info = &listed["data"][0];
    assert_eq!(info["use_count"], 3, "{listed}");
    assert!(info["last_used_at"].is_string());
    assert_eq!((info["label"].as_str(), info["status"].as_str()), (Some("wall"), Some("active")));
    app.finish().await;
});

e2e_test!(forged_and_malformed_tokens_are_refused, |app: TestApp| async move {
    let minted = mint(&app, json!({"expire_after_minutes": 60})).await;
    let jwt = minted["token"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = jwt.split('.').collect();
    let header = decode_part(parts[0]);
    let claims = decode_part(parts[1]);
    let now = faultline_core::time::now_micros() / 1_000_000;
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let invalid = |code: &'static str| (StatusCode::UNAUTHORIZED, code);

    let mut cases: Vec<(&str, String, (StatusCode, &str))> = Vec::new();
    cases.push((
        "alg none",
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]),
        invalid("api_key_invalid"),
    ));
    // HS256 keyed with the public key: the classic algorithm confusion.
    let jwks: Value =
        app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let public = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
    let hs_header = json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]});
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: header["kid"].as_str().map(str::to_owned),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    let _ = hs_header;
    cases.push(("alg confusion HS256", hs, invalid("api_key_invalid")));
    let tampered_claims =
        URL_SAFE_NO_PAD.encode(with("scope", json!({})).to_string().replace("{}", r#"{"site_ids":["x"]}"#));
    cases.push((
        "tampered payload",
        format!("{}.{}.{}", parts[0], tampered_claims, parts[2]),
        invalid("api_key_invalid"),
    ));
    let mut bad_sig = parts[2].to_owned().into_bytes();
    bad_sig[5] = if bad_sig[5] == b'A' { b'B' } else { b'A' };
    cases.push((
        "tampered signature",
        format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(bad_sig).unwrap()),
        invalid("api_key_invalid"),
    ));
    cases.push((
        "wrong aud",
        sign_with_active_key(&app, header.clone(), with("aud", json!("someone-else"))).await,
        invalid("api_key_invalid"),
    ));
    cases.push((
        "wrong iss",
        sign_with_active_key(&app, header.clone(), with("iss", json!("https://evil.example"))).await,
        invalid("api_key_invalid"),
    ));
    let mut expired = with("exp", json!(now - 120));
    expired["iat"] = json!(now - 600);
    expired["nbf"] = json!(now - 600);
    cases.push((
        "expired",
        sign_with_active_key(&app, header.clone(), expired).await,
        invalid("token_expired"),
    ));
    cases.push((
        "nbf in the future",
        sign_with_active_key(&app, header.clone(), with("nbf", json!(now + 3600))).await,
        invalid("api_key_invalid"),
    ));
    cases.push((
        "iat in the future",
        sign_with_active_key(&app, header.clone(), with("iat", json!(now + 3600))).await,
        invalid("api_key_invalid"),
    ));
    let mut no_jti = claims.clone();
    no_jti.as_object_mut().unwrap().remove("jti");
    cases.push((
        "missing jti",
        sign_with_active_key(&app, header.clone(), no_jti).await,
        invalid("api_key_invalid"),
    ));
    cases.push((
        "unknown jti",
        sign_with_active_key(&app, header.clone(), with("jti", json!("tok_nope"))).await,
        invalid("api_key_invalid"),
    ));
    cases.push((
        "other customer",
        sign_with_active_key(&app, header.clone(), with("sub", json!("cus_other"))).await,
        invalid("api_key_invalid"),
    ));
    let mut unknown_kid = header.clone();
    unknown_kid["kid"] = json!("sk_unknown");
    cases.push((
        "unknown kid",
        sign_with_active_key(&app, unknown_kid, claims.clone()).await,
        invalid("api_key_invalid"),
    ));
    for extra in ["crit", "jku", "x5u", "jwk"] {
        let mut h = header.clone();
        h[extra] = if extra == "crit" { json!(["exp"]) } else { json!("https://evil.example/keys") };
        let name: &'static str = Box::leak(format!("{extra} header").into_boxed_str());
        cases.push((name, sign_with_active_key(&app, h, claims.clone()).await, invalid("api_key_invalid")));
    }
    let mut stranger = [0u8; 32];
    faultline_core::secret::random_bytes(&mut stranger);
    cases.push((
        "signed by another key",
        sign_with(&stranger, header.clone(), claims.clone()),
        invalid("api_key_invalid"),
    ));
    let oversized = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode("x".repeat(9000)), parts[2]);
    cases.push(("oversized", oversized, invalid("api_key_invalid")));

    for (name, token, (status, code)) in cases {
        let (got, body) = bearer_status(&app, &token).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{name}");
        let feed = app.client.get(app.url(&format!("/fault/token/{token}"))).send().await.unwrap();
        assert_eq!(feed.status(), StatusCode::NOT_FOUND, "feed with {name}");
    }
    assert_eq!(bearer_status(&app, &jwt).await.0, StatusCode::OK, "the genuine token still works");
    app.finish().await;
});

e2e_test!(rotation_keeps_issued_tokens_working, |app: TestApp| async move {
    let before = mint(&app, json!({"expire_after_minutes": 60})).await;
    let old_kid = decode_part(before["token"].as_str().unwrap().split('.').next().unwrap())["kid"].clone();
    let now = faultline_core::time::now_micros();
    let new_key = faultline_server::jwt::generate_signing_key(now);
    app.store.rotate_signing_key(&new_key, now + 31 * 86_400_000_000).await.unwrap();
    // Replicas read keys at most a second old.
    app.clock.advance(std::time::Duration::from_secs(1));
    let after = mint(&app, json!({"expire_after_minutes": 60})).await;
    let new_kid = decode_part(after["token"].as_str().unwrap().split('.').next().unwrap())["kid"].clone();
    assert_eq!(new_kid, new_key.kid.as_str());
    assert_ne!(new_kid, old_kid);
    assert_eq!(
        bearer_status(&app, before["token"].as_str().unwrap()).await.0,
        StatusCode::OK,
        "retired key verifies"
    );
    assert_eq!(bearer_status(&app, after["token"].as_str().unwrap()).await.0, StatusCode::OK);
    for minted in [&before, &after] {
        let page = app.client.get(minted["short_link"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let meta =
            format!("<meta name=\"faultline-token\" content=\"{}\">", minted["token"].as_str().unwrap());
        assert!(
            page.text().await.unwrap().contains(&meta),
            "the page carries the JWT as minted, by either key"
        );
    }
    let jwks: Value =
        app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&Value> = jwks["keys"].as_array().unwrap().iter().map(|k| &k["kid"]).collect();
    assert!(kids.contains(&&old_kid) && kids.contains(&&new_kid), "{jwks}");

    // Once a retired key's window has passed, its tokens are refused and it leaves the JWKS.
    let now = faultline_core::time::now_micros();
    let newest = faultline_server::jwt::generate_signing_key(now);
    app.store.rotate_signing_key(&newest, now - 1).await.unwrap();
    app.clock.advance(std::time::Duration::from_secs(1));
    let fresh = mint(&app, json!({"expire_after_minutes": 60})).await;
    let (status, body) = bearer_status(&app, after["token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("api_key_invalid")),
        "expired window"
    );
    assert_eq!(bearer_status(&app, fresh["token"].as_str().unwrap()).await.0, StatusCode::OK);
    let dead_link = app.client.get(after["short_link"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(dead_link.status(), StatusCode::GONE, "a link whose key has left is gone, like its token");
    let jwks: Value =
        app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&Value> = jwks["keys"].as_array().unwrap().iter().map(|k| &k["kid"]).collect();
    assert!(!kids.contains(&&new_kid), "the key whose window passed is no longer published: {jwks}");
    assert!(kids.contains(&&Value::from(newest.kid.as_str())) && kids.contains(&&old_kid), "{jwks}");
    app.finish().await;
});
