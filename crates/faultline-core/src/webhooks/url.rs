//! Webhook target URLs, parsed by hand.
//!
//! The parser is deliberately narrower than the WHATWG URL standard the HTTP client follows: a
//! URL is accepted only where the two cannot disagree about the host, since a check made on one
//! reading of a URL and a connection made on another is the classic way around an address
//! allow-list. So no backslashes (WHATWG reads them as `/`), no percent-escapes or non-ASCII in
//! the host (WHATWG decodes and IDNA-maps them), and no IPv4 shorthand such as `127.1`,
//! `2130706433` or `0x7f.1` (WHATWG reads each as 127.0.0.1).

use std::net::Ipv6Addr;

use crate::ValidationError;

/// Longest accepted URL, in bytes (all of them ASCII).
pub const MAX_URL_LEN: usize = 2048;

/// A validated webhook target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// `http` or `https`, lower-case.
    pub scheme: &'static str,
    /// A lower-case DNS name, a dotted-quad IPv4 address, or an IPv6 address in its canonical
    /// text without brackets, so it can be handed to a resolver or parsed as an `IpAddr`.
    pub host: String,
    /// The explicit port, else 80 for http and 443 for https.
    pub port: u16,
    /// The URL exactly as given, which is what the API echoes and the client requests.
    pub text: String,
}

/// Check a webhook target: an absolute `http` or `https` URL of at most [`MAX_URL_LEN`]
/// printable ASCII characters with a host, and neither credentials (they would be stored and
/// shown in clear; the signature authenticates us instead) nor a fragment (never sent).
pub fn validate_url(url: &str) -> Result<WebhookUrl, ValidationError> {
    let bad = |reason: &str| ValidationError::invalid("url", reason);
    if url.is_empty() {
        return Err(bad("must not be empty"));
    }
    if url.len() > MAX_URL_LEN {
        return Err(bad(&format!("must be at most {MAX_URL_LEN} characters")));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("must not contain spaces, control or non-ASCII characters \
             (percent-encode them, and write host names in punycode)"));
    }
    if url.contains('\\') {
        return Err(bad("must not contain a backslash"));
    }
    if url.contains('#') {
        return Err(bad("must not have a fragment ('#')"));
    }
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("must be an absolute http or https URL"))?;
    let (scheme, default_port) = if scheme.eq_ignore_ascii_case("https") {
        ("https", 443)
    } else if scheme.eq_ignore_ascii_case("http") {
        ("http", 80)
    } else {
        return Err(bad("must use the http or https scheme"));
    };
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(bad("must not contain a user name or password"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) =
            bracketed.split_once(']').ok_or_else(|| bad("has an unclosed '[' in its host"))?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| bad("must have an IPv6 address inside '[ ]'"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| bad("has text after its ']'"))?),
        };
        (ip.to_string(), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        (normalise_host(host).map_err(bad)?, port)
    };
    let port = match port {
        None => default_port,
        Some(text) => {
            let parsed = text.bytes().all(|b| b.is_ascii_digit()).then(|| text.parse::<u16>().ok()).flatten();
            parsed.filter(|p| *p != 0).ok_or_else(|| bad("must have a port from 1 to 65535"))?
        }
    };
    Ok(WebhookUrl { scheme, host, port, text: url.to_owned() })
}

/// A non-bracketed host, lower-cased: a dotted-quad IPv4 address or a DNS name.
fn normalise_host(host: &str) -> Result<String, &'static str> {
    if host.is_empty() {
        return Err("must have a host");
    }
    let host = host.to_ascii_lowercase();
    if ends_in_number(&host) {
        // WHATWG would read this as an IPv4 address; accept only the form everyone agrees on.
        return match host.parse::<std::net::Ipv4Addr>() {
            Ok(ip) if ip.to_string() == host => Ok(host),
            _ => Err("must write an IPv4 address as four decimal numbers from 0 to 255"),
        };
    }
    if is_dns_name(&host) { Ok(host) } else { Err("must have a valid host name") }
}

/// True when the last label is a number, decimal or `0x` hex: WHATWG then parses the host as
/// an IPv4 address, so it is never a name.
fn ends_in_number(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last.strip_prefix("0x").is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_hexdigit()));
    hex || (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
}

/// A lower-case DNS name (one trailing dot allowed): labels of 1 to 63 letters, digits, `-` or
/// `_`, not starting or ending with `-`, at most 253 characters, and not ending in a number.
/// Also used for host-name entries of the allow-list so both sides agree on what a name is.
pub(crate) fn is_dns_name(name: &str) -> bool {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    (1..=253).contains(&trimmed.len()) && trimmed.split('.').all(label_ok) && !ends_in_number(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_ipv4_and_bracketed_ipv6_with_default_ports() {
        let url = validate_url("https://Hooks.Example.COM/in?x=1").unwrap();
        assert_eq!((url.scheme, url.host.as_str(), url.port), ("https", "hooks.example.com", 443));
        assert_eq!(url.text, "https://Hooks.Example.COM/in?x=1");
        let url = validate_url("HTTP://192.0.2.10:8080").unwrap();
        assert_eq!((url.scheme, url.host.as_str(), url.port), ("http", "192.0.2.10", 8080));
        let url = validate_url("https://[2001:DB8:0::1]:8443/x").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("2001:db8::1", 8443));
        assert_eq!(validate_url("http://[::ffff:7f00:1]").unwrap().host, "::ffff:127.0.0.1");
        for ok in ["http://svc_a.internal?q", "https://example.com.:1/", "https://xn--bcher-kva.de/@x"] {
            assert!(validate_url(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_the_client_could_read_differently_or_should_not_send() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        for bad in [
            "",
            "example.com/hook",
            "ftp://example.com/",
            "https:example.com",
            "https://",
            "https:///example.com",
            "https://user:pw@example.com/",
            "https://token@example.com/",
            "https://example.com/#frag",
            "https://exa mple.com/",
            " https://example.com/",
            "https://example.com/\n",
            "https://bücher.de/",
            "https://example.com\\@evil.com/",
            "https://ex%61mple.com/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://0177.0.0.1/",
            "http://127.0.0.1./",
            "https://[::1/",
            "https://[example.com]/",
            "https://[::1]x/",
            "https://[fe80::1%25eth0]/",
            "https://example.com:/",
            "https://example.com:0/",
            "https://example.com:65536/",
            "https://example.com:+80/",
            "https://-bad.example.com/",
            "https://a..b/",
            long.as_str(),
        ] {
            let err = validate_url(bad).unwrap_err();
            assert_eq!(err.param(), "url", "{bad}");
        }
    }

    #[test]
    fn dns_names() {
        for ok in ["localhost", "a.b-c.example", "x_y.internal", "example.com.", "1a.example"] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in ["", ".", "Example.com", "a..b", "-a.com", "a-.com", "1.2.3.4", "a.0x1f", "*.x"] {
            assert!(!is_dns_name(bad), "{bad}");
        }
        assert!(!is_dns_name(&format!("{}.com", "a".repeat(64))));
    }
}
