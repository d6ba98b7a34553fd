//! `POST /integrations/pagerduty/v2/enqueue`: one event of the PagerDuty Events API v2, turned
//! into an ingest event, so that any tool that can page PagerDuty feeds faultline by changing
//! one URL. Errors are PagerDuty's: a list of messages naming each field at fault.

use serde_json::{Map, Value, json};

use crate::fault::{Fault, MAX_ANCESTRY_PATH, MAX_MESSAGE, MAX_RESOURCE_ID, NewFault, Severity};
use crate::ingest::IngestEvent;
use crate::time::{Micros, parse_rfc3339};

/// The `microservice_id` of faults from PagerDuty events.
pub const SOURCE: &str = "pagerduty";

/// A `dedup_key` is at most this long (PagerDuty's limit).
pub const MAX_DEDUP_KEY: usize = 255;

/// The fault type of an event without `class` or `component`.
pub const DEFAULT_TYPE: &str = "event";

/// An event's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

/// A validated event: its dedup key (the one sent, or a new one for a trigger without) and the
/// ingest event it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct PagerDutyEvent {
    pub action: Action,
    pub dedup_key: String,
    pub event: IngestEvent,
}

/// The key a PagerDuty dedup key is kept under, apart from other sources' keys.
pub fn store_key(dedup_key: &str) -> String {
    format!("{SOURCE}:{dedup_key}")
}

/// The routing key of an event body, if it has one.
pub fn routing_key(body: &Value) -> Option<&str> {
    body.get("routing_key").and_then(Value::as_str).map(str::trim).filter(|k| !k.is_empty())
}

/// The fault severity of a `payload.severity`; `None` if it is not one of PagerDuty's four.
pub fn severity(text: &str) -> Option<Severity> {
    match text {
        "critical" => Some(Severity::Critical),
        "error" => Some(Severity::High),
        "warning" => Some(Severity::Warning),
        "info" => Some(Severity::Low),
        _ => None,
    }
}

/// A non-blank string field of `obj`, or the error naming it (`path`).
fn text<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    path: &str,
    errors: &mut Vec<String>,
) -> Option<&'a str> {
    match obj.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() && !s.contains('\0') => Some(s.trim()),
        Some(Value::String(s)) if s.contains('\0') => {
            errors.push(format!("'{path}' must not contain NUL characters"));
            None
        }
        None | Some(Value::Null) | Some(Value::String(_)) => {
            errors.push(format!("'{path}' is missing or blank"));
            None
        }
        Some(_) => {
            errors.push(format!("'{path}' must be a string"));
            None
        }
    }
}

/// An optional string field; a value of another type is an error.
fn optional<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    path: &str,
    errors: &mut Vec<String>,
) -> Option<&'a str> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.contains('\0') => {
            errors.push(format!("'{path}' must not contain NUL characters"));
            None
        }
        Some(Value::String(s)) => Some(s.trim()).filter(|s| !s.is_empty()),
        Some(_) => {
            errors.push(format!("'{path}' must be a string"));
            None
        }
    }
}

/// Validate one event; every problem is listed. `new_key` makes the dedup key of a trigger that
/// has none. `now` and `retention_seconds` as for `POST /fault/events`.
pub fn parse_event(
    customer_id: &str,
    body: &Value,
    now: Micros,
    retention_seconds: i64,
    new_key: impl FnOnce() -> String,
) -> Result<PagerDutyEvent, Vec<String>> {
    let Some(obj) = body.as_object() else {
        return Err(vec!["the event must be a JSON object".to_owned()]);
    };
    let mut errors = Vec::new();
    let action = match obj.get("event_action").and_then(Value::as_str) {
        Some("trigger") => Some(Action::Trigger),
        Some("acknowledge") => Some(Action::Acknowledge),
        Some("resolve") => Some(Action::Resolve),
        None if obj.get("event_action").is_none_or(Value::is_null) => {
            errors.push("'event_action' is missing or blank".to_owned());
            None
        }
        _ => {
            errors.push(
                "'event_action' is invalid (must be one of: 'trigger', 'acknowledge', 'resolve')".to_owned(),
            );
            None
        }
    };
    let dedup_key = match obj.get("dedup_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if k.trim().is_empty() => None,
        Some(Value::String(k)) if k.chars().count() > MAX_DEDUP_KEY || k.contains('\0') => {
            errors.push(format!("'dedup_key' must be at most {MAX_DEDUP_KEY} characters, without NUL"));
            None
        }
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => {
            errors.push("'dedup_key' must be a string".to_owned());
            None
        }
    };
    if matches!(action, Some(Action::Acknowledge | Action::Resolve))
        && dedup_key.is_none()
        && !errors.iter().any(|e| e.starts_with("'dedup_key'"))
    {
        errors.push("'dedup_key' is missing or blank (required to acknowledge or resolve)".to_owned());
    }
    let mut trigger = None;
    if action == Some(Action::Trigger) {
        match obj.get("payload") {
            Some(Value::Object(payload)) => {
                trigger = parse_payload(payload, now, retention_seconds, &mut errors)
            }
            None | Some(Value::Null) => errors.push("'payload' is missing (required to trigger)".to_owned()),
            Some(_) => errors.push("'payload' must be an object".to_owned()),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let action = action.expect("an event without errors has an action");
    let dedup_key = dedup_key.unwrap_or_else(new_key);
    let key = store_key(&dedup_key);
    // What the source sent, but for its credential.
    let mut detail = obj.clone();
    detail.remove("routing_key");
    let detail = json!({"source": SOURCE, "event": detail});
    let event = match action {
        Action::Trigger => {
            let new = trigger.expect("a trigger without errors has a payload");
            let fault = Fault::create(customer_id, new, now, retention_seconds);
            IngestEvent::TriggerKeyed { dedup_key: key, fault: Box::new(fault), detail: Some(detail) }
        }
        Action::Resolve => IngestEvent::ResolveKeyed { dedup_key: key, occurred_at: now },
        Action::Acknowledge => IngestEvent::AcknowledgeKeyed { dedup_key: key, detail: Some(detail) },
    };
    Ok(PagerDutyEvent { action, dedup_key, event })
}

/// A trigger's `payload` as a new fault.
fn parse_payload(
    payload: &Map<String, Value>,
    now: Micros,
    retention_seconds: i64,
    errors: &mut Vec<String>,
) -> Option<NewFault> {
    let summary = text(payload, "summary", "payload.summary", errors);
    let source = text(payload, "source", "payload.source", errors);
    let severity = match payload.get("severity").and_then(Value::as_str) {
        Some(s) => severity(s).or_else(|| {
            errors.push(
                "'payload.severity' is invalid (must be one of: 'critical', 'error', 'warning', 'info')"
                    .to_owned(),
            );
            None
        }),
        None => {
            errors.push("'payload.severity' is missing or blank".to_owned());
            None
        }
    };
    let created_at = match payload.get("timestamp") {
        None | Some(Value::Null) => now,
        Some(Value::String(s)) => match parse_rfc3339(s) {
            Some(t) => t.clamp(now - retention_seconds * 1_000_000, now),
            None => {
                errors.push("'payload.timestamp' must be an ISO 8601 timestamp".to_owned());
                now
            }
        },
        Some(_) => {
            errors.push("'payload.timestamp' must be a string".to_owned());
            now
        }
    };
    let group = optional(payload, "group", "payload.group", errors);
    let class = optional(payload, "class", "payload.class", errors);
    let component = optional(payload, "component", "payload.component", errors);
    let (summary, source, severity) = (summary?, source?, severity?);
    let resource_id = crate::fault::truncate_chars(&source.replace('|', "_"), MAX_RESOURCE_ID);
    let path = match group {
        Some(group) if group != resource_id => {
            format!("{}|{resource_id}", crate::fault::truncate_chars(&group.replace('|', "_"), 255))
        }
        _ => resource_id.clone(),
    };
    Some(NewFault {
        fault_type: crate::alertmanager::fault_type(class.or(component).unwrap_or(DEFAULT_TYPE)),
        severity,
        message: crate::fault::truncate_chars(summary, MAX_MESSAGE),
        cause: String::new(),
        microservice_id: SOURCE.to_owned(),
        resource_ancestry_path: crate::fault::truncate_chars(&path, MAX_ANCESTRY_PATH),
        created_at: Some(created_at),
        resource_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Micros = 1_761_051_600_000_000;

    fn parse(body: Value) -> Result<PagerDutyEvent, Vec<String>> {
        parse_event("cus_1", &body, NOW, 86_400 * 400, || "generated".to_owned())
    }

    #[test]
    fn a_trigger_maps_its_payload() {
        let event = parse(json!({"routing_key": "flk_x", "event_action": "trigger", "dedup_key": "disk-7",
            "payload": {"summary": "Disk full on db-7", "source": "db-7", "severity": "error",
                        "timestamp": "2025-10-21T12:00:00Z", "group": "site_paris", "class": "Disk Usage",
                        "component": "postgres", "custom_details": {"free": "1%"}}}))
        .unwrap();
        assert_eq!((event.action, event.dedup_key.as_str()), (Action::Trigger, "disk-7"));
        let IngestEvent::TriggerKeyed { dedup_key, fault, detail } = &event.event else { panic!() };
        assert_eq!(dedup_key, "pagerduty:disk-7");
        assert_eq!((fault.resource_id.as_str(), fault.fault_type.as_str()), ("db-7", "disk_usage"));
        assert_eq!((fault.severity, fault.message.as_str()), (Severity::High, "Disk full on db-7"));
        assert_eq!(fault.resource_ancestry_path, "site_paris|db-7");
        assert_eq!(fault.created_at, NOW - 3_600_000_000);
        let detail = detail.as_ref().unwrap();
        assert_eq!(detail["event"]["payload"]["custom_details"]["free"], "1%");
        assert!(detail["event"].get("routing_key").is_none(), "the credential is not kept");
    }

    #[test]
    fn a_trigger_without_a_key_gets_one_and_component_is_the_type_without_class() {
        let event = parse(json!({"event_action": "trigger",
            "payload": {"summary": "s", "source": "r", "severity": "info", "component": "bgp"}}))
        .unwrap();
        assert_eq!(event.dedup_key, "generated");
        assert_eq!(event.event.fault().unwrap().fault_type, "bgp");
        assert_eq!(event.event.fault().unwrap().severity, Severity::Low);
        let plain = parse(
            json!({"event_action": "trigger", "payload": {"summary": "s", "source": "r", "severity": "critical"}}),
        );
        assert_eq!(plain.unwrap().event.fault().unwrap().fault_type, DEFAULT_TYPE);
    }

    #[test]
    fn acknowledge_and_resolve_need_a_key() {
        let ack = parse(json!({"event_action": "acknowledge", "dedup_key": "k"})).unwrap();
        assert_eq!(ack.event.key(), crate::ingest::EventKey::Dedup("pagerduty:k"));
        assert_eq!(ack.action, Action::Acknowledge);
        let resolve = parse(json!({"event_action": "resolve", "dedup_key": "k"})).unwrap();
        assert_eq!(
            resolve.event,
            IngestEvent::ResolveKeyed { dedup_key: "pagerduty:k".into(), occurred_at: NOW }
        );
        let errors = parse(json!({"event_action": "resolve"})).unwrap_err();
        assert!(errors[0].starts_with("'dedup_key' is missing"), "{errors:?}");
    }

    #[test]
    fn every_problem_is_listed() {
        let errors = parse(json!({"event_action": "trigger", "payload": {"severity": "loud", "source": 5,
            "timestamp": "yesterday"}}))
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "'payload.summary' is missing or blank",
                "'payload.source' must be a string",
                "'payload.severity' is invalid (must be one of: 'critical', 'error', 'warning', 'info')",
                "'payload.timestamp' must be an ISO 8601 timestamp",
            ]
        );
        assert_eq!(parse(json!({})).unwrap_err(), ["'event_action' is missing or blank"]);
        assert!(
            parse(json!({"event_action": "page"})).unwrap_err()[0].starts_with("'event_action' is invalid")
        );
        assert_eq!(
            parse(json!({"event_action": "trigger"})).unwrap_err(),
            ["'payload' is missing (required to trigger)"]
        );
        assert!(parse(json!({"event_action": "trigger", "dedup_key": "k".repeat(256), "payload": {"summary": "s", "source": "r", "severity": "info"}})).is_err());
        assert_eq!(parse(json!([1])).unwrap_err(), ["the event must be a JSON object"]);
    }
}
