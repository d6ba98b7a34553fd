//! The Fault: its fields, the rules a new fault must satisfy, and what is derived from it
//! at write time (`site_id`, the ancestry elements the `site` filter matches, `ttl`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::IdKind;
use crate::time::{Micros, parse_rfc3339};
use crate::validation::ValidationError;

pub const MAX_RESOURCE_ID: usize = 255;
pub const MAX_TYPE: usize = 64;
pub const MAX_MESSAGE: usize = 1000;
pub const MAX_CAUSE: usize = 2000;
pub const MAX_MICROSERVICE_ID: usize = 128;
pub const MAX_ANCESTRY_PATH: usize = 2048;
pub const MAX_ANCESTRY_ELEMENTS: usize = 32;
/// A back-filled `created_at` may be this far ahead of the server clock (clock skew).
pub const FUTURE_SKEW_MICROS: Micros = 5_000_000;
pub const DEFAULT_MICROSERVICE_ID: &str = "manual-api-entry";
/// How long a fault is kept after it began (or was resolved), unless configured otherwise:
/// 400 days, so a year-over-year comparison always has its data.
pub const DEFAULT_RETENTION_SECONDS: i64 = 400 * 86_400;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
    Warning,
}

impl Severity {
    pub const ALL: [Severity; 5] =
        [Severity::Low, Severity::Medium, Severity::High, Severity::Critical, Severity::Warning];

    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
            Severity::Warning => "WARNING",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    /// Exactly the upper-case names: what is documented is what is accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not one of LOW, MEDIUM, HIGH, CRITICAL, WARNING"))
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FaultStatus {
    Unresolved,
    Resolved,
}

impl FaultStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultStatus::Unresolved => "unresolved",
            FaultStatus::Resolved => "resolved",
        }
    }
}

impl FromStr for FaultStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "unresolved" => Ok(FaultStatus::Unresolved),
            "resolved" => Ok(FaultStatus::Resolved),
            _ => Err(format!("'{s}' is not one of unresolved, resolved")),
        }
    }
}

/// A comment on a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: String,
    pub user_id: String,
    pub comment: String,
    pub created_at: Micros,
}

/// A stored fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub id: String,
    pub customer_id: String,
    pub resource_id: String,
    pub microservice_id: String,
    pub fault_type: String,
    pub status: FaultStatus,
    pub severity: Severity,
    pub message: String,
    pub cause: String,
    pub created_at: Micros,
    pub resolved_at: Option<Micros>,
    pub resource_ancestry_path: String,
    pub site_id: Option<String>,
    /// The name of the fault's site (`sites.name`), read with the fault; never stored on it.
    pub site_name: Option<String>,
    /// Unix seconds at which the record expires under the retention policy.
    pub ttl: i64,
    pub comments: Vec<Comment>,
}

impl Fault {
    /// This fault, borrowed.
    pub fn as_ref(&self) -> FaultRef<'_> {
        FaultRef {
            id: &self.id,
            customer_id: &self.customer_id,
            resource_id: &self.resource_id,
            microservice_id: &self.microservice_id,
            fault_type: &self.fault_type,
            status: self.status,
            severity: self.severity,
            message: &self.message,
            cause: &self.cause,
            created_at: self.created_at,
            resolved_at: self.resolved_at,
            resource_ancestry_path: &self.resource_ancestry_path,
            site_id: self.site_id.as_deref(),
            site_name: self.site_name.as_deref(),
            ttl: self.ttl,
            comments: &self.comments,
        }
    }
}

/// A stored fault whose text is borrowed: from a [`Fault`], or straight from the row a store
/// is reading (so a page can be written out without a copy of each field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRef<'a> {
    pub id: &'a str,
    pub customer_id: &'a str,
    pub resource_id: &'a str,
    pub microservice_id: &'a str,
    pub fault_type: &'a str,
    pub status: FaultStatus,
    pub severity: Severity,
    pub message: &'a str,
    pub cause: &'a str,
    pub created_at: Micros,
    pub resolved_at: Option<Micros>,
    pub resource_ancestry_path: &'a str,
    pub site_id: Option<&'a str>,
    pub site_name: Option<&'a str>,
    pub ttl: i64,
    pub comments: &'a [Comment],
}

impl FaultRef<'_> {
    /// This fault, owned.
    pub fn to_fault(&self) -> Fault {
        Fault {
            id: self.id.to_owned(),
            customer_id: self.customer_id.to_owned(),
            resource_id: self.resource_id.to_owned(),
            microservice_id: self.microservice_id.to_owned(),
            fault_type: self.fault_type.to_owned(),
            status: self.status,
            severity: self.severity,
            message: self.message.to_owned(),
            cause: self.cause.to_owned(),
            created_at: self.created_at,
            resolved_at: self.resolved_at,
            resource_ancestry_path: self.resource_ancestry_path.to_owned(),
            site_id: self.site_id.map(str::to_owned),
            site_name: self.site_name.map(str::to_owned),
            ttl: self.ttl,
            comments: self.comments.to_vec(),
        }
    }
}

/// What a page of faults is given to as the store reads it (`Store::list_faults_into`), newest
/// first.
pub trait FaultSink: Send {
    /// The next fault, with its comments (oldest first).
    fn fault(&mut self, fault: &FaultRef<'_>);
    /// Forget everything given so far: the store starts the page again (another way).
    fn clear(&mut self);
}

/// A validated request to create a fault; the customer comes from the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFault {
    pub resource_id: String,
    pub fault_type: String,
    pub severity: Severity,
    pub message: String,
    pub cause: String,
    pub microservice_id: String,
    pub resource_ancestry_path: String,
    /// A back-filled first-detection time; `None` means now.
    pub created_at: Option<Micros>,
}

impl NewFault {
    /// Validate a `POST /fault` body. `now` bounds a back-filled `created_at`; `oldest` is the
    /// earliest one accepted (older records would already be past retention).
    pub fn from_json(body: &Value, now: Micros, oldest: Micros) -> Result<NewFault, ValidationError> {
        let obj =
            body.as_object().ok_or_else(|| ValidationError::invalid("body", "must be a JSON object"))?;
        let resource_id = required_text(obj, "resource_id", MAX_RESOURCE_ID)?;
        let fault_type = required_text(obj, "type", MAX_TYPE)?;
        validate_slug("type", &fault_type)?;
        let severity = match obj.get("severity") {
            None | Some(Value::Null) => return Err(ValidationError::Missing("severity")),
            Some(Value::String(s)) => {
                s.parse().map_err(|e: String| ValidationError::invalid("severity", e))?
            }
            Some(_) => return Err(ValidationError::invalid("severity", "must be a string")),
        };
        let message = required_text(obj, "message", MAX_MESSAGE)?;
        let cause = optional_text(obj, "cause", MAX_CAUSE)?.unwrap_or_default();
        let microservice_id = optional_text(obj, "microservice_id", MAX_MICROSERVICE_ID)?
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_MICROSERVICE_ID.to_owned());
        let path = optional_text(obj, "resource_ancestry_path", MAX_ANCESTRY_PATH)?
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| resource_id.clone());
        validate_ancestry_path(&path)?;
        let created_at = match obj.get("created_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let t = parse_rfc3339(s)
                    .ok_or_else(|| ValidationError::invalid("created_at", "must be an RFC 3339 timestamp"))?;
                if t > now + FUTURE_SKEW_MICROS {
                    return Err(ValidationError::invalid("created_at", "must not be in the future"));
                }
                if t < oldest {
                    return Err(ValidationError::invalid(
                        "created_at",
                        "is older than the retention period; the fault would expire at once",
                    ));
                }
                Some(t.min(now))
            }
            Some(_) => {
                return Err(ValidationError::invalid("created_at", "must be an RFC 3339 timestamp string"));
            }
        };
        Ok(NewFault {
            resource_id,
            fault_type,
            severity,
            message,
            cause,
            microservice_id,
            resource_ancestry_path: path,
            created_at,
        })
    }
}

fn text_field(
    obj: &Map<String, Value>,
    name: &'static str,
    max: usize,
) -> Result<Option<String>, ValidationError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let len = s.chars().count();
            if len > max {
                return Err(ValidationError::invalid(name, format!("must be at most {max} characters")));
            }
            reject_nul(name, s)?;
            Ok(Some(s.clone()))
        }
        Some(_) => Err(ValidationError::invalid(name, "must be a string")),
    }
}

fn required_text(
    obj: &Map<String, Value>,
    name: &'static str,
    max: usize,
) -> Result<String, ValidationError> {
    match text_field(obj, name, max)? {
        None => Err(ValidationError::Missing(name)),
        Some(s) if s.trim().is_empty() => Err(ValidationError::invalid(name, "must not be blank")),
        Some(s) => Ok(s),
    }
}

pub(crate) fn optional_text(
    obj: &Map<String, Value>,
    name: &'static str,
    max: usize,
) -> Result<Option<String>, ValidationError> {
    text_field(obj, name, max)
}

pub const MAX_COMMENT: usize = 2000;

/// The `comment` of a body, trimmed: 1..2000 characters (Unicode scalar values) after
/// trimming. `required` says whether its absence is an error (comment) or not (resolve).
pub fn comment_text(body: &Value, required: bool) -> Result<Option<String>, ValidationError> {
    let obj = body.as_object().ok_or_else(|| ValidationError::invalid("body", "must be a JSON object"))?;
    match obj.get("comment") {
        None | Some(Value::Null) if required => Err(ValidationError::Missing("comment")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let text = s.trim();
            let len = text.chars().count();
            if len == 0 {
                return Err(ValidationError::invalid("comment", "must not be blank"));
            }
            if len > MAX_COMMENT {
                return Err(ValidationError::invalid(
                    "comment",
                    format!("must be at most {MAX_COMMENT} characters"),
                ));
            }
            reject_nul("comment", text)?;
            Ok(Some(text.to_owned()))
        }
        Some(_) => Err(ValidationError::invalid("comment", "must be a string")),
    }
}

/// `text` cut to at most `max` characters (the integrations keep what fits rather than refuse
/// an alert their source would not send again).
pub fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// NUL cannot be stored in PostgreSQL text, so no backend accepts it.
pub fn reject_nul(name: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.contains('\0') {
        Err(ValidationError::invalid(name, "must not contain NUL characters"))
    } else {
        Ok(())
    }
}

/// A slug: lower-case letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn validate_slug(name: &'static str, value: &str) -> Result<(), ValidationError> {
    let mut chars = value.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::invalid(name, "must be a slug of lower-case letters, digits, '-', '_' or '.'"))
    }
}

fn validate_ancestry_path(path: &str) -> Result<(), ValidationError> {
    let elements: Vec<&str> = path.split('|').collect();
    if elements.len() > MAX_ANCESTRY_ELEMENTS {
        return Err(ValidationError::invalid(
            "resource_ancestry_path",
            format!("must have at most {MAX_ANCESTRY_ELEMENTS} elements"),
        ));
    }
    if elements.iter().any(|e| e.trim().is_empty()) {
        return Err(ValidationError::invalid("resource_ancestry_path", "must not contain empty elements"));
    }
    Ok(())
}

/// The site a fault belongs to: the first ancestry element (or the resource) that is a site
/// id (`site_…`); `None` when there is none.
pub fn derive_site_id(resource_id: &str, path: &str) -> Option<String> {
    path.split('|').chain(std::iter::once(resource_id)).find(|e| e.starts_with("site_")).map(str::to_owned)
}

/// Everything `site=X` matches: each ancestry element and the resource id, once each.
pub fn ancestry_elements(resource_id: &str, path: &str) -> Vec<String> {
    let mut elements: Vec<String> = Vec::new();
    for e in path.split('|').chain(std::iter::once(resource_id)) {
        if !elements.iter().any(|x| x == e) {
            elements.push(e.to_owned());
        }
    }
    elements
}

impl Fault {
    /// The stored form of a new fault created at `now` with `retention_seconds`.
    pub fn create(customer_id: &str, new: NewFault, now: Micros, retention_seconds: i64) -> Fault {
        let created_at = new.created_at.unwrap_or(now);
        Fault {
            id: IdKind::Fault.new_id_at(created_at.div_euclid(1_000_000)),
            customer_id: customer_id.to_owned(),
            site_id: derive_site_id(&new.resource_id, &new.resource_ancestry_path),
            site_name: None,
            resource_id: new.resource_id,
            microservice_id: new.microservice_id,
            fault_type: new.fault_type,
            status: FaultStatus::Unresolved,
            severity: new.severity,
            message: new.message,
            cause: new.cause,
            created_at,
            resolved_at: None,
            resource_ancestry_path: new.resource_ancestry_path,
            ttl: expiry(created_at, retention_seconds),
            comments: Vec::new(),
        }
    }

    pub fn ancestry_elements(&self) -> Vec<String> {
        ancestry_elements(&self.resource_id, &self.resource_ancestry_path)
    }
}

/// Unix seconds at which a record whose clock started at `from` expires.
pub fn expiry(from: Micros, retention_seconds: i64) -> i64 {
    from.div_euclid(1_000_000) + retention_seconds
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: Micros = 1_761_051_600_000_000;
    const OLDEST: Micros = NOW - 400 * 86_400 * 1_000_000;

    fn valid() -> Value {
        json!({"resource_id": "dev_1", "type": "wantunnel", "severity": "HIGH", "message": "Tunnel down"})
    }

    #[test]
    fn defaults_fill_optional_fields() {
        let f = NewFault::from_json(&valid(), NOW, OLDEST).unwrap();
        assert_eq!(f.microservice_id, "manual-api-entry");
        assert_eq!(f.cause, "");
        assert_eq!(f.resource_ancestry_path, "dev_1");
        assert_eq!(f.created_at, None);
    }

    #[test]
    fn each_required_field_is_named_when_missing() {
        for field in ["resource_id", "type", "severity", "message"] {
            let mut body = valid();
            body.as_object_mut().unwrap().remove(field);
            assert_eq!(NewFault::from_json(&body, NOW, OLDEST).unwrap_err(), ValidationError::Missing(field));
        }
    }

    #[test]
    fn invalid_values_name_their_field() {
        let cases = [
            ("severity", json!("SEVERE")),
            ("severity", json!(3)),
            ("type", json!("Tunnel Down")),
            ("message", json!("   ")),
            ("message", json!("x".repeat(MAX_MESSAGE + 1))),
            ("resource_id", json!(["a"])),
            ("resource_ancestry_path", json!("site_1||dev_1")),
            ("cause", json!("nul \u{0} inside")),
            ("created_at", json!("yesterday")),
            ("created_at", json!("2999-01-01T00:00:00Z")),
            ("created_at", json!("2001-01-01T00:00:00Z")),
        ];
        for (field, value) in cases {
            let mut body = valid();
            body[field] = value.clone();
            let err = NewFault::from_json(&body, NOW, OLDEST).unwrap_err();
            assert_eq!(err.param(), field, "{field} = {value}: {err}");
        }
    }

    #[test]
    fn severity_is_exactly_the_upper_case_name() {
        let mut body = valid();
        body["severity"] = json!("CRITICAL");
        assert_eq!(NewFault::from_json(&body, NOW, OLDEST).unwrap().severity, Severity::Critical);
        body["severity"] = json!("critical");
        assert_eq!(NewFault::from_json(&body, NOW, OLDEST).unwrap_err().param(), "severity");
        assert_eq!(serde_json::to_value(Severity::Critical).unwrap(), json!("CRITICAL"));
    }

    #[test]
    fn comments_are_trimmed_and_bounded_in_characters() {
        assert_eq!(comment_text(&json!({"comment": "  ok  "}), true).unwrap().as_deref(), Some("ok"));
        assert_eq!(comment_text(&json!({}), true).unwrap_err(), ValidationError::Missing("comment"));
        assert_eq!(comment_text(&json!({}), false).unwrap(), None);
        assert_eq!(comment_text(&json!({"comment": " \n "}), true).unwrap_err().param(), "comment");
        let max = "é".repeat(MAX_COMMENT);
        assert_eq!(
            comment_text(&json!({"comment": max}), true).unwrap().unwrap().chars().count(),
            MAX_COMMENT
        );
        assert!(comment_text(&json!({"comment": format!("{max}é")}), true).is_err());
        assert!(comment_text(&json!({"comment": 5}), true).is_err());
    }

    #[test]
    fn site_and_elements_come_from_the_path() {
        assert_eq!(derive_site_id("dev_2", "cus_1|site_8a7b|dev_2"), Some("site_8a7b".into()));
        assert_eq!(derive_site_id("site_9", "site_9"), Some("site_9".into()));
        assert_eq!(derive_site_id("dev_2", "dev_2"), None);
        assert_eq!(ancestry_elements("dev_2", "site_8a7b|dev_2"), vec!["site_8a7b", "dev_2"]);
        assert_eq!(ancestry_elements("tun_1", "site_8a7b|dev_2"), vec!["site_8a7b", "dev_2", "tun_1"]);
    }

    #[test]
    fn created_faults_expire_after_retention() {
        let new = NewFault::from_json(&valid(), NOW, OLDEST).unwrap();
        let fault = Fault::create("cus_1", new, NOW, 86_400);
        assert_eq!(fault.ttl, NOW / 1_000_000 + 86_400);
        assert!(fault.id.starts_with("flt_"));
        assert_eq!(fault.status, FaultStatus::Unresolved);
        assert_eq!(fault.resolved_at, None);
    }
}
