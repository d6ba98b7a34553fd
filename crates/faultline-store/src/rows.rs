//! Row shapes shared by both backends, and their conversion to records. Both backends
//! select the same columns in the same order, so one conversion serves both.

use faultline_core::Permissions;
use faultline_core::fault::Fault;

use crate::error::StoreError;
use crate::sql::Param;

use crate::model::{ApiKey, ApiKeyWithHash, Customer, NewApiKey};

pub(crate) const CUSTOMER_COLUMNS: &str = "id, name, created_at";
pub(crate) type CustomerRow = (String, String, i64);

pub(crate) fn customer(row: CustomerRow) -> Customer {
    let (id, name, created_at) = row;
    Customer { id, name, created_at }
}

pub(crate) const API_KEY_COLUMNS: &str = "id, customer_id, user_id, name, permissions, rate_limit_per_minute, created_at, last_used_at, revoked_at";
pub(crate) type ApiKeyRow =
    (String, String, String, String, String, Option<i64>, i64, Option<i64>, Option<i64>);

pub(crate) fn api_key(row: ApiKeyRow) -> ApiKey {
    let (id, customer_id, user_id, name, permissions, rate_limit, created_at, last_used_at, revoked_at) = row;
    ApiKey {
        id,
        customer_id,
        user_id,
        name,
        // Stored permissions were written from a valid set; an unknown name (from a newer
        // version) is dropped rather than granting anything.
        permissions: permissions.split(',').filter_map(|p| p.parse().ok()).collect::<Permissions>(),
        rate_limit_per_minute: rate_limit.and_then(|n| u32::try_from(n).ok()),
        created_at,
        last_used_at,
        revoked_at,
    }
}

pub(crate) const INSERT_API_KEY: &str = "INSERT INTO api_keys \
    (id, customer_id, user_id, name, lookup, secret_hash, permissions, rate_limit_per_minute, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) type ApiKeyWithHashRow =
    (String, String, String, String, String, String, Option<i64>, i64, Option<i64>, Option<i64>);

pub(crate) fn api_key_with_hash(row: ApiKeyWithHashRow) -> ApiKeyWithHash {
    let (
        secret_hash,
        id,
        customer_id,
        user_id,
        name,
        permissions,
        rate_limit,
        created_at,
        last_used_at,
        revoked_at,
    ) = row;
    ApiKeyWithHash {
        key: api_key((
            id,
            customer_id,
            user_id,
            name,
            permissions,
            rate_limit,
            created_at,
            last_used_at,
            revoked_at,
        )),
        secret_hash,
    }
}

/// The record a freshly inserted key reads back as.
pub(crate) fn api_key_from_new(key: NewApiKey) -> ApiKey {
    ApiKey {
        id: key.id,
        customer_id: key.customer_id,
        user_id: key.user_id,
        name: key.name,
        permissions: key.permissions,
        rate_limit_per_minute: key.rate_limit_per_minute,
        created_at: key.created_at,
        last_used_at: None,
        revoked_at: None,
    }
}

/// A new customer record with a fresh id, or the given one.
pub(crate) fn new_customer(id: Option<&str>, name: &str) -> Customer {
    Customer {
        id: id.map_or_else(|| faultline_core::ids::IdKind::Customer.new_id(), str::to_owned),
        name: name.to_owned(),
        created_at: faultline_core::time::now_micros(),
    }
}

/// One column of a fault row: its name, and the value a [`Fault`] writes to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FaultColumn {
    pub name: &'static str,
    pub value: fn(&Fault) -> Param,
}

/// A fault's columns, in the one order that every statement reading or writing a whole fault
/// row uses: the select and insert lists of [`crate::sql`] and [`FaultRow`].
pub(crate) const FAULT_COLUMNS: [FaultColumn; 14] = [
    FaultColumn { name: "id", value: |f| Param::Text(f.id.clone()) },
    FaultColumn { name: "customer_id", value: |f| Param::Text(f.customer_id.clone()) },
    FaultColumn { name: "resource_id", value: |f| Param::Text(f.resource_id.clone()) },
    FaultColumn { name: "microservice_id", value: |f| Param::Text(f.microservice_id.clone()) },
    FaultColumn { name: "type", value: |f| Param::Text(f.fault_type.clone()) },
    FaultColumn { name: "status", value: |f| Param::Text(f.status.as_str().to_owned()) },
    FaultColumn { name: "severity", value: |f| Param::Text(f.severity.as_str().to_owned()) },
    FaultColumn { name: "message", value: |f| Param::Text(f.message.clone()) },
    FaultColumn { name: "cause", value: |f| Param::Text(f.cause.clone()) },
    FaultColumn { name: "created_at", value: |f| Param::Int(f.created_at) },
    FaultColumn { name: "resolved_at", value: |f| Param::OptInt(f.resolved_at) },
    FaultColumn { name: "resource_ancestry_path", value: |f| Param::Text(f.resource_ancestry_path.clone()) },
    FaultColumn { name: "site_id", value: |f| Param::OptText(f.site_id.clone()) },
    FaultColumn { name: "ttl", value: |f| Param::Int(f.ttl) },
];

/// The columns of [`FAULT_COLUMNS`], comma-separated, each prefixed with `alias` (`"f."`, or
/// `""` for an insert's column list).
pub(crate) fn fault_column_list(alias: &str) -> String {
    let names: Vec<String> = FAULT_COLUMNS.iter().map(|c| format!("{alias}{}", c.name)).collect();
    names.join(", ")
}

/// A fault row in the order of [`FAULT_COLUMNS`] (sqlx decodes rows into tuples by position).
pub(crate) type FaultRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    String,
    Option<String>,
    i64,
);

pub(crate) fn fault(row: FaultRow) -> Result<Fault, StoreError> {
    let (
        id,
        customer_id,
        resource_id,
        microservice_id,
        fault_type,
        status,
        severity,
        message,
        cause,
        created_at,
        resolved_at,
        path,
        site_id,
        ttl,
    ) = row;
    let corrupt = |what: &str, value: &str| StoreError::Corrupt(format!("fault {id}: {what} '{value}'"));
    Ok(Fault {
        status: status.parse().map_err(|_| corrupt("status", &status))?,
        severity: severity.parse().map_err(|_| corrupt("severity", &severity))?,
        id,
        customer_id,
        resource_id,
        microservice_id,
        fault_type,
        message,
        cause,
        created_at,
        resolved_at,
        resource_ancestry_path: path,
        site_id,
        site_name: None,
        ttl,
        comments: Vec::new(),
    })
}

/// The ranked resources with their sampled faults (in any order), each sample newest first.
pub(crate) fn top_resources(
    counts: Vec<(String, i64)>,
    sampled: Vec<Fault>,
) -> Vec<crate::model::TopResource> {
    let mut ranked: Vec<crate::model::TopResource> = counts
        .into_iter()
        .map(|(resource_id, count)| crate::model::TopResource { resource_id, count, faults: Vec::new() })
        .collect();
    for fault in sampled {
        if let Some(resource) = ranked.iter_mut().find(|r| r.resource_id == fault.resource_id) {
            resource.faults.push(fault);
        }
    }
    for resource in &mut ranked {
        resource.faults.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    }
    ranked
}

pub(crate) const SIGNING_KEY_COLUMNS: &str =
    "kid, secret_key, public_key, created_at, retired_at, verify_until";
pub(crate) type SigningKeyRow = (String, Vec<u8>, Vec<u8>, i64, Option<i64>, Option<i64>);

pub(crate) fn signing_key(row: SigningKeyRow) -> crate::model::SigningKey {
    let (kid, secret_key, public_key, created_at, retired_at, verify_until) = row;
    crate::model::SigningKey { kid, secret_key, public_key, created_at, retired_at, verify_until }
}

pub(crate) const ACCESS_TOKEN_COLUMNS: &str = "id, customer_id, kid, label, scope, created_by, created_at, expires_at, revoked_at, last_used_at, use_count";
pub(crate) type AccessTokenRow =
    (String, String, String, String, String, String, i64, i64, Option<i64>, Option<i64>, i64);

pub(crate) fn access_token(row: AccessTokenRow) -> Result<crate::model::AccessToken, StoreError> {
    let (
        id,
        customer_id,
        kid,
        label,
        scope,
        created_by,
        created_at,
        expires_at,
        revoked_at,
        last_used_at,
        use_count,
    ) = row;
    let scope =
        serde_json::from_str(&scope).map_err(|e| StoreError::Corrupt(format!("token {id} scope: {e}")))?;
    Ok(crate::model::AccessToken {
        id,
        customer_id,
        kid,
        label,
        scope,
        created_by,
        created_at,
        expires_at,
        revoked_at,
        last_used_at,
        use_count,
    })
}

pub(crate) const INSERT_ACCESS_TOKEN: &str = "INSERT INTO access_tokens \
    (id, customer_id, kid, label, scope, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const INSERT_SIGNING_KEY: &str = "INSERT INTO signing_keys \
    (kid, secret_key, public_key, created_at, retired_at, verify_until) VALUES ($1, $2, $3, $4, NULL, NULL)";
/// Retire every active key at `$1`; it verifies until `$2`.
pub(crate) const RETIRE_SIGNING_KEYS: &str =
    "UPDATE signing_keys SET retired_at = $1, verify_until = $2 WHERE retired_at IS NULL";
/// Record uses: `$1` more uses of token `$3`, the last at `$2`.
pub(crate) const RECORD_TOKEN_USE: &str = "UPDATE access_tokens SET use_count = use_count + $1, \
    last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $2 THEN $2 ELSE last_used_at END WHERE id = $3";

pub(crate) const INSERT_EVENT: &str = "INSERT INTO fault_events (customer_id, fault_id, kind, actor, at, detail) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const INSERT_COMMENT: &str = "INSERT INTO comments (id, fault_id, customer_id, user_id, comment, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const RESOLVE_FAULT: &str = "UPDATE faults SET status = 'resolved', resolved_at = $3, ttl = $4, \
    open_key = NULL WHERE id = $1 AND customer_id = $2 AND status = 'unresolved'";
/// The newest unresolved fault of a (resource, type), with its `created_at`.
pub(crate) const OPEN_FAULT_OF: &str = "SELECT id, created_at FROM faults \
    WHERE customer_id = $1 AND resource_id = $2 AND type = $3 AND status = 'unresolved' \
    ORDER BY created_at DESC LIMIT 1";
pub(crate) type EventRow = (i64, String, String, String, i64, String);

pub(crate) fn fault_event(row: EventRow) -> crate::model::FaultEvent {
    let (seq, fault_id, kind, actor, at, detail) = row;
    crate::model::FaultEvent {
        seq,
        fault_id,
        kind,
        actor,
        at,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    }
}

/// Delete a batch of expired faults, returning what the log keeps of each ([`RemovedRow`]).
pub(crate) const SWEEP_EXPIRED: &str = "DELETE FROM faults WHERE id IN \
    (SELECT id FROM faults WHERE ttl < $1 ORDER BY ttl LIMIT $2) \
    RETURNING id, customer_id, resource_id, type, severity, resource_ancestry_path, created_at";
/// Delete one of a customer's faults, returning what the log keeps of it ([`RemovedRow`]).
pub(crate) const DELETE_FAULT: &str = "DELETE FROM faults WHERE id = $1 AND customer_id = $2 \
    RETURNING id, customer_id, resource_id, type, severity, resource_ancestry_path, created_at";
/// A deleted fault: id, customer, resource, type, severity, ancestry path, `created_at` (what
/// finds its `fault_ancestors` rows, [`crate::sql::delete_ancestors`]).
pub(crate) type RemovedRow = (String, String, String, String, String, String, i64);

/// The log detail of a deleted or expired fault: what tells which access-token scopes could
/// see it, once the fault itself is gone.
pub(crate) fn removed_detail(row: &RemovedRow) -> String {
    let (_, _, resource_id, fault_type, severity, path, _) = row;
    serde_json::json!({"resource_id": resource_id, "type": fault_type, "severity": severity,
        "resource_ancestry_path": path})
    .to_string()
}

/// The columns of a [`crate::LoggedEvent`], in order.
pub(crate) const LOG_COLUMNS: &str = "seq, customer_id, fault_id, kind, at, detail";
pub(crate) type LogRow = (i64, String, String, String, i64, String);

/// A customer's log entries in `($2, $3]`, at most `$4`.
pub(crate) fn customer_log_sql() -> String {
    format!(
        "SELECT {LOG_COLUMNS} FROM fault_events WHERE customer_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
    )
}

pub(crate) fn logged_event(row: LogRow) -> crate::model::LoggedEvent {
    let (seq, customer_id, fault_id, kind, at, detail) = row;
    crate::model::LoggedEvent { seq, customer_id, fault_id, kind, at, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_column_is_found_by_name_and_listed_in_its_place() {
        let listed = fault_column_list("f.");
        assert!(
            listed.starts_with("f.id, f.customer_id, ") && listed.ends_with(", f.site_id, f.ttl"),
            "{listed}"
        );
        let fault = faultline_core::fault::Fault {
            id: "flt_1".into(),
            customer_id: "cus_1".into(),
            resource_id: "tun_1".into(),
            microservice_id: "ms".into(),
            fault_type: "wantunnel".into(),
            status: faultline_core::fault::FaultStatus::Unresolved,
            severity: faultline_core::fault::Severity::High,
            message: "down".into(),
            cause: "".into(),
            created_at: 5,
            resolved_at: None,
            resource_ancestry_path: "site_1/tun_1".into(),
            site_id: Some("site_1".into()),
            site_name: None,
            ttl: 9,
            comments: Vec::new(),
        };
        let values: Vec<Param> = FAULT_COLUMNS.iter().map(|c| (c.value)(&fault)).collect();
        assert_eq!(values[4], Param::Text("wantunnel".into()));
        assert_eq!(values[10], Param::OptInt(None));
        assert_eq!(values[12], Param::OptText(Some("site_1".into())));
    }
}
