//! Settings: built-in defaults, then an optional TOML file, then `FAULTLINE_*` environment
//! variables and flags (clap reads both, flags first). Validated once, with messages that
//! say what to change.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use faultline_core::duration::parse_duration;

/// The commented defaults printed by `faultline config default`.
pub const DEFAULT_CONFIG: &str = include_str!("default-config.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: String,
    pub database_url: String,
    pub public_url: String,
    pub short_link_base: String,
    pub rate_limit: u32,
    pub token_rate_limit: u32,
    pub body_limit: usize,
    pub request_timeout: String,
    pub shutdown_grace: String,
    pub retention: String,
    pub heartbeat_interval: String,
    pub heartbeat_misses: u32,
    pub log_format: String,
    pub frame_ancestors: String,
    pub alertmanager_resource_labels: String,
    pub alertmanager_site_labels: String,
    pub alertmanager_severity_labels: String,
    pub header_timeout: String,
    pub idle_timeout: String,
    pub body_min_rate: u64,
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
    pub webhook_timeout: String,
    pub webhook_retry_schedule: String,
    pub webhook_allowed_hosts: String,
}

/// Settings given on the command line or in the environment; `None` leaves the file's value.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct Overrides {
    /// Address and port to listen on.
    #[arg(long, env = "FAULTLINE_LISTEN", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(long, env = "FAULTLINE_DATABASE_URL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Externally visible base URL (default http://<listen address>).
    #[arg(long, env = "FAULTLINE_PUBLIC_URL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Base URL of short links (default <public url>/s).
    #[arg(long, env = "FAULTLINE_SHORT_LINK_BASE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_link_base: Option<String>,
    /// Requests per minute per credential without its own limit.
    #[arg(long, env = "FAULTLINE_RATE_LIMIT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Requests per minute per access token.
    #[arg(long, env = "FAULTLINE_TOKEN_RATE_LIMIT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_rate_limit: Option<u32>,
    /// Largest request body in bytes.
    #[arg(long, env = "FAULTLINE_BODY_LIMIT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<usize>,
    /// Requests running longer answer 503 (e.g. 30s).
    #[arg(long, env = "FAULTLINE_REQUEST_TIMEOUT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
    /// How long shutdown waits for in-flight requests (e.g. 10s).
    #[arg(long, env = "FAULTLINE_SHUTDOWN_GRACE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<String>,
    /// How long faults are kept after they began or were resolved (e.g. 400d).
    #[arg(long, env = "FAULTLINE_RETENTION", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// How often sites send heartbeats (e.g. 30s).
    #[arg(long, env = "FAULTLINE_HEARTBEAT_INTERVAL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<String>,
    /// Heartbeats a site may miss in a row before it is offline.
    #[arg(long, env = "FAULTLINE_HEARTBEAT_MISSES", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_misses: Option<u32>,
    /// text or json.
    #[arg(long, env = "FAULTLINE_LOG_FORMAT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// Origins that may show the shared dashboard in an iframe, e.g. "https://noc.example.com 'self'".
    #[arg(long, env = "FAULTLINE_FRAME_ANCESTORS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_ancestors: Option<String>,
    /// Alert labels naming a fault's resource, first present wins (e.g. "resource_id,instance").
    #[arg(long, env = "FAULTLINE_ALERTMANAGER_RESOURCE_LABELS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertmanager_resource_labels: Option<String>,
    /// Alert labels naming a fault's site, first present wins (e.g. "site_id,site").
    #[arg(long, env = "FAULTLINE_ALERTMANAGER_SITE_LABELS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertmanager_site_labels: Option<String>,
    /// Alert labels naming a fault's severity, first present wins (e.g. "severity").
    #[arg(long, env = "FAULTLINE_ALERTMANAGER_SEVERITY_LABELS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertmanager_severity_labels: Option<String>,
    /// A request head must be complete this long after its first byte (e.g. 10s).
    #[arg(long, env = "FAULTLINE_HEADER_TIMEOUT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<String>,
    /// An idle keep-alive connection is closed after this long (e.g. 60s).
    #[arg(long, env = "FAULTLINE_IDLE_TIMEOUT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// Bytes a second a request body must keep arriving at (0: no floor).
    #[arg(long, env = "FAULTLINE_BODY_MIN_RATE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_min_rate: Option<u64>,
    /// Connections open at once; more wait to be accepted.
    #[arg(long, env = "FAULTLINE_MAX_CONNECTIONS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Requests handled at once; more answer 503 overloaded (0: 32 per core).
    #[arg(long, env = "FAULTLINE_MAX_CONCURRENT_REQUESTS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<usize>,
    /// A webhook attempt that takes longer fails (e.g. 15s).
    #[arg(long, env = "FAULTLINE_WEBHOOK_TIMEOUT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_timeout: Option<String>,
    /// Delays before each attempt of a webhook message (e.g. "0s,5s,5m,30m,2h,5h,10h,10h").
    #[arg(long, env = "FAULTLINE_WEBHOOK_RETRY_SCHEDULE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_retry_schedule: Option<String>,
    /// Where webhooks may go: external, loopback, private, *, CIDR blocks, host names.
    #[arg(long, env = "FAULTLINE_WEBHOOK_ALLOWED_HOSTS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_allowed_hosts: Option<String>,
}

/// Settings checked and converted to the types the program uses.
#[derive(Debug, Clone)]
pub struct Validated {
    pub listen: SocketAddr,
    pub database_url: String,
    pub public_url: Option<String>,
    pub short_link_base: Option<String>,
    pub rate_limit: u32,
    pub token_rate_limit: u32,
    pub body_limit: usize,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    pub retention: Duration,
    pub heartbeat_interval: Duration,
    pub heartbeat_misses: u32,
    pub json_logs: bool,
    pub frame_ancestors: Vec<String>,
    pub alertmanager_labels: faultline_core::alertmanager::LabelNames,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_min_rate: u64,
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
    pub webhook_timeout: Duration,
    pub webhook_retry_schedule: faultline_core::webhooks::RetrySchedule,
    pub webhook_allowed_hosts: faultline_core::webhooks::AllowedHosts,
}

/// How a setting is named in messages: by its flag and its environment variable
/// (`--header-timeout (FAULTLINE_HEADER_TIMEOUT)`); its key in the config file is the flag's
/// name with underscores.
pub fn setting(name: &str) -> String {
    format!("--{} (FAULTLINE_{})", name.replace('_', "-"), name.to_ascii_uppercase())
}

/// Load settings from the defaults, `file` (if given) and `overrides`, and validate them.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Validated, String> {
    let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(format!("config file {} does not exist", path.display()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let settings: Settings = figment
        .merge(Serialized::defaults(overrides))
        .extract()
        .map_err(|e| format!("invalid configuration: {e}"))?;
    validate(settings)
}

fn validate(s: Settings) -> Result<Validated, String> {
    let listen = s.listen.parse().map_err(|_| {
        format!("{}: '{}' is not an address and port such as 127.0.0.1:8080", setting("listen"), s.listen)
    })?;
    faultline_store::Backend::from_url(&s.database_url)
        .map_err(|e| format!("{}: {e}", setting("database_url")))?;
    let url_setting = |name: &str, value: String| -> Result<Option<String>, String> {
        let value = value.trim().trim_end_matches('/').to_owned();
        if value.is_empty() {
            Ok(None)
        } else if value.starts_with("http://") || value.starts_with("https://") {
            Ok(Some(value))
        } else {
            Err(format!("{name} = '{value}' must start with http:// or https://"))
        }
    };
    if s.rate_limit == 0 || s.token_rate_limit == 0 {
        return Err("rate_limit and token_rate_limit must be at least 1 request per minute".into());
    }
    if s.body_limit < 1024 {
        return Err(format!("body_limit = {} is too small; use at least 1024 bytes", s.body_limit));
    }
    let duration =
        |name: &str, text: &str| parse_duration(text).map_err(|e| format!("{}: {e}", setting(name)));
    let positive = |name: &str, d: Duration| {
        if d.is_zero() { Err(format!("{} must be longer than 0s", setting(name))) } else { Ok(d) }
    };
    if !(1..=1_000_000).contains(&s.max_connections) {
        return Err(format!(
            "{}: {} is not from 1 to 1000000",
            setting("max_connections"),
            s.max_connections
        ));
    }
    if s.max_concurrent_requests > 1_000_000 {
        return Err(format!(
            "{}: {} is not from 0 (32 per core) to 1000000",
            setting("max_concurrent_requests"),
            s.max_concurrent_requests
        ));
    }
    let json_logs = match s.log_format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            return Err(format!("log_format = '{other}' must be \"text\" or \"json\""));
        }
    };
    Ok(Validated {
        listen,
        database_url: s.database_url,
        public_url: url_setting("public_url", s.public_url)?,
        short_link_base: url_setting("short_link_base", s.short_link_base)?,
        rate_limit: s.rate_limit,
        token_rate_limit: s.token_rate_limit,
        body_limit: s.body_limit,
        request_timeout: duration("request_timeout", &s.request_timeout)?,
        shutdown_grace: duration("shutdown_grace", &s.shutdown_grace)?,
        retention: match duration("retention", &s.retention)? {
            d if d < Duration::from_secs(86_400) => return Err("retention must be at least 1d".into()),
            d => d,
        },
        heartbeat_interval: match duration("heartbeat_interval", &s.heartbeat_interval)? {
            d if d < Duration::from_millis(100) => {
                return Err("heartbeat_interval must be at least 100ms".into());
            }
            d if d > Duration::from_secs(86_400) => {
                return Err("heartbeat_interval must be at most 1d".into());
            }
            d => d,
        },
        heartbeat_misses: match s.heartbeat_misses {
            n @ 1..=1_000 => n,
            n => return Err(format!("heartbeat_misses = {n} must be from 1 to 1000")),
        },
        json_logs,
        frame_ancestors: faultline_server::dashboard::parse_frame_ancestors(&s.frame_ancestors)?,
        alertmanager_labels: {
            use faultline_core::alertmanager::LabelNames;
            let list = |name: &str, value: &str| {
                let names = LabelNames::list(value);
                if names.is_empty() { Err(format!("{name} must name at least one label")) } else { Ok(names) }
            };
            LabelNames {
                resource: list("alertmanager_resource_labels", &s.alertmanager_resource_labels)?,
                site: list("alertmanager_site_labels", &s.alertmanager_site_labels)?,
                severity: list("alertmanager_severity_labels", &s.alertmanager_severity_labels)?,
            }
        },
        header_timeout: positive("header_timeout", duration("header_timeout", &s.header_timeout)?)?,
        idle_timeout: positive("idle_timeout", duration("idle_timeout", &s.idle_timeout)?)?,
        body_min_rate: s.body_min_rate,
        max_connections: s.max_connections,
        max_concurrent_requests: match s.max_concurrent_requests {
            0 => faultline_server::load_shedding::default_max_concurrent_requests(),
            n => n,
        },
        webhook_timeout: match positive("webhook_timeout", duration("webhook_timeout", &s.webhook_timeout)?)?
        {
            d if d > Duration::from_secs(300) => {
                return Err(format!("{} must be at most 5m", setting("webhook_timeout")));
            }
            d => d,
        },
        webhook_retry_schedule: s
            .webhook_retry_schedule
            .parse()
            .map_err(|e| format!("{}: {e}", setting("webhook_retry_schedule")))?,
        webhook_allowed_hosts: s
            .webhook_allowed_hosts
            .parse()
            .map_err(|e| format!("{}: {e}", setting("webhook_allowed_hosts")))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let v = load(None, &Overrides::default()).unwrap();
        assert_eq!(v.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(v.database_url, "sqlite://faultline.db");
        assert_eq!(v.rate_limit, 60);
        assert_eq!(v.body_limit, 1024 * 1024);
        assert_eq!(v.request_timeout, Duration::from_secs(30));
        assert_eq!(v.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(v.heartbeat_misses, 10);
        assert!(v.frame_ancestors.is_empty(), "no site may frame the dashboard unless allowed");
        assert_eq!(v.alertmanager_labels, faultline_core::alertmanager::LabelNames::default());
        assert_eq!(v.header_timeout, Duration::from_secs(10));
        assert_eq!(v.idle_timeout, Duration::from_secs(60));
        assert_eq!(v.body_min_rate, 1024);
        assert_eq!(v.max_connections, 4096);
        assert_eq!(
            v.max_concurrent_requests,
            faultline_server::load_shedding::default_max_concurrent_requests()
        );
    }

    #[test]
    fn overrides_win_over_the_file() {
        let dir =
            std::env::temp_dir().join(format!("faultline-config-{}", faultline_core::ids::random_base62(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("faultline.toml");
        std::fs::write(&file, "rate_limit = 120\nlisten = \"0.0.0.0:9000\"\n").unwrap();
        let overrides = Overrides { rate_limit: Some(5), ..Overrides::default() };
        let v = load(Some(&file), &overrides).unwrap();
        assert_eq!(v.rate_limit, 5);
        assert_eq!(v.listen.to_string(), "0.0.0.0:9000");
    }

    #[test]
    fn alertmanager_label_names_are_lists() {
        let overrides = Overrides {
            alertmanager_resource_labels: Some(" device, instance ,".into()),
            alertmanager_site_labels: Some("pop".into()),
            ..Overrides::default()
        };
        let v = load(None, &overrides).unwrap();
        assert_eq!(v.alertmanager_labels.resource, ["device", "instance"]);
        assert_eq!(v.alertmanager_labels.site, ["pop"]);
        assert_eq!(v.alertmanager_labels.severity, ["severity"]);
        let none = Overrides { alertmanager_severity_labels: Some(" , ".into()), ..Overrides::default() };
        assert!(load(None, &none).unwrap_err().contains("alertmanager_severity_labels"));
    }

    #[test]
    fn mistakes_are_explained() {
        let bad = |o: Overrides| load(None, &o).unwrap_err();
        assert!(bad(Overrides { listen: Some("localhost".into()), ..Default::default() }).contains("listen"));
        assert!(
            bad(Overrides { database_url: Some("mysql://x".into()), ..Default::default() })
                .contains("sqlite://")
        );
        assert!(
            bad(Overrides { heartbeat_interval: Some("10ms".into()), ..Default::default() })
                .contains("heartbeat_interval")
        );
        assert!(
            bad(Overrides { heartbeat_misses: Some(0), ..Default::default() }).contains("heartbeat_misses")
        );
        assert!(
            bad(Overrides { public_url: Some("faults.example.com".into()), ..Default::default() })
                .contains("http")
        );
        assert!(
            bad(Overrides { request_timeout: Some("soon".into()), ..Default::default() })
                .contains("--request-timeout (FAULTLINE_REQUEST_TIMEOUT)")
        );
        assert!(bad(Overrides { rate_limit: Some(0), ..Default::default() }).contains("rate_limit"));
        assert!(
            bad(Overrides { header_timeout: Some("banana".into()), ..Default::default() })
                .contains("--header-timeout (FAULTLINE_HEADER_TIMEOUT): 'banana'")
        );
        assert!(
            bad(Overrides { idle_timeout: Some("0s".into()), ..Default::default() })
                .contains("--idle-timeout")
        );
        assert!(
            bad(Overrides { max_connections: Some(0), ..Default::default() }).contains("--max-connections")
        );
        assert!(
            bad(Overrides { max_connections: Some(usize::MAX), ..Default::default() })
                .contains("--max-connections")
        );
        assert!(
            bad(Overrides { max_concurrent_requests: Some(2_000_000), ..Default::default() })
                .contains("--max-concurrent-requests")
        );
        assert!(
            bad(Overrides { frame_ancestors: Some("noc.example.com".into()), ..Default::default() })
                .contains("frame_ancestors: 'noc.example.com'")
        );
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir =
            std::env::temp_dir().join(format!("faultline-config-{}", faultline_core::ids::random_base62(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("faultline.toml");
        std::fs::write(&file, "rate_limt = 120\n").unwrap();
        assert!(load(Some(&file), &Overrides::default()).unwrap_err().contains("rate_limt"));
    }
}
