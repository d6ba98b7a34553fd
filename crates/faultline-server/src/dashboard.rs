//! The page a short link opens: the token's faults, rendered on the server. It carries no
//! script and no token, so nothing secret can leak from it.

use faultline_core::fault::{Fault, FaultStatus};
use faultline_core::time::{format_micros, now_micros};
use faultline_store::AccessToken;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fafafa}\
header,main{padding:1rem}header{background:#1f2937;color:#fff}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}\
.sev{font-weight:700}.CRITICAL{color:#b00020}.HIGH{color:#c2410c}.MEDIUM{color:#92400e}.WARNING{color:#854d0e}.LOW{color:#1e40af}";

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )
}

/// The shared dashboard for `token`, listing `faults` (open ones first).
pub fn page(token: &AccessToken, faults: &[Fault]) -> String {
    let now = now_micros();
    let mut open: Vec<&Fault> = faults.iter().filter(|f| f.status == FaultStatus::Unresolved).collect();
    let recent: Vec<&Fault> = faults.iter().filter(|f| f.status == FaultStatus::Resolved).collect();
    open.extend(recent);
    let rows: String = open
        .iter()
        .map(|f| {
            format!(
                "<tr><td class=\"sev {sev}\">{sev}</td><td>{status}</td><td>{t}</td><td>{site}</td><td>{res}</td>\
                 <td>{msg}</td><td>{cause}</td><td><time datetime=\"{start}\">{start}</time></td></tr>",
                sev = f.severity.as_str(),
                status = f.status.as_str(),
                t = escape(&f.fault_type),
                site = escape(f.site_id.as_deref().unwrap_or("-")),
                res = escape(&f.resource_id),
                msg = escape(&f.message),
                cause = escape(&f.cause),
                start = format_micros(f.created_at),
            )
        })
        .collect();
    let hours_left = ((token.expires_at - now) / 3_600_000_000).max(0);
    let title = if token.label.is_empty() { "Shared fault view".to_owned() } else { escape(&token.label) };
    let body = format!(
        "<header><h1>{title}</h1><p>Read-only view. This link expires in about {hours_left} hours \
         (at <time datetime=\"{exp}\">{exp}</time>).</p></header><main>\
         <h2>Open faults first, then the last 24 hours ({count})</h2>\
         <table><thead><tr><th scope=\"col\">Severity</th><th scope=\"col\">Status</th><th scope=\"col\">Type</th>\
         <th scope=\"col\">Site</th><th scope=\"col\">Resource</th><th scope=\"col\">Message</th><th scope=\"col\">Cause</th>\
         <th scope=\"col\">Started</th></tr></thead><tbody>{rows}</tbody></table></main>",
        exp = format_micros(token.expires_at),
        count = open.len(),
    );
    layout(&format!("{title} · faultline"), &body)
}

/// The one page for every link that does not open: unknown, expired or revoked alike.
pub fn gone_page() -> String {
    layout(
        "Link no longer available · faultline",
        "<main><h1>This link is no longer available</h1><p>The shared fault view has expired or was revoked. \
         Ask the person who shared it for a new link.</p></main>",
    )
}
