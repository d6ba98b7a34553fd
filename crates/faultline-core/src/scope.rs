//! What an access token may read: a conjunction of optional restrictions on faults.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fault::{Fault, MAX_RESOURCE_ID, Severity, reject_nul};
use crate::validation::ValidationError;

pub const MIN_EXPIRE_MINUTES: i64 = 1;
pub const MAX_EXPIRE_MINUTES: i64 = 43_200;
/// Most ids a scope list may hold.
pub const MAX_SCOPE_IDS: usize = 100;
pub const MAX_LABEL: usize = 200;

/// Each non-empty list restricts the token to faults matching one of its values; the lists
/// combine with AND. An empty scope reads every fault of the customer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenScope {
    /// Faults of these sites (any ancestry element or the resource id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub site_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fault_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<Severity>,
    #[serde(default, rename = "type", skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
}

impl TokenScope {
    pub fn is_unrestricted(&self) -> bool {
        self == &TokenScope::default()
    }

    /// Does this scope let its token read `fault`?
    pub fn matches(&self, fault: &Fault) -> bool {
        self.matches_parts(
            &fault.id,
            &fault.resource_id,
            &fault.fault_type,
            fault.severity,
            &fault.ancestry_elements(),
        )
    }

    /// As [`TokenScope::matches`], from the fields a scope looks at (e.g. of a deleted fault).
    pub fn matches_parts(
        &self,
        fault_id: &str,
        resource_id: &str,
        fault_type: &str,
        severity: Severity,
        ancestry_elements: &[String],
    ) -> bool {
        let any = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        any(&self.resource_ids, resource_id)
            && any(&self.fault_ids, fault_id)
            && any(&self.types, fault_type)
            && (self.severity.is_empty() || self.severity.contains(&severity))
            && (self.site_ids.is_empty() || ancestry_elements.iter().any(|e| self.site_ids.contains(e)))
    }
}

/// A validated `POST /fault/token` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    pub expire_after_minutes: i64,
    pub scope: TokenScope,
    pub label: String,
}

impl MintRequest {
    pub fn from_json(body: &Value) -> Result<MintRequest, ValidationError> {
        const NAME: &str = "expire_after_minutes";
        let obj =
            body.as_object().ok_or_else(|| ValidationError::invalid("body", "must be a JSON object"))?;
        let minutes = match obj.get(NAME) {
            None => return Err(ValidationError::Missing(NAME)),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.as_i64().unwrap_or(i64::MAX),
            Some(_) => {
                return Err(ValidationError::invalid(
                    NAME,
                    format!("must be an integer from {MIN_EXPIRE_MINUTES} to {MAX_EXPIRE_MINUTES}"),
                ));
            }
        };
        if !(MIN_EXPIRE_MINUTES..=MAX_EXPIRE_MINUTES).contains(&minutes) {
            return Err(ValidationError::invalid(
                NAME,
                format!("must be an integer from {MIN_EXPIRE_MINUTES} to {MAX_EXPIRE_MINUTES}"),
            ));
        }
        let severity = string_list(obj, "severity")?
            .into_iter()
            .map(|s| s.parse::<Severity>().map_err(|e| ValidationError::invalid("severity", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let types = string_list(obj, "type")?;
        for t in &types {
            crate::fault::validate_slug("type", t)?;
        }
        let label = match obj.get("label") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) if s.chars().count() <= MAX_LABEL => {
                reject_nul("label", s)?;
                s.clone()
            }
            Some(_) => {
                return Err(ValidationError::invalid(
                    "label",
                    format!("must be a string of at most {MAX_LABEL} characters"),
                ));
            }
        };
        Ok(MintRequest {
            expire_after_minutes: minutes,
            scope: TokenScope {
                site_ids: string_list(obj, "site_ids")?,
                resource_ids: string_list(obj, "resource_ids")?,
                fault_ids: string_list(obj, "fault_ids")?,
                severity,
                types,
            },
            label,
        })
    }
}

/// An optional array of 1..255-character strings, at most [`MAX_SCOPE_IDS`] long, deduplicated.
fn string_list(obj: &Map<String, Value>, name: &'static str) -> Result<Vec<String>, ValidationError> {
    let invalid = || {
        ValidationError::invalid(
            name,
            format!(
                "must be an array of at most {MAX_SCOPE_IDS} strings of 1 to {MAX_RESOURCE_ID} characters"
            ),
        )
    };
    let items = match obj.get(name) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_SCOPE_IDS => items,
        Some(_) => return Err(invalid()),
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let s = item
            .as_str()
            .filter(|s| !s.is_empty() && s.chars().count() <= MAX_RESOURCE_ID)
            .ok_or_else(invalid)?;
        reject_nul(name, s)?;
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expire_after_minutes_must_be_an_integer_in_range() {
        assert_eq!(
            MintRequest::from_json(&json!({"expire_after_minutes": 60})).unwrap().expire_after_minutes,
            60
        );
        assert_eq!(
            MintRequest::from_json(&json!({})).unwrap_err(),
            ValidationError::Missing("expire_after_minutes")
        );
        for bad in [
            json!(0),
            json!(43_201),
            json!(60.0),
            json!(60.5),
            json!("60"),
            json!(null),
            json!(-1),
            json!(true),
        ] {
            let err = MintRequest::from_json(&json!({"expire_after_minutes": bad})).unwrap_err();
            assert_eq!(err.param(), "expire_after_minutes", "{bad}");
        }
        assert!(MintRequest::from_json(&json!({"expire_after_minutes": 43_200})).is_ok());
        assert_eq!(MintRequest::from_json(&json!([1])).unwrap_err().param(), "body");
    }

    #[test]
    fn scope_fields_are_validated_and_named() {
        let ok = MintRequest::from_json(&json!({"expire_after_minutes": 5, "site_ids": ["site_1", "site_1"],
            "severity": ["CRITICAL"], "type": ["site"], "label": "NOC wall"}))
        .unwrap();
        assert_eq!(ok.scope.site_ids, vec!["site_1"]);
        assert_eq!(ok.label, "NOC wall");
        for (field, value) in [
            ("site_ids", json!("site_1")),
            ("resource_ids", json!([1])),
            ("fault_ids", json!([""])),
            ("severity", json!(["SEVERE"])),
            ("type", json!(["Not A Slug"])),
            ("label", json!(7)),
        ] {
            let mut body = json!({"expire_after_minutes": 5});
            body[field] = value;
            assert_eq!(MintRequest::from_json(&body).unwrap_err().param(), field);
        }
    }
}
