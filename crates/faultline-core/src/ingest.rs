//! `POST /fault/events`: the monitoring ingest path. A trigger opens a fault unless one is
//! already open for its (resource, type); a resolve closes the open one.

use serde_json::{Map, Value};

use crate::fault::{DEFAULT_MICROSERVICE_ID, FUTURE_SKEW_MICROS, Fault, NewFault};
use crate::time::{Micros, parse_rfc3339};
use crate::validation::ValidationError;

pub const MAX_EVENTS: usize = 1_000;

/// One validated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestEvent {
    /// A fault to open unless one is open for its (resource_id, type).
    Trigger(Box<Fault>),
    /// Close the open fault of (resource_id, type) at `occurred_at`.
    Resolve { resource_id: String, fault_type: String, occurred_at: Micros },
    /// A fault to open unless one is open under `dedup_key` (an integration's key, such as
    /// `alertmanager:<fingerprint>`); `detail` is what the source sent, kept on the fault's
    /// timeline with its `created` entry.
    TriggerKeyed { dedup_key: String, fault: Box<Fault>, detail: Option<Value> },
    /// Close the fault open under `dedup_key` at `occurred_at`.
    ResolveKeyed { dedup_key: String, occurred_at: Micros },
    /// Note on the timeline of the fault open under `dedup_key` that someone is on it; the
    /// fault itself does not change.
    AcknowledgeKeyed { dedup_key: String, detail: Option<Value> },
}

/// What an event's fault is deduplicated by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKey<'a> {
    /// At most one unresolved fault per (resource_id, type).
    Resource { resource_id: &'a str, fault_type: &'a str },
    /// At most one open fault per dedup key (of the customer).
    Dedup(&'a str),
}

impl EventKey<'_> {
    /// The key as the store keeps it on an open fault (`faults.open_key`).
    pub fn open_key(self) -> String {
        match self {
            EventKey::Resource { resource_id, fault_type } => format!("{resource_id}\u{1f}{fault_type}"),
            EventKey::Dedup(key) => key.to_owned(),
        }
    }
}

impl IngestEvent {
    pub fn key(&self) -> EventKey<'_> {
        match self {
            IngestEvent::Trigger(f) => {
                EventKey::Resource { resource_id: &f.resource_id, fault_type: &f.fault_type }
            }
            IngestEvent::Resolve { resource_id, fault_type, .. } => {
                EventKey::Resource { resource_id, fault_type }
            }
            IngestEvent::TriggerKeyed { dedup_key, .. }
            | IngestEvent::ResolveKeyed { dedup_key, .. }
            | IngestEvent::AcknowledgeKeyed { dedup_key, .. } => EventKey::Dedup(dedup_key),
        }
    }

    /// The fault a trigger opens; `None` for a resolve.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            IngestEvent::Trigger(fault) | IngestEvent::TriggerKeyed { fault, .. } => Some(fault),
            _ => None,
        }
    }

    /// When a resolve closes its fault; `None` for a trigger.
    pub fn resolved_at(&self) -> Option<Micros> {
        match self {
            IngestEvent::Resolve { occurred_at, .. } | IngestEvent::ResolveKeyed { occurred_at, .. } => {
                Some(*occurred_at)
            }
            _ => None,
        }
    }

    /// What the source sent with a trigger or an acknowledgement, for the fault's timeline.
    pub fn detail(&self) -> Option<&Value> {
        match self {
            IngestEvent::TriggerKeyed { detail, .. } | IngestEvent::AcknowledgeKeyed { detail, .. } => {
                detail.as_ref()
            }
            _ => None,
        }
    }
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Deduplicated,
    Resolved,
    NoOpenFault,
    /// An acknowledgement noted on the open fault's timeline (integrations only).
    Acknowledged,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Created,
        Outcome::Deduplicated,
        Outcome::Resolved,
        Outcome::NoOpenFault,
        Outcome::Acknowledged,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Deduplicated => "deduplicated",
            Outcome::Resolved => "resolved",
            Outcome::NoOpenFault => "no_open_fault",
            Outcome::Acknowledged => "acknowledged",
        }
    }
}

/// A validation failure inside the batch: the event's index and the failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    /// The list the item belongs to: `events`, `heartbeats`.
    pub list: &'static str,
    pub index: Option<usize>,
    pub error: ValidationError,
}

impl EventError {
    /// The offending parameter, e.g. `events[3].severity` or `heartbeats[0].site_id`.
    pub fn param(&self) -> String {
        match self.index {
            Some(i) => format!("{}[{i}].{}", self.list, self.error.param()),
            None => self.error.param().to_owned(),
        }
    }
}

/// Validate a whole batch; `now` and `retention_seconds` as for `POST /fault`.
pub fn parse_batch(
    customer_id: &str,
    body: &Value,
    now: Micros,
    retention_seconds: i64,
) -> Result<Vec<IngestEvent>, EventError> {
    let top = |error| EventError { list: "events", index: None, error };
    let obj =
        body.as_object().ok_or_else(|| top(ValidationError::invalid("body", "must be a JSON object")))?;
    let events = match obj.get("events") {
        None | Some(Value::Null) => return Err(top(ValidationError::Missing("events"))),
        Some(Value::Array(events)) if !events.is_empty() && events.len() <= MAX_EVENTS => events,
        Some(_) => {
            return Err(top(ValidationError::invalid(
                "events",
                format!("must be an array of 1 to {MAX_EVENTS} events"),
            )));
        }
    };
    let oldest = now - retention_seconds * 1_000_000;
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            parse_event(customer_id, event, now, oldest, retention_seconds).map_err(|error| EventError {
                list: "events",
                index: Some(index),
                error,
            })
        })
        .collect()
}

fn parse_event(
    customer_id: &str,
    event: &Value,
    now: Micros,
    oldest: Micros,
    retention_seconds: i64,
) -> Result<IngestEvent, ValidationError> {
    let obj: &Map<String, Value> =
        event.as_object().ok_or_else(|| ValidationError::invalid("event", "must be an object"))?;
    let occurred_at = match obj.get("occurred_at") {
        None | Some(Value::Null) => now,
        Some(Value::String(s)) => {
            let t = parse_rfc3339(s)
                .ok_or_else(|| ValidationError::invalid("occurred_at", "must be an RFC 3339 timestamp"))?;
            if t > now + FUTURE_SKEW_MICROS {
                return Err(ValidationError::invalid("occurred_at", "must not be in the future"));
            }
            if t < oldest {
                return Err(ValidationError::invalid("occurred_at", "is older than the retention period"));
            }
            t.min(now)
        }
        Some(_) => {
            return Err(ValidationError::invalid("occurred_at", "must be an RFC 3339 timestamp string"));
        }
    };
    match obj.get("action").and_then(Value::as_str) {
        Some("trigger") => {
            // The trigger's fields are a fault's, with `occurred_at` as its first detection.
            let mut fields = obj.clone();
            fields.remove("action");
            fields.remove("occurred_at");
            fields
                .entry("microservice_id")
                .or_insert_with(|| Value::String(DEFAULT_MICROSERVICE_ID.to_owned()));
            let new = NewFault::from_json(&Value::Object(fields), now, oldest)?;
            let new = NewFault { created_at: Some(occurred_at), ..new };
            Ok(IngestEvent::Trigger(Box::new(Fault::create(customer_id, new, now, retention_seconds))))
        }
        Some("resolve") => {
            let text = |name: &'static str| match obj.get(name) {
                Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 255 => {
                    crate::fault::reject_nul(name, s)?;
                    Ok(s.clone())
                }
                None | Some(Value::Null) => Err(ValidationError::Missing(name)),
                Some(_) => Err(ValidationError::invalid(
                    name,
                    "must be a non-blank string of at most 255 characters",
                )),
            };
            let resource_id = text("resource_id")?;
            let fault_type = text("type")?;
            crate::fault::validate_slug("type", &fault_type)?;
            // A trigger's fields mean nothing to a resolve, but when sent they must still be
            // valid: the event has one schema, whatever its action.
            use crate::fault::{
                MAX_ANCESTRY_PATH, MAX_CAUSE, MAX_MESSAGE, MAX_MICROSERVICE_ID, optional_text,
            };
            for (name, max) in [
                ("message", MAX_MESSAGE),
                ("cause", MAX_CAUSE),
                ("microservice_id", MAX_MICROSERVICE_ID),
                ("resource_ancestry_path", MAX_ANCESTRY_PATH),
            ] {
                optional_text(obj, name, max)?;
            }
            if let Some(severity) = obj.get("severity").filter(|v| !v.is_null()) {
                let text = severity
                    .as_str()
                    .ok_or_else(|| ValidationError::invalid("severity", "must be a string"))?;
                text.parse::<crate::fault::Severity>()
                    .map_err(|e| ValidationError::invalid("severity", e))?;
            }
            Ok(IngestEvent::Resolve { resource_id, fault_type, occurred_at })
        }
        None if obj.get("action").is_none() => Err(ValidationError::Missing("action")),
        _ => Err(ValidationError::invalid("action", "must be \"trigger\" or \"resolve\"")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: Micros = 1_761_051_600_000_000;

    #[test]
    fn parses_triggers_and_resolves() {
        let body = json!({"events": [
            {"action": "trigger", "resource_id": "tun_1", "type": "wantunnel", "severity": "HIGH",
             "message": "down", "occurred_at": "2025-10-21T12:00:00Z"},
            {"action": "resolve", "resource_id": "tun_1", "type": "wantunnel"}
        ]});
        let events = parse_batch("cus_1", &body, NOW, 86_400 * 400).unwrap();
        match &events[0] {
            IngestEvent::Trigger(f) => {
                assert_eq!(f.created_at, NOW - 3_600_000_000);
                assert_eq!(f.microservice_id, "manual-api-entry");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            events[1],
            IngestEvent::Resolve {
                resource_id: "tun_1".into(),
                fault_type: "wantunnel".into(),
                occurred_at: NOW
            }
        );
    }

    #[test]
    fn errors_name_the_event_and_field() {
        let cases = [
            (json!({}), "events"),
            (json!({"events": []}), "events"),
            (json!({"events": [{"resource_id": "x", "type": "t"}]}), "events[0].action"),
            (json!({"events": [{"action": "explode"}]}), "events[0].action"),
            (
                json!({"events": [{"action": "resolve", "type": "t"}, {"action": "resolve"}]}),
                "events[0].resource_id",
            ),
            (
                json!({"events": [{"action": "resolve", "resource_id": "r", "type": "t"}, {"action": "trigger", "resource_id": "r", "type": "t", "message": "m"}]}),
                "events[1].severity",
            ),
            (
                json!({"events": [{"action": "resolve", "resource_id": "r", "type": "t", "occurred_at": "2999-01-01T00:00:00Z"}]}),
                "events[0].occurred_at",
            ),
        ];
        for (body, param) in cases {
            let err = parse_batch("cus_1", &body, NOW, 86_400 * 400).unwrap_err();
            assert_eq!(err.param(), param, "{body}");
        }
        let long_cause = json!({"events": [{"action": "resolve", "resource_id": "r", "type": "t", "cause": "x".repeat(2001)}]});
        let err = parse_batch("cus_1", &long_cause, 1_000, 86_400).unwrap_err();
        assert_eq!(err.param(), "events[0].cause", "a resolve's trigger fields are validated too");
        let bad_severity =
            json!({"events": [{"action": "resolve", "resource_id": "r", "type": "t", "severity": "LOUD"}]});
        assert!(parse_batch("cus_1", &bad_severity, 1_000, 86_400).is_err());
        let valid_extras = json!({"events": [{"action": "resolve", "resource_id": "r", "type": "t", "severity": "HIGH", "cause": "ok"}]});
        assert!(
            parse_batch("cus_1", &valid_extras, 1_000, 86_400).is_ok(),
            "valid extras are accepted and ignored"
        );
        let too_many = json!({"events": vec![json!({"action": "resolve", "resource_id": "r", "type": "t"}); MAX_EVENTS + 1]});
        assert_eq!(parse_batch("cus_1", &too_many, NOW, 1).unwrap_err().param(), "events");
    }
}
