//! Heartbeats and offline detection. Routers report about every `interval`; a site that has
//! missed `misses` heartbeats in a row is offline. Its outage is a `site` fault, `CRITICAL`,
//! that began at the first missed heartbeat and ends when the next heartbeat arrives.

use serde_json::{Map, Value};

use crate::fault::{Fault, MAX_RESOURCE_ID, NewFault, Severity, reject_nul};
use crate::ingest::{EventError, IngestEvent};
use crate::time::{Micros, format_micros};
use crate::validation::ValidationError;

/// Most heartbeats one request may carry.
pub const MAX_HEARTBEATS: usize = 1_000;
pub const MAX_SITE_NAME: usize = 200;
/// The fault type of an outage found by the detector (and of the resolve a heartbeat sends).
pub const OUTAGE_TYPE: &str = "site";
/// The `microservice_id` of the faults the detector opens.
pub const DETECTOR: &str = "heartbeat-detector";

/// One validated heartbeat: the site that is alive, and optionally its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub site_id: String,
    pub name: Option<String>,
}

/// Validate a `POST /heartbeat` body: `{"site_id", "name"?}` or `{"heartbeats": [...]}` with 1
/// to [`MAX_HEARTBEATS`] of them. A site named twice counts once, keeping the last name given.
/// The result is ordered by site id, the order in which the store locks the sites' rows.
pub fn parse_heartbeats(body: &Value) -> Result<Vec<Heartbeat>, EventError> {
    let top = |error| EventError { list: "heartbeats", index: None, error };
    let obj =
        body.as_object().ok_or_else(|| top(ValidationError::invalid("body", "must be a JSON object")))?;
    let mut beats = match obj.get("heartbeats") {
        None | Some(Value::Null) => vec![parse_one(obj).map_err(top)?],
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_HEARTBEATS => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                item.as_object()
                    .ok_or_else(|| ValidationError::invalid("heartbeat", "must be an object"))
                    .and_then(parse_one)
                    .map_err(|error| EventError { list: "heartbeats", index: Some(index), error })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(top(ValidationError::invalid(
                "heartbeats",
                format!("must be an array of 1 to {MAX_HEARTBEATS} heartbeats"),
            )));
        }
    };
    // Stable sort, then keep the last of each site (carrying forward a name given earlier).
    beats.sort_by(|a, b| a.site_id.cmp(&b.site_id));
    let mut unique: Vec<Heartbeat> = Vec::with_capacity(beats.len());
    for beat in beats {
        match unique.last_mut() {
            Some(last) if last.site_id == beat.site_id => {
                if beat.name.is_some() {
                    last.name = beat.name;
                }
            }
            _ => unique.push(beat),
        }
    }
    Ok(unique)
}

fn parse_one(obj: &Map<String, Value>) -> Result<Heartbeat, ValidationError> {
    let site_id = match obj.get("site_id") {
        None | Some(Value::Null) => return Err(ValidationError::Missing("site_id")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ValidationError::invalid("site_id", "must be a string")),
    };
    if site_id.trim().is_empty() || site_id.trim() != site_id {
        return Err(ValidationError::invalid("site_id", "must not be blank or start or end with spaces"));
    }
    if site_id.chars().count() > MAX_RESOURCE_ID {
        return Err(ValidationError::invalid(
            "site_id",
            format!("must be at most {MAX_RESOURCE_ID} characters"),
        ));
    }
    if site_id.contains('|') {
        return Err(ValidationError::invalid("site_id", "must not contain '|' (the ancestry separator)"));
    }
    reject_nul("site_id", &site_id)?;
    let name = match obj.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) if s.chars().count() > MAX_SITE_NAME => {
            return Err(ValidationError::invalid(
                "name",
                format!("must be at most {MAX_SITE_NAME} characters"),
            ));
        }
        Some(Value::String(s)) => {
            reject_nul("name", s)?;
            Some(s.trim().to_owned())
        }
        Some(_) => return Err(ValidationError::invalid("name", "must be a string")),
    };
    Ok(Heartbeat { site_id, name })
}

/// When a site counts as offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflinePolicy {
    /// How often a site sends a heartbeat, in microseconds.
    pub interval: Micros,
    /// How many heartbeats in a row a site may miss before it is offline.
    pub misses: u32,
}

impl OfflinePolicy {
    /// A site whose last heartbeat is at or before this instant is offline at `now`.
    pub fn cutoff(&self, now: Micros) -> Micros {
        now - self.interval * i64::from(self.misses)
    }

    /// The first heartbeat a site missed after its last one: when its outage began.
    pub fn first_missed(&self, last_heartbeat: Micros) -> Micros {
        last_heartbeat + self.interval
    }
}

/// Where a detector sweep has got to: the last site it handled, in the order it reads them
/// (oldest heartbeat first). The next batch of the same sweep starts after it, so it never
/// reads again what the previous batches marked offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepCursor {
    pub last_heartbeat: Micros,
    pub customer_id: String,
    pub site_id: String,
}

/// A site whose heartbeats have stopped, as the detector finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilentSite {
    pub customer_id: String,
    pub site_id: String,
    pub name: Option<String>,
    pub last_heartbeat: Micros,
}

impl SilentSite {
    /// The trigger that opens this site's outage (or deduplicates onto the `site` fault already
    /// open for it): `CRITICAL`, begun at the first missed heartbeat.
    pub fn outage(&self, policy: &OfflinePolicy, now: Micros, retention_seconds: i64) -> IngestEvent {
        let label = match &self.name {
            Some(name) => format!("{name} ({})", self.site_id),
            None => self.site_id.clone(),
        };
        let interval = crate::duration::format_duration(std::time::Duration::from_micros(
            u64::try_from(policy.interval).unwrap_or(0),
        ));
        let new = NewFault {
            resource_id: self.site_id.clone(),
            fault_type: OUTAGE_TYPE.to_owned(),
            severity: Severity::Critical,
            message: format!("Site {label} is offline: it stopped sending heartbeats"),
            cause: format!(
                "{} heartbeats missed in a row (one expected every {interval}); the last arrived at {}",
                policy.misses,
                format_micros(self.last_heartbeat)
            ),
            microservice_id: DETECTOR.to_owned(),
            resource_ancestry_path: self.site_id.clone(),
            created_at: Some(policy.first_missed(self.last_heartbeat)),
        };
        let mut fault = Fault::create(&self.customer_id, new, now, retention_seconds);
        fault.site_id = Some(self.site_id.clone());
        IngestEvent::Trigger(Box::new(fault))
    }
}

/// The resolve a site's first heartbeat after an outage sends: the outage ends at `arrived`.
pub fn recovery(site_id: &str, arrived: Micros) -> IngestEvent {
    IngestEvent::Resolve {
        resource_id: site_id.to_owned(),
        fault_type: OUTAGE_TYPE.to_owned(),
        occurred_at: arrived,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_single_heartbeat_and_a_batch_parse_to_sorted_unique_sites() {
        let one = parse_heartbeats(&json!({"site_id": "site_1", "name": " Lyon "})).unwrap();
        assert_eq!(one, vec![Heartbeat { site_id: "site_1".into(), name: Some("Lyon".into()) }]);
        let batch = parse_heartbeats(&json!({"heartbeats": [
            {"site_id": "site_b", "name": "B"}, {"site_id": "site_a"}, {"site_id": "site_b"}
        ]}))
        .unwrap();
        assert_eq!(
            batch,
            vec![
                Heartbeat { site_id: "site_a".into(), name: None },
                Heartbeat { site_id: "site_b".into(), name: Some("B".into()) },
            ]
        );
    }

    #[test]
    fn malformed_heartbeats_name_the_parameter() {
        let param = |body: Value| parse_heartbeats(&body).unwrap_err().param();
        assert_eq!(param(json!({})), "site_id");
        assert_eq!(param(json!({"site_id": 5})), "site_id");
        assert_eq!(param(json!({"site_id": " "})), "site_id");
        assert_eq!(param(json!({"site_id": "a|b"})), "site_id");
        assert_eq!(param(json!({"site_id": "x".repeat(256)})), "site_id");
        assert_eq!(param(json!({"site_id": "s", "name": 1})), "name");
        assert_eq!(param(json!({"site_id": "s", "name": "n".repeat(201)})), "name");
        assert_eq!(param(json!({"heartbeats": []})), "heartbeats");
        assert_eq!(param(json!({"heartbeats": "x"})), "heartbeats");
        assert_eq!(param(json!({"heartbeats": [{"site_id": "a"}, {"name": "b"}]})), "heartbeats[1].site_id");
        assert_eq!(param(json!({"heartbeats": [1]})), "heartbeats[0].heartbeat");
        let too_many: Vec<Value> =
            (0..=MAX_HEARTBEATS).map(|i| json!({"site_id": format!("s{i}")})).collect();
        assert_eq!(param(json!({ "heartbeats": too_many })), "heartbeats");
        assert_eq!(param(json!([])), "body");
    }

    #[test]
    fn an_outage_begins_at_the_first_missed_heartbeat() {
        let policy = OfflinePolicy { interval: 30_000_000, misses: 10 };
        assert_eq!(policy.cutoff(1_000_000_000), 1_000_000_000 - 300_000_000);
        let site = SilentSite {
            customer_id: "cus_1".into(),
            site_id: "lyon-1".into(),
            name: Some("Lyon".into()),
            last_heartbeat: 1_700_000_000_000_000,
        };
        let IngestEvent::Trigger(fault) = site.outage(&policy, 1_700_000_400_000_000, 86_400) else {
            panic!("an outage is a trigger");
        };
        assert_eq!(fault.created_at, 1_700_000_030_000_000);
        assert_eq!(fault.severity, Severity::Critical);
        assert_eq!(fault.fault_type, "site");
        assert_eq!(fault.resource_id, "lyon-1");
        assert_eq!(fault.site_id.as_deref(), Some("lyon-1"));
        assert!(fault.message.contains("Lyon (lyon-1)"), "{}", fault.message);
        assert!(fault.cause.starts_with("10 heartbeats missed"), "{}", fault.cause);
        assert!(fault.cause.contains("every 30s"), "{}", fault.cause);
        assert_eq!(
            recovery("lyon-1", 5),
            IngestEvent::Resolve { resource_id: "lyon-1".into(), fault_type: "site".into(), occurred_at: 5 }
        );
    }
}
