//! The filters `GET /fault` takes (and every operation that reuses them), parsed from the
//! query string with errors that name the parameter.

use crate::fault::{FaultStatus, MAX_RESOURCE_ID, Severity, reject_nul};
use crate::time::{Micros, parse_rfc3339};
use crate::validation::ValidationError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;
/// Most values a comma-list filter accepts.
pub const MAX_LIST: usize = 50;
pub const MAX_QUERY_TEXT: usize = 200;
/// What `recent=true` means: unresolved, or created in this window.
pub const RECENT_WINDOW_MICROS: Micros = 24 * 3600 * 1_000_000;

/// A conjunction of conditions on faults; an empty list means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultFilter {
    /// `created_at >= from`.
    pub from: Option<Micros>,
    /// `created_at < to`.
    pub to: Option<Micros>,
    pub severities: Vec<Severity>,
    pub statuses: Vec<FaultStatus>,
    pub types: Vec<String>,
    pub resource_ids: Vec<String>,
    /// Matches any ancestry element or the resource id.
    pub sites: Vec<String>,
    pub microservice_ids: Vec<String>,
    /// Case-insensitive text in message or cause.
    pub text: Option<String>,
    /// Unresolved, or created within the last 24 hours.
    pub recent: bool,
    /// An access token's scope, AND-ed with everything else; never from the query string.
    pub scope: Option<crate::scope::TokenScope>,
}

/// A list request: the filter, the page size and the raw cursor, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    pub filter: FaultFilter,
    pub limit: u32,
    pub cursor: Option<String>,
}

impl FaultFilter {
    /// Parse the filter parameters from query pairs; unknown parameters are ignored.
    /// Repeated parameters and comma lists combine (`severity=HIGH&severity=LOW`).
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<FaultFilter, ValidationError> {
        let mut filter = FaultFilter::default();
        for (key, value) in pairs {
            match key.as_str() {
                "from" => filter.from = Some(timestamp("from", value)?),
                "to" => filter.to = Some(timestamp("to", value)?),
                "severity" => {
                    for v in list("severity", value)? {
                        let s: Severity =
                            v.parse().map_err(|e: String| ValidationError::invalid("severity", e))?;
                        push_unique(&mut filter.severities, s);
                    }
                }
                "status" => {
                    for v in list("status", value)? {
                        let s: FaultStatus =
                            v.parse().map_err(|e: String| ValidationError::invalid("status", e))?;
                        push_unique(&mut filter.statuses, s);
                    }
                }
                "type" => extend_text(&mut filter.types, "type", value)?,
                "resource_id" => extend_text(&mut filter.resource_ids, "resource_id", value)?,
                "site" => extend_text(&mut filter.sites, "site", value)?,
                "microservice_id" => extend_text(&mut filter.microservice_ids, "microservice_id", value)?,
                "q" => {
                    if value.chars().count() > MAX_QUERY_TEXT {
                        return Err(ValidationError::invalid(
                            "q",
                            format!("must be at most {MAX_QUERY_TEXT} characters"),
                        ));
                    }
                    reject_nul("q", value)?;
                    let text = value.trim();
                    filter.text = (!text.is_empty()).then(|| text.to_owned());
                }
                "recent" => filter.recent = boolean("recent", value)?,
                _ => {}
            }
        }
        for list in [&filter.types, &filter.resource_ids, &filter.sites, &filter.microservice_ids] {
            if list.len() > MAX_LIST {
                return Err(ValidationError::invalid(
                    "filter",
                    format!("a list takes at most {MAX_LIST} values"),
                ));
            }
        }
        Ok(filter)
    }

    /// A stable text naming exactly this filter; cursors are bound to it.
    pub fn canonical(&self) -> String {
        fn sorted<T: ToString>(items: &[T]) -> String {
            let mut v: Vec<String> = items.iter().map(ToString::to_string).collect();
            v.sort();
            v.join("\u{1f}")
        }
        let sev: Vec<&str> = self.severities.iter().map(|s| s.as_str()).collect();
        let st: Vec<&str> = self.statuses.iter().map(|s| s.as_str()).collect();
        format!(
            "from={:?}\u{1e}to={:?}\u{1e}sev={}\u{1e}st={}\u{1e}type={}\u{1e}res={}\u{1e}site={}\u{1e}ms={}\u{1e}q={:?}\u{1e}recent={}\u{1e}scope={}",
            self.from,
            self.to,
            sorted(&sev),
            sorted(&st),
            sorted(&self.types),
            sorted(&self.resource_ids),
            sorted(&self.sites),
            sorted(&self.microservice_ids),
            self.text,
            self.recent,
            self.scope.as_ref().map(|s| serde_json::to_string(s).unwrap_or_default()).unwrap_or_default()
        )
    }
}

impl ListRequest {
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<ListRequest, ValidationError> {
        let filter = FaultFilter::from_pairs(pairs)?;
        let mut limit = DEFAULT_LIMIT;
        let mut cursor = None;
        for (key, value) in pairs {
            match key.as_str() {
                "limit" => limit = bounded_integer("limit", value, 1..=MAX_LIMIT)?,
                "cursor" if !value.is_empty() => cursor = Some(value.clone()),
                _ => {}
            }
        }
        Ok(ListRequest { filter, limit, cursor })
    }
}

/// An integer parameter within `range`, written as plain decimal digits (no sign, no spaces, no
/// leading `+`); anything else is refused naming `name`.
pub fn bounded_integer(
    name: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ValidationError> {
    Some(value)
        .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            ValidationError::invalid(
                name,
                format!("must be an integer from {} to {}", range.start(), range.end()),
            )
        })
}

fn timestamp(name: &'static str, value: &str) -> Result<Micros, ValidationError> {
    parse_rfc3339(value.trim()).ok_or_else(|| ValidationError::invalid(name, "must be an RFC 3339 timestamp"))
}

fn boolean(name: &'static str, value: &str) -> Result<bool, ValidationError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ValidationError::invalid(name, "must be true or false")),
    }
}

/// The comma-separated values of a filter, at most 50 of them.
fn list<'a>(name: &'static str, value: &'a str) -> Result<Vec<&'a str>, ValidationError> {
    let items: Vec<&str> = value.split(',').collect();
    if items.len() > MAX_LIST {
        return Err(ValidationError::invalid(name, format!("takes at most {MAX_LIST} values")));
    }
    Ok(items)
}

/// The values of a free-text filter: each at most 255 characters; empty values are ignored.
/// (The OpenAPI pattern of these parameters states exactly this rule.)
fn extend_text(target: &mut Vec<String>, name: &'static str, value: &str) -> Result<(), ValidationError> {
    for v in list(name, value)? {
        if v.chars().count() > MAX_RESOURCE_ID {
            return Err(ValidationError::invalid(
                name,
                format!("values must be at most {MAX_RESOURCE_ID} characters"),
            ));
        }
        reject_nul(name, v)?;
        if !v.is_empty() {
            push_unique(target, v.to_owned());
        }
    }
    Ok(())
}

fn push_unique<T: PartialEq>(target: &mut Vec<T>, value: T) {
    if !target.contains(&value) {
        target.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_every_filter() {
        let req = ListRequest::from_pairs(&pairs(&[
            ("limit", "20"),
            ("severity", "HIGH,CRITICAL"),
            ("severity", "HIGH"),
            ("status", "unresolved"),
            ("type", "site,wantunnel"),
            ("site", "site_1"),
            ("q", " Tunnel "),
            ("resource_id", ""),
            ("recent", "true"),
            ("from", "2025-01-01T00:00:00Z"),
            ("unknown", "ignored"),
        ]))
        .unwrap();
        assert_eq!(req.limit, 20);
        assert_eq!(req.filter.severities, vec![Severity::High, Severity::Critical]);
        assert_eq!(req.filter.statuses, vec![FaultStatus::Unresolved]);
        assert_eq!(req.filter.types, vec!["site", "wantunnel"]);
        assert_eq!(req.filter.text.as_deref(), Some("Tunnel"));
        assert!(req.filter.recent);
        assert!(req.filter.from.is_some());
    }

    #[test]
    fn malformed_parameters_are_named() {
        for (key, value) in [
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "ten"),
            ("severity", "SEVERE"),
            ("severity", "high"),
            ("severity", ""),
            ("severity", "HIGH,"),
            ("status", "open"),
            ("limit", " 5"),
            ("recent", "1"),
            ("from", "yesterday"),
            ("recent", "maybe"),
            ("site", "site\u{0}1"),
            ("q", "a\u{0}b"),
        ] {
            let err = ListRequest::from_pairs(&pairs(&[(key, value)])).unwrap_err();
            assert_eq!(err.param(), key, "{key}={value}");
        }
        // An empty window is not an error: it selects nothing.
        let empty = pairs(&[("from", "2025-02-01T00:00:00Z"), ("to", "2025-01-01T00:00:00Z")]);
        assert!(ListRequest::from_pairs(&empty).is_ok());
    }

    #[test]
    fn canonical_form_ignores_order_and_repeats() {
        let a = FaultFilter::from_pairs(&pairs(&[("severity", "HIGH,LOW"), ("type", "b,a")])).unwrap();
        let b = FaultFilter::from_pairs(&pairs(&[
            ("type", "a"),
            ("severity", "LOW"),
            ("type", "b"),
            ("severity", "HIGH"),
        ]))
        .unwrap();
        assert_eq!(a.canonical(), b.canonical());
        let c = FaultFilter::from_pairs(&pairs(&[("severity", "HIGH")])).unwrap();
        assert_ne!(a.canonical(), c.canonical());
    }
}
