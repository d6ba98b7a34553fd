//! Which hosts webhooks may be delivered to (`webhook_allowed_hosts`), as Gitea's
//! `ALLOWED_HOST_LIST`: without it anyone allowed to create a webhook could make the server
//! call its own admin ports, the cloud metadata service (169.254.169.254) or the private
//! network behind it (server-side request forgery).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::url::is_dns_name;

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// Publicly routable unicast addresses.
    External,
    /// 127.0.0.0/8 and ::1.
    Loopback,
    /// RFC 1918, shared address space (CGNAT, 100.64.0.0/10) and unique local (fc00::/7).
    Private,
    /// Every address (`*`).
    Any,
    /// A CIDR block, its network address masked and IPv4-mapped IPv6 blocks stored as IPv4.
    Block(IpAddr, u8),
    /// An exact lower-case host name, without a trailing dot.
    Name(String),
    /// `*.example.com`, stored as `.example.com`: any name below it, at any depth.
    Below(String),
}

/// The parsed `webhook_allowed_hosts`.
///
/// A URL may be delivered to when its host name matches a name entry (`hooks.example.com`,
/// `*.example.com`, or `*`), whatever it resolves to, since the operator named it; otherwise
/// only when every address it resolves to passes [`allows_ip`](Self::allows_ip), since any one
/// of them may be the one connected to. [`allows_target`](Self::allows_target) is that rule;
/// the resolution, and the check at connect time that prevents DNS rebinding, are the
/// server's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<Entry>,
}

impl AllowedHosts {
    /// A comma-separated list of `external`, `loopback`, `private`, `*`, CIDR blocks
    /// (`10.1.0.0/16`, `2001:db8::/32`), IP addresses (a block of one), host names and
    /// `*.domain` globs, case-insensitive. Blank entries are skipped, but the list may not be
    /// empty: allowing nothing would silently break every webhook.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let entry = parse_entry(part).ok_or_else(|| {
                format!(
                    "'{part}' in the allowed hosts is not external, loopback, private, *, \
                     an IP address, a CIDR block, a host name or *.domain"
                )
            })?;
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        if entries.is_empty() {
            return Err("the allowed hosts list is empty; the default is 'external'".to_owned());
        }
        Ok(AllowedHosts { entries })
    }

    /// Does an address entry (a category or a block) allow connecting to `ip`? An
    /// IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is judged as the IPv4 address it reaches.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.entries.iter().any(|entry| match entry {
            Entry::External => is_external(ip),
            Entry::Loopback => ip.is_loopback(),
            Entry::Private => is_private(ip),
            Entry::Any => true,
            Entry::Block(network, prefix) => in_block(ip, *network, *prefix),
            Entry::Name(_) | Entry::Below(_) => false,
        })
    }

    /// Does a name entry (or `*`) allow `host`, whatever it resolves to? Case-insensitive, and
    /// a trailing dot is ignored.
    pub fn allows_host_name(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host);
        self.entries.iter().any(|entry| match entry {
            Entry::Any => true,
            Entry::Name(name) => name == host,
            Entry::Below(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
            _ => false,
        })
    }

    /// The rule in full for a URL's `host` that resolved to `addresses`: a name entry matches,
    /// or there are addresses and every one is allowed.
    pub fn allows_target(&self, host: &str, addresses: &[IpAddr]) -> bool {
        self.allows_host_name(host)
            || (!addresses.is_empty() && addresses.iter().all(|ip| self.allows_ip(*ip)))
    }
}

fn parse_entry(text: &str) -> Option<Entry> {
    let text = text.to_ascii_lowercase();
    let parse_ip = |ip: &str| {
        let ip = ip.strip_prefix('[').and_then(|ip| ip.strip_suffix(']')).unwrap_or(ip);
        ip.parse::<IpAddr>().ok()
    };
    Some(match text.as_str() {
        "external" => Entry::External,
        "loopback" => Entry::Loopback,
        "private" => Entry::Private,
        "*" => Entry::Any,
        _ => {
            if let Some((ip, prefix)) = text.split_once('/') {
                let ip = parse_ip(ip)?;
                let prefix =
                    prefix.bytes().all(|b| b.is_ascii_digit()).then(|| prefix.parse::<u8>().ok())??;
                (prefix <= full_prefix(ip)).then(|| block(ip, prefix))?
            } else if let Some(ip) = parse_ip(&text) {
                block(ip, full_prefix(ip))
            } else if let Some(domain) = text.strip_prefix("*.") {
                is_dns_name(domain).then(|| Entry::Below(format!(".{}", domain.trim_end_matches('.'))))?
            } else {
                is_dns_name(&text).then(|| Entry::Name(text.trim_end_matches('.').to_owned()))?
            }
        }
    })
}

fn full_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// A block with its host bits cleared; an IPv4-mapped IPv6 block becomes the IPv4 block it
/// covers, since addresses are compared in canonical form.
fn block(ip: IpAddr, prefix: u8) -> Entry {
    if let IpAddr::V6(v6) = ip
        && prefix >= 96
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        return block(IpAddr::V4(v4), prefix - 96);
    }
    match ip {
        IpAddr::V4(v4) => Entry::Block(IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(prefix))), prefix),
        IpAddr::V6(v6) => Entry::Block(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(prefix))), prefix),
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

fn in_block(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            u32::from(ip) & mask32(prefix) == u32::from(net) & mask32(prefix)
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            u128::from(ip) & mask128(prefix) == u128::from(net) & mask128(prefix)
        }
        _ => false,
    }
}

fn in_v4(ip: Ipv4Addr, blocks: &[([u8; 4], u8)]) -> bool {
    blocks.iter().any(|(net, prefix)| in_block(IpAddr::V4(ip), IpAddr::V4(Ipv4Addr::from(*net)), *prefix))
}

/// IPv4 ranges that are not public unicast (IANA special-purpose registry): this network, RFC
/// 1918, shared (CGNAT), loopback, link-local (cloud metadata), IETF protocol assignments, the
/// three documentation nets, the 6to4 relay, benchmarking, multicast, and reserved with the
/// broadcast address.
const NOT_EXTERNAL_V4: [([u8; 4], u8); 15] = [
    ([0, 0, 0, 0], 8),
    ([10, 0, 0, 0], 8),
    ([100, 64, 0, 0], 10),
    ([127, 0, 0, 0], 8),
    ([169, 254, 0, 0], 16),
    ([172, 16, 0, 0], 12),
    ([192, 0, 0, 0], 24),
    ([192, 0, 2, 0], 24),
    ([192, 88, 99, 0], 24),
    ([192, 168, 0, 0], 16),
    ([198, 18, 0, 0], 15),
    ([198, 51, 100, 0], 24),
    ([203, 0, 113, 0], 24),
    ([224, 0, 0, 0], 4),
    ([240, 0, 0, 0], 4),
];

const PRIVATE_V4: [([u8; 4], u8); 4] =
    [([10, 0, 0, 0], 8), ([172, 16, 0, 0], 12), ([192, 168, 0, 0], 16), ([100, 64, 0, 0], 10)];

/// Within global unicast (2000::/3), the IETF protocol assignments (2001::/23, with Teredo and
/// benchmarking) and the documentation prefixes (2001:db8::/32, 3fff::/20).
const NOT_EXTERNAL_V6: [(Ipv6Addr, u8); 3] = [
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
];

/// `ip` in canonical form (IPv4-mapped already turned into IPv4).
fn is_external(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !in_v4(v4, &NOT_EXTERNAL_V4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            // NAT64 and 6to4 reach the IPv4 address inside, so that is what is judged.
            Some(v4) => !in_v4(v4, &NOT_EXTERNAL_V4),
            None => {
                let global = in_block(ip, IpAddr::V6(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0)), 3);
                global && !NOT_EXTERNAL_V6.iter().any(|(net, prefix)| in_block(ip, IpAddr::V6(*net), *prefix))
            }
        },
    }
}

/// The IPv4 address a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address translates to.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        Some(Ipv4Addr::from(bits as u32))
    } else if bits >> 112 == 0x2002 {
        Some(Ipv4Addr::from((bits >> 80) as u32))
    } else {
        None
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => in_v4(v4, &PRIVATE_V4),
        IpAddr::V6(v6) => v6.segments()[0] & 0xfe00 == 0xfc00,
    }
}

/// `external`: public addresses only, until the operator opens more.
impl Default for AllowedHosts {
    fn default() -> Self {
        AllowedHosts { entries: vec![Entry::External] }
    }
}

impl FromStr for AllowedHosts {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        AllowedHosts::parse(text)
    }
}

/// The normalised list, which [`parse`](AllowedHosts::parse) reads back to the same value.
impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match entry {
                Entry::External => f.write_str("external")?,
                Entry::Loopback => f.write_str("loopback")?,
                Entry::Private => f.write_str("private")?,
                Entry::Any => f.write_str("*")?,
                Entry::Block(ip, prefix) => write!(f, "{ip}/{prefix}")?,
                Entry::Name(name) => f.write_str(name)?,
                Entry::Below(suffix) => write!(f, "*{suffix}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(list: &str, allowed: &[&str], refused: &[&str]) {
        let hosts = AllowedHosts::parse(list).unwrap();
        for ip in allowed {
            assert!(hosts.allows_ip(ip.parse().unwrap()), "{list} should allow {ip}");
        }
        for ip in refused {
            assert!(!hosts.allows_ip(ip.parse().unwrap()), "{list} should refuse {ip}");
        }
    }

    #[test]
    fn external_is_the_default_and_allows_only_public_unicast() {
        assert_eq!(AllowedHosts::default(), AllowedHosts::parse("external").unwrap());
        let public = ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "198.20.0.1", "223.255.255.255"];
        let public_v6 = ["2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"];
        let refused = [
            "127.0.0.1",
            "127.8.9.10",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "240.0.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "198.18.0.1",
            "198.19.255.255",
            "192.88.99.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "2001::1",
            "2001:2::1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:a00:1::",
            "64:ff9b:1::808:808",
            "100::1",
        ];
        let all_allowed: Vec<&str> = public.iter().chain(&public_v6).copied().collect();
        check("external", &all_allowed, &refused);
        let default = AllowedHosts::default();
        assert!(!default.allows_host_name("example.com"));
        assert!(!default.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(default.allows_ip("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn loopback_and_private_categories() {
        check(
            "loopback",
            &["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1"],
            &["8.8.8.8", "10.0.0.1", "169.254.169.254", "::2"],
        );
        check(
            "private",
            &["10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "fd00::1", "fc00::1"],
            &["169.254.169.254", "fe80::1", "127.0.0.1", "8.8.8.8", "172.32.0.1", "::1", "fe00::1"],
        );
        check("LOOPBACK , Private", &["127.0.0.1", "10.0.0.1"], &["8.8.8.8", "169.254.169.254"]);
    }

    #[test]
    fn star_allows_everything() {
        check("*", &["169.254.169.254", "127.0.0.1", "::", "8.8.8.8"], &[]);
        assert!(AllowedHosts::parse("*").unwrap().allows_host_name("metadata.google.internal"));
    }

    #[test]
    fn cidr_blocks_and_single_addresses() {
        check("10.1.0.0/16", &["10.1.0.0", "10.1.255.255", "::ffff:10.1.2.3"], &["10.2.0.1", "10.0.255.255"]);
        check("2001:db8::/32", &["2001:db8::1", "2001:db8:ffff::"], &["2001:db9::1", "10.0.0.1"]);
        check("10.0.0.5", &["10.0.0.5"], &["10.0.0.4", "10.0.0.6"]);
        check("[::1]", &["::1"], &["::2"]);
        check("::ffff:10.0.0.0/104", &["10.1.2.3", "::ffff:10.9.9.9"], &["11.0.0.1"]);
        check("0.0.0.0/0", &["127.0.0.1", "8.8.8.8"], &["::1"]);
        check("10.1.2.3/16", &["10.1.9.9"], &["10.2.2.3"]);
    }

    #[test]
    fn host_names_exact_and_globbed() {
        let hosts = AllowedHosts::parse("Hooks.Example.com, *.Internal.Example.").unwrap();
        for ok in ["hooks.example.com", "HOOKS.example.COM", "hooks.example.com.", "a.internal.example"] {
            assert!(hosts.allows_host_name(ok), "{ok}");
        }
        for no in ["example.com", "x.hooks.example.com", "internal.example", "badinternal.example", "hooks"] {
            assert!(!hosts.allows_host_name(no), "{no}");
        }
        assert!(hosts.allows_host_name("a.b.internal.example"));
        assert!(!hosts.allows_ip("8.8.8.8".parse().unwrap()), "name entries allow no addresses");
    }

    #[test]
    fn a_target_passes_by_name_or_by_every_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let default = AllowedHosts::default();
        assert!(default.allows_target("example.com", &[ip("8.8.8.8"), ip("2606:4700::1")]));
        assert!(!default.allows_target("localhost", &[ip("127.0.0.1")]));
        assert!(!default.allows_target("mixed.example", &[ip("8.8.8.8"), ip("10.0.0.1")]));
        assert!(!default.allows_target("example.com", &[]));
        let named = AllowedHosts::parse("external,hooks.corp").unwrap();
        assert!(named.allows_target("hooks.corp", &[ip("10.0.0.1")]));
        assert!(!named.allows_target("other.corp", &[ip("10.0.0.1")]));
    }

    #[test]
    fn parse_refuses_junk_and_display_normalises() {
        for bad in
            ["", " , ", "10.0.0.0/33", "::/129", "10.0.0.0/x", "10.0.0.0/+8", "*.", "a.*.com", "*x.com"]
        {
            assert!(AllowedHosts::parse(bad).is_err(), "{bad}");
        }
        for bad in ["exa mple.com", "http://x.com", "127.1", "10.0.0.1/", "external,b@d", "ho$t"] {
            assert!(AllowedHosts::parse(bad).is_err(), "{bad}");
        }
        let hosts =
            AllowedHosts::parse(" External , LOOPBACK,10.1.2.3/16,, *.Example.com., ::1, external").unwrap();
        let text = hosts.to_string();
        assert_eq!(text, "external,loopback,10.1.0.0/16,*.example.com,::1/128");
        assert_eq!(AllowedHosts::parse(&text).unwrap(), hosts);
        assert_eq!(AllowedHosts::default().to_string(), "external");
    }
}
