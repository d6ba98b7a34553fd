//! Outbound webhooks: the rules for endpoints, their filters, signatures, retries and allowed
//! targets, with no I/O. The server stores endpoints and messages, resolves host names and
//! delivers; everything it must decide the same way every time is decided here.
//!
//! Deliveries follow the Standard Webhooks specification (standardwebhooks.com) so that a
//! receiver can verify them with any of its libraries.

mod hosts;
mod retry;
mod signing;
mod url;

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::fault::Severity;

pub use hosts::AllowedHosts;
pub use retry::{DEFAULT_RETRY_SCHEDULE, MAX_ATTEMPTS, MAX_DELAY, RetrySchedule};
pub use signing::{GENERATED_SECRET_LEN, SECRET_LEN, SECRET_PREFIX, WebhookSecret, sign, signature_header};
pub use url::{MAX_URL_LEN, WebhookUrl, validate_url};

/// The events an endpoint may subscribe to: the same as the live event stream's, so the two
/// never disagree about what happened.
pub const EVENT_TYPES: [&str; 4] = ["fault.created", "fault.resolved", "fault.commented", "fault.deleted"];
/// The message `POST /webhooks/{id}/test` sends. Not subscribable: a test is always delivered.
pub const TEST_EVENT: &str = "webhook.test";

/// Longest endpoint description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Most entries in each list of a filter.
pub const MAX_FILTER_ENTRIES: usize = 100;
/// Longest `site_id` in a filter, in characters (as long as a fault's own).
pub const MAX_SITE_ID_CHARS: usize = 255;

/// Which faults an endpoint hears about, beyond its event types. An empty list does not
/// constrain, so the default filter passes everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointFilter {
    /// Only faults of these severities.
    pub severity: Vec<Severity>,
    /// Only faults at these sites.
    pub site_id: Vec<String>,
}

impl EndpointFilter {
    /// Does a fault of `severity` at `site_id` pass? A fault without a site never passes a
    /// site list: the endpoint asked for those sites, and "no site" is none of them.
    pub fn matches(&self, severity: Severity, site_id: Option<&str>) -> bool {
        let severity_ok = self.severity.is_empty() || self.severity.contains(&severity);
        let site_ok =
            self.site_id.is_empty() || site_id.is_some_and(|site| self.site_id.iter().any(|s| s == site));
        severity_ok && site_ok
    }
}

/// Check the `events` of an endpoint: at least one (an endpoint hearing nothing is a mistake;
/// leave `events` out for all of them), each one of [`EVENT_TYPES`]. Duplicates are dropped,
/// keeping the first, so the stored list is what the caller meant.
pub fn validate_events(events: &[String]) -> Result<Vec<String>, ValidationError> {
    if events.is_empty() {
        return Err(ValidationError::invalid("events", "must name at least one event type"));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        if !EVENT_TYPES.contains(&event.as_str()) {
            let known = EVENT_TYPES.join(", ");
            return Err(ValidationError::invalid("events", format!("'{event}' is not one of {known}")));
        }
        if !out.contains(event) {
            out.push(event.clone());
        }
    }
    Ok(out)
}

/// Check an endpoint's `description`: at most [`MAX_DESCRIPTION_CHARS`] characters.
pub fn validate_description(description: &str) -> Result<(), ValidationError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ValidationError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Check a `filter` (its severities were already parsed by serde): at most
/// [`MAX_FILTER_ENTRIES`] in each list, each `site_id` non-empty and at most
/// [`MAX_SITE_ID_CHARS`] characters. Returns it with duplicates dropped, order kept.
pub fn validate_filter(filter: EndpointFilter) -> Result<EndpointFilter, ValidationError> {
    if filter.severity.len() > MAX_FILTER_ENTRIES || filter.site_id.len() > MAX_FILTER_ENTRIES {
        return Err(ValidationError::invalid(
            "filter",
            format!("each list may have at most {MAX_FILTER_ENTRIES} entries"),
        ));
    }
    if let Some(bad) = filter.site_id.iter().find(|s| s.is_empty() || s.chars().count() > MAX_SITE_ID_CHARS) {
        let shown = if bad.is_empty() { "an empty site_id".to_owned() } else { "a site_id".to_owned() };
        return Err(ValidationError::invalid(
            "filter",
            format!("{shown} is not allowed; each must be 1 to {MAX_SITE_ID_CHARS} characters"),
        ));
    }
    let mut out = EndpointFilter::default();
    for severity in filter.severity {
        if !out.severity.contains(&severity) {
            out.severity.push(severity);
        }
    }
    for site in filter.site_id {
        if !out.site_id.contains(&site) {
            out.site_id.push(site);
        }
    }
    Ok(out)
}

/// The body of a delivery: `{"type","timestamp","data"}` in that order (written by hand
/// because a JSON map would sort the keys), the timestamp in the API's RFC 3339 form with six
/// fractional digits. These exact bytes are what [`sign`] signs.
pub fn message_body(event_type: &str, timestamp_micros: i64, data: &serde_json::Value) -> String {
    let event_type = serde_json::Value::from(event_type);
    let timestamp = crate::time::format_micros(timestamp_micros);
    format!(r#"{{"type":{event_type},"timestamp":"{timestamp}","data":{data}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn empty_filter_passes_everything() {
        let filter = EndpointFilter::default();
        for severity in Severity::ALL {
            assert!(filter.matches(severity, None) && filter.matches(severity, Some("s1")));
        }
    }

    #[test]
    fn filter_constrains_severity_and_site() {
        let filter = EndpointFilter { severity: vec![Severity::Critical, Severity::High], site_id: vec![] };
        assert!(filter.matches(Severity::Critical, None));
        assert!(!filter.matches(Severity::Low, Some("s1")));
        let filter = EndpointFilter { severity: vec![], site_id: strings(&["s1", "s2"]) };
        assert!(filter.matches(Severity::Low, Some("s2")));
        assert!(!filter.matches(Severity::Low, Some("s3")));
        assert!(!filter.matches(Severity::Low, None), "no site never passes a site list");
        let both = EndpointFilter { severity: vec![Severity::High], site_id: strings(&["s1"]) };
        assert!(both.matches(Severity::High, Some("s1")));
        assert!(!both.matches(Severity::High, Some("s2")) && !both.matches(Severity::Low, Some("s1")));
    }

    #[test]
    fn filter_json_shape() {
        let filter: EndpointFilter = serde_json::from_str(r#"{"severity":["CRITICAL"]}"#).unwrap();
        assert_eq!(filter, EndpointFilter { severity: vec![Severity::Critical], site_id: vec![] });
        assert_eq!(serde_json::to_string(&filter).unwrap(), r#"{"severity":["CRITICAL"],"site_id":[]}"#);
        assert_eq!(serde_json::from_str::<EndpointFilter>("{}").unwrap(), EndpointFilter::default());
        assert!(serde_json::from_str::<EndpointFilter>(r#"{"severities":["LOW"]}"#).is_err());
        assert!(serde_json::from_str::<EndpointFilter>(r#"{"severity":["low"]}"#).is_err());
    }

    #[test]
    fn events_are_known_deduplicated_and_in_order() {
        let events = strings(&["fault.resolved", "fault.created", "fault.resolved"]);
        assert_eq!(validate_events(&events).unwrap(), strings(&["fault.resolved", "fault.created"]));
        assert_eq!(validate_events(&strings(&EVENT_TYPES)).unwrap(), strings(&EVENT_TYPES));
        for bad in [&[][..], &["fault.updated"], &["fault.created", TEST_EVENT], &["Fault.Created"]] {
            assert_eq!(validate_events(&strings(bad)).unwrap_err().param(), "events", "{bad:?}");
        }
    }

    #[test]
    fn description_length_counts_characters() {
        assert!(validate_description("").is_ok());
        assert!(validate_description(&"é".repeat(MAX_DESCRIPTION_CHARS)).is_ok());
        let err = validate_description(&"a".repeat(MAX_DESCRIPTION_CHARS + 1)).unwrap_err();
        assert_eq!(err.param(), "description");
    }

    #[test]
    fn filter_validation_bounds_and_deduplicates() {
        let filter = EndpointFilter {
            severity: vec![Severity::Low, Severity::High, Severity::Low],
            site_id: strings(&["b", "a", "b", &"é".repeat(MAX_SITE_ID_CHARS)]),
        };
        let valid = validate_filter(filter).unwrap();
        assert_eq!(valid.severity, [Severity::Low, Severity::High]);
        assert_eq!(valid.site_id, strings(&["b", "a", &"é".repeat(MAX_SITE_ID_CHARS)]));
        let sites = |site_id: Vec<String>| EndpointFilter { severity: vec![], site_id };
        for bad in [
            sites(strings(&[""])),
            sites(vec!["x".repeat(MAX_SITE_ID_CHARS + 1)]),
            sites((0..=MAX_FILTER_ENTRIES).map(|i| i.to_string()).collect()),
            EndpointFilter { severity: vec![Severity::Low; MAX_FILTER_ENTRIES + 1], site_id: vec![] },
        ] {
            assert_eq!(validate_filter(bad).unwrap_err().param(), "filter");
        }
    }

    #[test]
    fn message_body_has_the_documented_shape_and_key_order() {
        let data = serde_json::json!({"id": "flt_1", "message": "say \"hi\""});
        let body = message_body("fault.created", 1_761_051_600_000_001, &data);
        assert_eq!(
            body,
            r#"{"type":"fault.created","timestamp":"2025-10-21T13:00:00.000001Z","data":{"id":"flt_1","message":"say \"hi\""}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["data"], data);
        assert!(
            message_body(TEST_EVENT, 0, &serde_json::Value::Null).starts_with(r#"{"type":"webhook.test","#)
        );
    }
}
