//! `GET /fault` exports: CSV read back by Python's `csv` module to the same values, NDJSON,
//! several store pages, filters and scope.

use faultline_core::fault::{Fault, NewFault, Severity};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e_test;
use crate::harness::TestApp;

/// 2,345 faults (more than two export pages), with awkward text in some.
fn history(customer_id: &str) -> Vec<Fault> {
    let now = faultline_core::time::now_micros();
    (0..2_345)
        .map(|i: i64| {
            let message = match i % 5 {
                0 => format!("tunnel {i}, \"primary\" down"),
                1 => format!("line one\nline two {i}"),
                2 => format!(" padded {i} "),
                3 => format!("Zürich → Genève {i}"),
                _ => format!("plain {i}"),
            };
            let new = NewFault {
                resource_id: format!("tun_{}", i % 40),
                fault_type: "wantunnel".into(),
                severity: if i % 3 == 0 { Severity::High } else { Severity::Low },
                message,
                cause: if i % 7 == 0 { "BFD, then OSPF".into() } else { String::new() },
                microservice_id: "wan".into(),
                resource_ancestry_path: format!("site_{}|tun_{}", i % 4, i % 40),
                created_at: Some(now - 86_400_000_000 + i * 1_000_000),
            };
            Fault::create(customer_id, new, now, 400 * 86_400)
        })
        .collect()
}

/// Python's `csv` module's reading of `text`.
pub(crate) fn python_csv(text: &str) -> Vec<Vec<String>> {
    let dir = std::env::temp_dir().join(format!("faultline-csv-{}", faultline_core::ids::random_base62(8)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("export.csv");
    std::fs::write(&path, text).unwrap();
    let script = "import csv, json, sys\nprint(json.dumps(list(csv.reader(open(sys.argv[1], newline='', encoding='utf-8')))))";
    let out = std::process::Command::new("python3").args(["-c", script]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

e2e_test!(a_csv_export_holds_every_fault_and_reads_back_the_same, |app: TestApp| async move {
    let faults = history(&app.customer_id);
    app.store.insert_faults(&faults, "test", None).await.unwrap();
    let response = app.get("/fault?limit=5").header("Accept", "text/csv").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let rows = python_csv(&response.text().await.unwrap());
    assert_eq!(
        rows[0],
        [
            "id",
            "created_at",
            "resolved_at",
            "status",
            "severity",
            "type",
            "resource_id",
            "site_id",
            "microservice_id",
            "message",
            "cause",
            "resource_ancestry_path",
            "ttl",
            "comment_count",
            "site_name"
        ]
    );
    assert_eq!(rows.len() - 1, faults.len(), "every fault, whatever the limit");
    // Newest first, each field as stored.
    let mut expected = faults.clone();
    expected.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    for (row, f) in rows[1..].iter().zip(&expected) {
        assert_eq!(row[0], f.id);
        assert_eq!(row[1], faultline_core::time::format_micros(f.created_at));
        assert_eq!(row[2], "");
        assert_eq!(row[4], f.severity.as_str());
        assert_eq!(row[7], f.site_id.clone().unwrap_or_default());
        assert_eq!(row[9], f.message, "message of {}", f.id);
        assert_eq!(row[10], f.cause);
        assert_eq!(row[12], f.ttl.to_string());
    }
    app.finish().await;
});

e2e_test!(an_ndjson_export_is_one_fault_a_line_within_filter_and_scope, |app: TestApp| async move {
    let faults = history(&app.customer_id);
    app.store.insert_faults(&faults, "test", None).await.unwrap();
    let response =
        app.get("/fault?severity=HIGH").header("Accept", "application/x-ndjson").send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let high = faults.iter().filter(|f| f.severity == Severity::High).count();
    assert_eq!(lines.len(), high);
    assert!(lines.iter().all(|f| f["severity"] == "HIGH" && f["id"].as_str().unwrap().starts_with("flt_")));
    let mut ids: Vec<&str> = lines.iter().map(|f| f["id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), high, "no fault twice across pages");

    let token = crate::tokens::mint(&app, json!({"expire_after_minutes": 30, "site_ids": ["site_1"]})).await;
    let scoped = app
        .client
        .get(app.url("/fault"))
        .bearer_auth(token["token"].as_str().unwrap())
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    let rows = python_csv(&scoped.text().await.unwrap());
    let in_scope = faults.iter().filter(|f| f.site_id.as_deref() == Some("site_1")).count();
    assert_eq!(rows.len() - 1, in_scope, "a token exports only its scope");
    assert!(rows[1..].iter().all(|r| r[7] == "site_1"));
    app.finish().await;
});
