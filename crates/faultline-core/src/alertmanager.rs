//! `POST /integrations/alertmanager`: Prometheus Alertmanager's webhook payload (version 4)
//! turned into ingest events. Each alert is one event deduplicated by its fingerprint
//! (`alertmanager:<fingerprint>`): `firing` triggers, `resolved` resolves. Its labels and
//! annotations map to the fault's fields as `docs/integrations.md` says, and everything the
//! alert carried is kept on the fault's timeline with its `created` entry.

use serde_json::{Map, Value, json};

use crate::fault::{
    Fault, MAX_ANCESTRY_PATH, MAX_CAUSE, MAX_MESSAGE, MAX_RESOURCE_ID, MAX_TYPE, NewFault, Severity,
};
use crate::ingest::{EventError, IngestEvent, MAX_EVENTS};
use crate::time::{Micros, parse_rfc3339};
use crate::validation::ValidationError;

/// The `microservice_id` of faults from Alertmanager.
pub const SOURCE: &str = "alertmanager";

/// Which labels name an alert's resource, site and severity: the first label present of each
/// list is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelNames {
    pub resource: Vec<String>,
    pub site: Vec<String>,
    pub severity: Vec<String>,
}

impl Default for LabelNames {
    fn default() -> LabelNames {
        LabelNames {
            resource: vec!["resource_id".into(), "instance".into()],
            site: vec!["site_id".into(), "site".into()],
            severity: vec!["severity".into()],
        }
    }
}

impl LabelNames {
    /// Label names from a comma-separated setting (`FAULTLINE_ALERTMANAGER_*_LABELS`); blank
    /// names are dropped.
    pub fn list(setting: &str) -> Vec<String> {
        setting.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }
}

/// The fault severity of an Alertmanager `severity` label (any case).
pub fn severity(label: Option<&str>) -> Severity {
    match label.map(str::to_ascii_lowercase).as_deref() {
        Some("critical") => Severity::Critical,
        Some("error") => Severity::High,
        Some("warning") => Severity::Warning,
        Some("info" | "none") => Severity::Low,
        _ => Severity::Warning,
    }
}

/// A fault type from an `alertname`: lower-cased, every character a type may not hold
/// replaced by `_`, at most 64 characters.
pub fn fault_type(alertname: &str) -> String {
    let mut out: String = alertname
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.') { c } else { '_' }
        })
        .take(MAX_TYPE)
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        out.insert(0, 'a');
        out.truncate(MAX_TYPE);
    }
    out
}

/// Validate a whole payload into events, in the payload's order. One invalid alert rejects the
/// payload. `now` and `retention_seconds` as for `POST /fault/events`.
pub fn parse_payload(
    customer_id: &str,
    body: &Value,
    labels: &LabelNames,
    now: Micros,
    retention_seconds: i64,
) -> Result<Vec<IngestEvent>, EventError> {
    let top = |error| EventError { list: "alerts", index: None, error };
    let obj =
        body.as_object().ok_or_else(|| top(ValidationError::invalid("body", "must be a JSON object")))?;
    match obj.get("version") {
        Some(Value::String(v)) if v == "4" => {}
        None | Some(Value::Null) => return Err(top(ValidationError::Missing("version"))),
        Some(_) => {
            return Err(top(ValidationError::invalid("version", "must be \"4\" (Alertmanager's webhook)")));
        }
    }
    let alerts = match obj.get("alerts") {
        None | Some(Value::Null) => return Err(top(ValidationError::Missing("alerts"))),
        Some(Value::Array(alerts)) if alerts.len() <= MAX_EVENTS => alerts,
        Some(_) => {
            return Err(top(ValidationError::invalid(
                "alerts",
                format!("must be an array of at most {MAX_EVENTS} alerts"),
            )));
        }
    };
    let group = json!({
        "receiver": obj.get("receiver"),
        "groupKey": obj.get("groupKey"),
        "externalURL": obj.get("externalURL"),
    });
    let oldest = now - retention_seconds * 1_000_000;
    alerts
        .iter()
        .enumerate()
        .map(|(index, alert)| {
            parse_alert(customer_id, alert, labels, &group, now, oldest, retention_seconds)
                .map_err(|error| EventError { list: "alerts", index: Some(index), error })
        })
        .collect()
}

/// A string map (`labels`, `annotations`): every value a string.
fn string_map<'a>(
    alert: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a Map<String, Value>>, ValidationError> {
    match alert.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => {
            for value in map.values() {
                match value {
                    Value::String(s) => crate::fault::reject_nul(name, s)?,
                    _ => return Err(ValidationError::invalid(name, "must map names to strings")),
                }
            }
            Ok(Some(map))
        }
        Some(_) => Err(ValidationError::invalid(name, "must be an object")),
    }
}

/// The value of the first of `names` present in `map`, if any (blank values are absent).
fn first<'a>(map: Option<&'a Map<String, Value>>, names: &[String]) -> Option<&'a str> {
    let map = map?;
    names
        .iter()
        .find_map(|name| map.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()))
}

/// An RFC 3339 time of the alert, clamped to `[oldest, now]`; `None` for Alertmanager's "no
/// time" (`0001-01-01T00:00:00Z`) or when absent.
fn time(
    alert: &Map<String, Value>,
    name: &'static str,
    now: Micros,
    oldest: Micros,
) -> Result<Option<Micros>, ValidationError> {
    match alert.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.starts_with("0001-01-01") => Ok(None),
        Some(Value::String(s)) => {
            let t = parse_rfc3339(s)
                .ok_or_else(|| ValidationError::invalid(name, "must be an RFC 3339 timestamp"))?;
            Ok(Some(t.clamp(oldest, now)))
        }
        Some(_) => Err(ValidationError::invalid(name, "must be an RFC 3339 timestamp string")),
    }
}

fn parse_alert(
    customer_id: &str,
    alert: &Value,
    names: &LabelNames,
    group: &Value,
    now: Micros,
    oldest: Micros,
    retention_seconds: i64,
) -> Result<IngestEvent, ValidationError> {
    let alert = alert.as_object().ok_or_else(|| ValidationError::invalid("alert", "must be an object"))?;
    let fingerprint = match alert.get("fingerprint") {
        Some(Value::String(f)) if !f.trim().is_empty() && f.len() <= 128 => {
            crate::fault::reject_nul("fingerprint", f)?;
            f.trim()
        }
        None | Some(Value::Null) => return Err(ValidationError::Missing("fingerprint")),
        Some(_) => {
            return Err(ValidationError::invalid(
                "fingerprint",
                "must be a non-blank string of at most 128 bytes",
            ));
        }
    };
    let dedup_key = format!("{SOURCE}:{fingerprint}");
    let labels = string_map(alert, "labels")?;
    let annotations = string_map(alert, "annotations")?;
    let starts_at = time(alert, "startsAt", now, oldest)?;
    let ends_at = time(alert, "endsAt", now, oldest)?;
    match alert.get("status").and_then(Value::as_str) {
        Some("resolved") => Ok(IngestEvent::ResolveKeyed { dedup_key, occurred_at: ends_at.unwrap_or(now) }),
        Some("firing") => {
            let alertname = first(labels, &["alertname".to_owned()])
                .ok_or(ValidationError::Missing("labels.alertname"))?;
            let resource_id = crate::fault::truncate_chars(
                first(labels, &names.resource).unwrap_or(fingerprint),
                MAX_RESOURCE_ID,
            );
            let path = match first(labels, &names.site) {
                Some(site) if site != resource_id => {
                    format!("{}|{resource_id}", crate::fault::truncate_chars(&site.replace('|', "_"), 255))
                }
                _ => resource_id.replace('|', "_"),
            };
            let message = first(annotations, &["summary".to_owned()]).unwrap_or(alertname);
            let cause = first(annotations, &["description".to_owned()]).unwrap_or_default();
            let new = NewFault {
                resource_id,
                fault_type: fault_type(alertname),
                severity: severity(first(labels, &names.severity)),
                message: crate::fault::truncate_chars(message, MAX_MESSAGE),
                cause: crate::fault::truncate_chars(cause, MAX_CAUSE),
                microservice_id: SOURCE.to_owned(),
                resource_ancestry_path: crate::fault::truncate_chars(&path, MAX_ANCESTRY_PATH),
                created_at: Some(starts_at.unwrap_or(now)),
            };
            let detail = json!({
                "source": SOURCE,
                "fingerprint": fingerprint,
                "labels": labels,
                "annotations": annotations,
                "startsAt": alert.get("startsAt"),
                "generatorURL": alert.get("generatorURL"),
                "group": group,
            });
            let fault = Fault::create(customer_id, new, now, retention_seconds);
            Ok(IngestEvent::TriggerKeyed { dedup_key, fault: Box::new(fault), detail: Some(detail) })
        }
        None if alert.get("status").is_none() => Err(ValidationError::Missing("status")),
        _ => Err(ValidationError::invalid("status", "must be \"firing\" or \"resolved\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Micros = 1_761_051_600_000_000;

    fn payload(alerts: Value) -> Value {
        json!({"version": "4", "receiver": "faultline", "status": "firing", "groupKey": "{}:{}", "alerts": alerts})
    }

    fn firing(fingerprint: &str, labels: Value) -> Value {
        json!({"status": "firing", "labels": labels, "annotations": {"summary": "Disk almost full", "description": "/var at 97%"},
               "startsAt": "2025-10-21T12:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fingerprint,
               "generatorURL": "http://prometheus/graph"})
    }

    #[test]
    fn a_firing_alert_maps_its_labels_and_keeps_them() {
        let labels = json!({"alertname": "NodeDiskFull", "instance": "router-7:9100", "site": "site_lyon", "severity": "error"});
        let events = parse_payload(
            "cus_1",
            &payload(json!([firing("a1b2", labels)])),
            &LabelNames::default(),
            NOW,
            86_400 * 400,
        )
        .unwrap();
        let IngestEvent::TriggerKeyed { dedup_key, fault, detail } = &events[0] else { panic!("{events:?}") };
        assert_eq!(dedup_key, "alertmanager:a1b2");
        assert_eq!(
            (fault.resource_id.as_str(), fault.fault_type.as_str()),
            ("router-7:9100", "nodediskfull")
        );
        assert_eq!(fault.severity, Severity::High);
        assert_eq!((fault.message.as_str(), fault.cause.as_str()), ("Disk almost full", "/var at 97%"));
        assert_eq!(fault.resource_ancestry_path, "site_lyon|router-7:9100");
        assert_eq!(fault.site_id.as_deref(), Some("site_lyon"));
        assert_eq!(fault.created_at, NOW - 3_600_000_000);
        assert_eq!(fault.microservice_id, "alertmanager");
        assert_eq!(detail.as_ref().unwrap()["labels"]["instance"], "router-7:9100");
    }

    #[test]
    fn labels_fall_back_and_can_be_renamed() {
        let events = parse_payload(
            "cus_1",
            &payload(json!([firing("ff00", json!({"alertname": "Up Down!"}))])),
            &LabelNames::default(),
            NOW,
            86_400,
        )
        .unwrap();
        let fault = events[0].fault().unwrap();
        assert_eq!((fault.resource_id.as_str(), fault.fault_type.as_str()), ("ff00", "up_down_"));
        assert_eq!(fault.severity, Severity::Warning);
        let names = LabelNames {
            resource: vec!["device".into()],
            site: vec!["pop".into()],
            severity: vec!["prio".into()],
        };
        let labels = json!({"alertname": "x", "device": "sw-1", "pop": "par", "prio": "critical", "instance": "ignored"});
        let events =
            parse_payload("cus_1", &payload(json!([firing("ff01", labels)])), &names, NOW, 86_400).unwrap();
        let fault = events[0].fault().unwrap();
        assert_eq!((fault.resource_id.as_str(), fault.resource_ancestry_path.as_str()), ("sw-1", "par|sw-1"));
        assert_eq!(fault.severity, Severity::Critical);
    }

    #[test]
    fn severities_map_as_documented() {
        for (label, expected) in [
            (Some("critical"), Severity::Critical),
            (Some("ERROR"), Severity::High),
            (Some("warning"), Severity::Warning),
            (Some("info"), Severity::Low),
            (Some("none"), Severity::Low),
            (Some("page"), Severity::Warning),
            (None, Severity::Warning),
        ] {
            assert_eq!(severity(label), expected, "{label:?}");
        }
    }

    #[test]
    fn a_resolved_alert_resolves_at_its_end() {
        let alert = json!({"status": "resolved", "labels": {"alertname": "x"}, "startsAt": "2025-10-21T11:00:00Z",
                           "endsAt": "2025-10-21T12:30:00Z", "fingerprint": "ab"});
        let events =
            parse_payload("cus_1", &payload(json!([alert])), &LabelNames::default(), NOW, 86_400).unwrap();
        assert_eq!(
            events[0],
            IngestEvent::ResolveKeyed {
                dedup_key: "alertmanager:ab".into(),
                occurred_at: NOW - 1_800_000_000
            }
        );
    }

    #[test]
    fn one_invalid_alert_rejects_the_payload_naming_it() {
        let good = firing("a", json!({"alertname": "x"}));
        for (bad, param) in [
            (json!({"status": "firing", "labels": {"alertname": "x"}}), "alerts[1].fingerprint"),
            (json!({"status": "pending", "fingerprint": "b"}), "alerts[1].status"),
            (json!({"status": "firing", "fingerprint": "b", "labels": {}}), "alerts[1].labels.alertname"),
            (json!({"status": "firing", "fingerprint": "b", "labels": {"alertname": 5}}), "alerts[1].labels"),
            (
                json!({"status": "firing", "fingerprint": "b", "labels": {"alertname": "x"}, "startsAt": "yesterday"}),
                "alerts[1].startsAt",
            ),
            (json!("alert"), "alerts[1].alert"),
        ] {
            let err =
                parse_payload("cus_1", &payload(json!([good, bad])), &LabelNames::default(), NOW, 86_400)
                    .unwrap_err();
            assert_eq!(err.param(), param);
        }
        let wrong_version = json!({"version": "3", "alerts": []});
        assert_eq!(
            parse_payload("c", &wrong_version, &LabelNames::default(), NOW, 86_400).unwrap_err().param(),
            "version"
        );
        assert_eq!(
            parse_payload("c", &json!({"version": "4"}), &LabelNames::default(), NOW, 86_400)
                .unwrap_err()
                .param(),
            "alerts"
        );
        let many: Vec<Value> =
            (0..=MAX_EVENTS).map(|i| firing(&i.to_string(), json!({"alertname": "x"}))).collect();
        assert_eq!(
            parse_payload("c", &payload(json!(many)), &LabelNames::default(), NOW, 86_400)
                .unwrap_err()
                .param(),
            "alerts"
        );
    }
}
