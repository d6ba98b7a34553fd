//! A realistic, reproducible fault history of a managed fleet, for `faultline demo`,
//! `faultline serve --demo` and the benchmarks.
//!
//! The same [`DemoConfig`] always yields the same faults, ids included: the generator draws
//! everything from its own seeded PRNG and never touches the clock or the OS random source.
//! Faults come out oldest first, one at a time, so a history of any length needs only the
//! memory of the fleet it happens on.
//!
//! What makes it look like a real NOC's record:
//! - each customer owns sites; each site has 1-3 routers and 1-4 WAN tunnels to hubs, and
//!   faults name them in the ancestry path (`site_…|dev_…|tun_…`);
//! - most faults are WAN degradations and tunnel flaps, few are whole-site outages;
//! - a few bad sites and flaky circuits produce most of the faults (Zipf-like weights);
//! - more faults in business hours and on weekdays, more as the fleet grows, busy and quiet
//!   days;
//! - outage durations are log-normal (minutes to hours, now and then a day or more), and the
//!   outages still running at `now` are open (`unresolved`), at most one per resource and type.

use std::collections::HashSet;

use crate::fault::{Fault, FaultStatus, Severity, derive_site_id, expiry};
use crate::ids::ksuid_from_parts;
use crate::time::Micros;

/// How far back the history reaches (when the retention period allows it).
pub const HISTORY_SECONDS: i64 = 365 * 86_400;

const SECOND: Micros = 1_000_000;
const HOUR: Micros = 3_600 * SECOND;
const DAY: Micros = 24 * HOUR;

/// What to generate. `customer_ids` holds one id per customer (the caller creates them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoConfig {
    pub faults: u64,
    pub sites: u32,
    pub customers: u32,
    pub seed: u64,
    /// The end of the history: no fault starts or ends after it.
    pub now: Micros,
    /// Every fault's `ttl` is computed with it, and no fault is older than it.
    pub retention_seconds: i64,
    pub customer_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemoConfigError {
    #[error("at least one customer is needed")]
    NoCustomers,
    #[error("{customers} customers were asked for but {ids} customer ids were given")]
    CustomerIdsMismatch { customers: u32, ids: usize },
    #[error("each customer needs a site: {sites} sites for {customers} customers")]
    TooFewSites { sites: u32, customers: u32 },
    #[error("the retention period must be at least one hour, not {0} seconds")]
    RetentionTooShort(i64),
}

/// How big the generated fleet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetSize {
    pub sites: usize,
    pub devices: usize,
    pub tunnels: usize,
}

/// A realistic company name for the `index`-th demo customer.
pub fn customer_name(index: usize) -> String {
    const NAMES: [&str; 12] = [
        "Acme Networks",
        "Globex Retail",
        "Initech Logistics",
        "Umbrella Clinics",
        "Stark Manufacturing",
        "Wayne Hospitality",
        "Hooli Campus",
        "Soylent Foods",
        "Tyrell Mining",
        "Cyberdyne Labs",
        "Wonka Confectionery",
        "Vandelay Imports",
    ];
    let name = NAMES[index % NAMES.len()];
    match index / NAMES.len() {
        0 => name.to_owned(),
        round => format!("{name} {}", round + 1),
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness: xoshiro256** seeded through SplitMix64, both as published by Blackman and Vigna.

#[derive(Debug, Clone)]
struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// An independent stream per (seed, purpose), so that the fleet does not change with the
    /// number of faults drawn from it.
    fn new(seed: u64, stream: u64) -> Rng {
        let mut state = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let s =
            [splitmix64(&mut state), splitmix64(&mut state), splitmix64(&mut state), splitmix64(&mut state)];
        Rng { s }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1], safe to take the logarithm of.
    fn unit_open(&mut self) -> f64 {
        1.0 - self.unit()
    }

    /// Uniform in 0..n (n > 0); the multiply-shift bias is far below anything visible here.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    fn between(&mut self, low: u64, high_inclusive: u64) -> u64 {
        low + self.below((high_inclusive - low + 1) as usize) as u64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Standard normal (Box-Muller; one of the pair is thrown away, which is cheap enough).
    fn normal(&mut self) -> f64 {
        let r = (-2.0 * self.unit_open().ln()).sqrt();
        r * (std::f64::consts::TAU * self.unit()).cos()
    }

    /// Log-normal with the given median and shape.
    fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    fn payload(&mut self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes
    }

    fn base62(&mut self, prefix: &str, len: usize) -> String {
        const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut out = String::with_capacity(prefix.len() + len);
        out.push_str(prefix);
        for _ in 0..len {
            out.push(BASE62[self.below(62)] as char);
        }
        out
    }
}

/// Walker's alias method: O(1) draws from a fixed discrete distribution.
#[derive(Debug, Clone)]
struct AliasTable {
    probability: Vec<f64>,
    alias: Vec<u32>,
}

impl AliasTable {
    fn new(weights: &[f64]) -> AliasTable {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut probability = vec![1.0; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            probability[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        AliasTable { probability, alias }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let i = rng.below(self.probability.len());
        if rng.unit() < self.probability[i] { i } else { self.alias[i] as usize }
    }
}

// ---------------------------------------------------------------------------------------------
// The fleet.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Circuit {
    Wan1,
    Wan2,
    Lte,
}

impl Circuit {
    fn name(self) -> &'static str {
        match self {
            Circuit::Wan1 => "WAN1",
            Circuit::Wan2 => "WAN2",
            Circuit::Lte => "LTE",
        }
    }
}

#[derive(Debug, Clone)]
struct Site {
    id: String,
    name: String,
    customer: usize,
    public_ip: String,
    fibre_isp: &'static str,
    mobile_isp: &'static str,
    tunnels: usize,
}

#[derive(Debug, Clone)]
struct Device {
    id: String,
    name: String,
    site: usize,
    path: String,
}

#[derive(Debug, Clone)]
struct Tunnel {
    id: String,
    name: String,
    site: usize,
    circuit: Circuit,
    peer_ip: &'static str,
    baseline_ms: u32,
    path: String,
}

#[derive(Debug, Clone)]
struct Fleet {
    sites: Vec<Site>,
    devices: Vec<Device>,
    tunnels: Vec<Tunnel>,
    site_outages: AliasTable,
    reboots: AliasTable,
    tunnel_downs: AliasTable,
    degradations: AliasTable,
}

/// Each site's tunnels, in the order a site gets them: primary first, backup last.
const TUNNEL_PLAN: [(Circuit, &str, &str); 4] = [
    (Circuit::Wan1, "DC-East", "198.51.100.10"),
    (Circuit::Wan2, "DC-West", "198.51.100.20"),
    (Circuit::Wan1, "DC-West", "198.51.100.20"),
    (Circuit::Lte, "DC-East", "198.51.100.10"),
];
const FIBRE_ISPS: [&str; 4] = ["Northwind Fibre", "Contoso Broadband", "Fabrikam Metro", "Litware Telecom"];
const MOBILE_ISPS: [&str; 2] = ["BlueLink LTE", "Tailspin Mobile"];

impl Fleet {
    fn build(config: &DemoConfig) -> Fleet {
        let mut rng = Rng::new(config.seed, 1);
        let customers = config.customer_ids.len();
        let site_count = config.sites as usize;
        let mut sites = Vec::with_capacity(site_count);
        let mut devices = Vec::new();
        let mut tunnels = Vec::new();
        // How bad each site is: Zipf-like over a random ranking, so a few sites dominate.
        let mut ranks: Vec<usize> = (0..site_count).collect();
        for i in (1..site_count).rev() {
            ranks.swap(i, rng.below(i + 1));
        }
        let mut site_badness = Vec::with_capacity(site_count);
        let mut device_weights = Vec::new();
        let mut tunnel_weights = Vec::new();
        let mut degradation_weights = Vec::new();
        for (s, rank) in ranks.into_iter().enumerate() {
            let customer = s % customers;
            let number = s / customers + 1;
            let site = Site {
                id: rng.base62("site_", 16),
                name: format!("Branch-{number:03}"),
                customer,
                public_ip: format!("{}.{}", rng.pick(&["203.0.113", "192.0.2"]), rng.between(2, 254)),
                fibre_isp: rng.pick(&FIBRE_ISPS),
                mobile_isp: rng.pick(&MOBILE_ISPS),
                tunnels: rng.between(1, 4) as usize,
            };
            let badness = 1.0 / ((rank + 1) as f64).powf(0.6);
            site_badness.push(badness.powf(1.2));
            let device_count = rng.between(1, 3) as usize;
            let first_device = devices.len();
            for d in 0..device_count {
                let id = rng.base62("dev_", 16);
                devices.push(Device {
                    path: format!("{}|{id}", site.id),
                    id,
                    name: format!("rtr-{number:03}-{}", (b'a' + d as u8) as char),
                    site: s,
                });
                device_weights.push(badness * rng.log_normal(1.0, 0.5));
            }
            for (t, &(circuit, hub, peer_ip)) in TUNNEL_PLAN.iter().take(site.tunnels).enumerate() {
                let device = &devices[first_device + t % device_count];
                let id = rng.base62("tun_", 16);
                let flakiness = badness
                    * rng.log_normal(1.0, 0.6)
                    * match circuit {
                        Circuit::Wan1 => 1.0,
                        Circuit::Wan2 => 1.3,
                        Circuit::Lte => 2.5,
                    };
                tunnels.push(Tunnel {
                    path: format!("{}|{id}", device.path),
                    id,
                    name: format!("{} to {hub}", circuit.name()),
                    site: s,
                    circuit,
                    peer_ip,
                    baseline_ms: match circuit {
                        Circuit::Lte => rng.between(35, 80) as u32,
                        _ => rng.between(6, 45) as u32,
                    },
                });
                tunnel_weights.push(flakiness);
                degradation_weights.push(flakiness * rng.log_normal(1.0, 0.3));
            }
            sites.push(site);
        }
        Fleet {
            site_outages: AliasTable::new(&site_badness),
            reboots: AliasTable::new(&device_weights),
            tunnel_downs: AliasTable::new(&tunnel_weights),
            degradations: AliasTable::new(&degradation_weights),
            sites,
            devices,
            tunnels,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// When faults happen.

/// Fault intensity per UTC hour over the history, as a cumulative distribution.
#[derive(Debug, Clone)]
struct Timeline {
    start: Micros,
    end: Micros,
    /// Start of the first hour bin (aligned to a UTC hour, at or before `start`).
    first_hour: Micros,
    /// `cumulative[j]` is the weight of all bins before bin `j`.
    cumulative: Vec<f64>,
}

impl Timeline {
    fn new(start: Micros, end: Micros, rng: &mut Rng) -> Timeline {
        let first_hour = start.div_euclid(HOUR) * HOUR;
        let bins = (end - first_hour + HOUR - 1).div_euclid(HOUR).max(1) as usize;
        let mut cumulative = Vec::with_capacity(bins + 1);
        cumulative.push(0.0);
        let mut total = 0.0;
        let mut day_factor = 1.0;
        for j in 0..bins {
            let lo = (first_hour + j as Micros * HOUR).max(start);
            let hi = (first_hour + (j as Micros + 1) * HOUR).min(end);
            let hour_of_day = (lo.div_euclid(HOUR)).rem_euclid(24);
            if j == 0 || hour_of_day == 0 {
                // Busy and quiet days, and now and then a bad one (a carrier outage, a storm).
                day_factor = rng.log_normal(1.0, 0.35) * if rng.chance(0.02) { 3.0 } else { 1.0 };
            }
            // 1970-01-01 was a Thursday; 0 = Sunday.
            let weekday = (lo.div_euclid(DAY) + 4).rem_euclid(7);
            let hour_factor = match hour_of_day {
                0..=5 => 0.35,
                6..=7 => 0.8,
                8..=17 => 1.6,
                18..=21 => 0.9,
                _ => 0.5,
            };
            let week_factor = if weekday == 0 || weekday == 6 { 0.55 } else { 1.0 };
            // The fleet grows over the year, and so does the number of faults.
            let growth = 0.55 + 0.9 * (lo - start) as f64 / (end - start).max(1) as f64;
            total += hour_factor * week_factor * day_factor * growth * (hi - lo).max(0) as f64;
            cumulative.push(total);
        }
        Timeline { start, end, first_hour, cumulative }
    }

    /// The instant at quantile `u` in [0, 1); non-decreasing in `u`.
    fn at(&self, u: f64) -> Micros {
        let bins = self.cumulative.len() - 1;
        let target = u * self.cumulative[bins];
        let j = self.cumulative.partition_point(|&c| c <= target).saturating_sub(1).min(bins - 1);
        let lo = (self.first_hour + j as Micros * HOUR).max(self.start);
        let hi = (self.first_hour + (j as Micros + 1) * HOUR).min(self.end);
        let width = self.cumulative[j + 1] - self.cumulative[j];
        let fraction =
            if width > 0.0 { ((target - self.cumulative[j]) / width).clamp(0.0, 1.0) } else { 0.0 };
        (lo + (fraction * (hi - lo) as f64) as Micros).clamp(self.start, self.end)
    }
}

// ---------------------------------------------------------------------------------------------
// The faults.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    SiteOutage,
    TunnelDown,
    Degradation,
    Reboot,
}

impl Kind {
    fn slug(self) -> &'static str {
        match self {
            Kind::SiteOutage => "site",
            Kind::TunnelDown => "wantunnel",
            Kind::Degradation => "wan-degradation",
            Kind::Reboot => "reboot",
        }
    }

    /// Most faults are WAN trouble; whole-site outages are rare.
    fn draw(rng: &mut Rng) -> Kind {
        let draw = rng.unit();
        if draw < 0.52 {
            Kind::Degradation
        } else if draw < 0.80 {
            Kind::TunnelDown
        } else if draw < 0.92 {
            Kind::Reboot
        } else {
            Kind::SiteOutage
        }
    }
}

/// What a fault says about the problem, before its timing is settled.
#[derive(Debug)]
struct Description {
    resource_id: String,
    path: String,
    microservice: &'static str,
    severity: Severity,
    message: String,
    cause: String,
    /// How long the problem lasts, if nothing else decides.
    duration_seconds: f64,
}

/// A problem still going on at `now`, placed in the history ahead of time.
#[derive(Debug, Clone, Copy)]
struct Ongoing {
    created_at: Micros,
    kind: Kind,
    index: usize,
}

impl Fleet {
    /// The resource a fault of `kind` happens on, bad ones more often.
    fn draw(&self, kind: Kind, rng: &mut Rng) -> usize {
        match kind {
            Kind::SiteOutage => self.site_outages.sample(rng),
            Kind::TunnelDown => self.tunnel_downs.sample(rng),
            Kind::Degradation => self.degradations.sample(rng),
            Kind::Reboot => self.reboots.sample(rng),
        }
    }

    fn site_of(&self, kind: Kind, index: usize) -> &Site {
        match kind {
            Kind::SiteOutage => &self.sites[index],
            Kind::TunnelDown | Kind::Degradation => &self.sites[self.tunnels[index].site],
            Kind::Reboot => &self.sites[self.devices[index].site],
        }
    }

    fn describe(&self, kind: Kind, index: usize, created_at: Micros, rng: &mut Rng) -> Description {
        match kind {
            Kind::SiteOutage => {
                let site = &self.sites[index];
                let cause = match rng.below(10) {
                    0..=5 => format!("No heartbeat for 5 minutes; last seen from {}", site.public_ip),
                    6 | 7 => format!(
                        "All WAN circuits down; last heartbeat over {} from {}",
                        site.fibre_isp, site.public_ip
                    ),
                    8 => {
                        format!("Upstream outage at {}; other sites on this carrier affected", site.fibre_isp)
                    }
                    _ => "Power failure at site; UPS exhausted before mains returned".to_owned(),
                };
                let duration_seconds = if rng.chance(0.015) {
                    rng.log_normal(8.0 * 3_600.0, 0.6)
                } else {
                    rng.log_normal(25.0 * 60.0, 1.0)
                };
                Description {
                    resource_id: site.id.clone(),
                    path: site.id.clone(),
                    microservice: "heartbeat-monitor",
                    severity: Severity::Critical,
                    message: format!("Site {} stopped sending heartbeats", site.name),
                    cause,
                    duration_seconds: duration_seconds.clamp(300.0, 3.0 * 86_400.0),
                }
            }
            Kind::TunnelDown => {
                let tunnel = &self.tunnels[index];
                let site = &self.sites[tunnel.site];
                let isp = site.isp(tunnel.circuit);
                let peer = tunnel.peer_ip;
                let cause = match rng.below(6) {
                    0 => format!("IPsec SA negotiation failed: NO_PROPOSAL_CHOSEN from peer {peer}"),
                    1 => format!("BFD session down after 3 missed probes to {peer}"),
                    2 => format!("IKE peer {peer} not responding (DPD timeout 30 s)"),
                    3 => format!("{} circuit lost carrier ({isp})", tunnel.circuit.name()),
                    4 => format!("WireGuard handshake with {peer} older than 180 s"),
                    _ => format!("Route to {peer} withdrawn by {isp}"),
                };
                // Losing the only tunnel cuts the site off.
                let critical = site.tunnels == 1 || rng.chance(0.2);
                Description {
                    resource_id: tunnel.id.clone(),
                    path: tunnel.path.clone(),
                    microservice: "wantunnel-monitor",
                    severity: if critical { Severity::Critical } else { Severity::High },
                    message: format!("{} tunnel down at {}", tunnel.name, site.name),
                    cause,
                    duration_seconds: wan_problem_seconds(rng, 6.0 * 60.0, 1.3, 30.0),
                }
            }
            Kind::Degradation => {
                let tunnel = &self.tunnels[index];
                let site = &self.sites[tunnel.site];
                let isp = site.isp(tunnel.circuit);
                let at = format!("on {} at {}", tunnel.name, site.name);
                let (severity, message, cause) = match rng.below(20) {
                    0..=8 => {
                        let loss = rng.log_normal(4.0, 0.7).clamp(1.0, 45.0);
                        (
                            grade(loss, 3.0, 8.0),
                            format!("Packet loss {loss:.1}% {at}"),
                            format!(
                                "SLA probe measured {loss:.1}% loss over 5 minutes (threshold 2%) via {isp}"
                            ),
                        )
                    }
                    9..=15 => {
                        let baseline = tunnel.baseline_ms;
                        let latency =
                            f64::from(baseline) + rng.log_normal(120.0, 0.6).clamp(60.0, 1_500.0).round();
                        (
                            grade(latency, 150.0, 300.0),
                            format!("Latency {latency} ms {at} (baseline {baseline} ms)"),
                            format!(
                                "Round-trip time above {} ms for 5 consecutive probes; congestion on {isp} likely",
                                baseline + 50
                            ),
                        )
                    }
                    _ => {
                        let jitter = rng.log_normal(35.0, 0.45).clamp(15.0, 200.0).round();
                        let mos = (4.4 - jitter / 45.0).max(1.0);
                        (
                            grade(jitter, 30.0, 60.0),
                            format!("Jitter {jitter} ms {at}"),
                            format!(
                                "Jitter above the 30 ms threshold; voice quality degraded (MOS {mos:.1})"
                            ),
                        )
                    }
                };
                Description {
                    resource_id: tunnel.id.clone(),
                    path: tunnel.path.clone(),
                    microservice: "sla-probe",
                    severity,
                    message,
                    cause,
                    duration_seconds: wan_problem_seconds(rng, 12.0 * 60.0, 1.1, 60.0),
                }
            }
            Kind::Reboot => {
                let device = &self.devices[index];
                let site = &self.sites[device.site];
                // Upgrades happen in the night-time maintenance window.
                let hour_of_day = created_at.div_euclid(HOUR).rem_euclid(24);
                let planned = if (1..=4).contains(&hour_of_day) { 0.7 } else { 0.2 };
                let (severity, cause) = if rng.chance(planned) {
                    let version = format!("7.{}.{}", rng.between(14, 18), rng.between(0, 3));
                    (Severity::Low, format!("Scheduled reboot after firmware upgrade to RouterOS {version}"))
                } else {
                    let uptime = rng.between(2, 180);
                    match rng.below(4) {
                        0 => (Severity::Low, "Reboot requested by an operator from the portal".to_owned()),
                        1 => (
                            Severity::Medium,
                            format!("Unexpected reboot: power loss detected (uptime was {uptime} days)"),
                        ),
                        2 => (Severity::Medium, "Watchdog reset: management process unresponsive".to_owned()),
                        _ => (
                            Severity::Warning,
                            format!("Uptime reset to 0 after {uptime} days; reboot reason unknown"),
                        ),
                    }
                };
                Description {
                    resource_id: device.id.clone(),
                    path: device.path.clone(),
                    microservice: "device-agent",
                    severity,
                    message: format!("Router {} at {} rebooted", device.name, site.name),
                    cause,
                    duration_seconds: rng.log_normal(150.0, 0.5).clamp(40.0, 1_800.0),
                }
            }
        }
    }

    /// The problems going on right now: a few circuits waiting for the carrier, a degraded
    /// backup link, now and then a site that is dark. Roughly one per 25 tunnels, at most a
    /// twentieth of the history, latest first.
    fn ongoing(&self, faults: u64, timeline: &Timeline, rng: &mut Rng) -> Vec<Ongoing> {
        let wanted = (self.tunnels.len() / 25 + self.sites.len() / 50).max(1) as u64;
        let count = wanted.min(faults / 20) as usize;
        let mut keys = HashSet::new();
        let mut ongoing = Vec::with_capacity(count);
        for _ in 0..count * 4 {
            if ongoing.len() == count {
                break;
            }
            let draw = rng.unit();
            let kind = if draw < 0.15 {
                Kind::SiteOutage
            } else if draw < 0.55 {
                Kind::TunnelDown
            } else {
                Kind::Degradation
            };
            let index = self.draw(kind, rng);
            let age =
                (rng.log_normal(5.0 * 3_600.0, 1.6).clamp(120.0, 21.0 * 86_400.0) * SECOND as f64) as Micros;
            let created_at = (timeline.end - age).max(timeline.start);
            if keys.insert((kind, index)) {
                ongoing.push(Ongoing { created_at, kind, index });
            }
        }
        ongoing.sort_unstable_by_key(|o| std::cmp::Reverse((o.created_at, o.kind as u8, o.index)));
        ongoing
    }
}

impl Site {
    fn isp(&self, circuit: Circuit) -> &'static str {
        if circuit == Circuit::Lte { self.mobile_isp } else { self.fibre_isp }
    }
}

/// LOW below `warning`, WARNING below `medium`, MEDIUM from there on.
fn grade(value: f64, warning: f64, medium: f64) -> Severity {
    if value < warning {
        Severity::Low
    } else if value < medium {
        Severity::Warning
    } else {
        Severity::Medium
    }
}

/// How long a WAN problem lasts: log-normal around `median` seconds, except that a few
/// linger for days (a circuit waiting for the carrier's technician).
fn wan_problem_seconds(rng: &mut Rng, median: f64, sigma: f64, min: f64) -> f64 {
    if rng.chance(0.004) {
        rng.log_normal(2.0 * 86_400.0, 0.7).clamp(86_400.0, 21.0 * 86_400.0)
    } else {
        rng.log_normal(median, sigma).clamp(min, 2.0 * 86_400.0)
    }
}

/// The generator: an iterator over the history, oldest fault first.
#[derive(Debug, Clone)]
pub struct DemoFaults {
    fleet: Fleet,
    customer_ids: Vec<String>,
    timeline: Timeline,
    rng: Rng,
    now: Micros,
    retention_seconds: i64,
    /// Ordinary faults whose time is still to draw; also the rank of the next one among them.
    remaining: u64,
    /// ln of the largest of the `remaining` uniforms not yet drawn (sequential order
    /// statistics: sorted uniforms one by one, in constant memory).
    log_max: f64,
    /// The time of the next ordinary fault, once drawn.
    next_ordinary: Option<Micros>,
    /// The ongoing problems not yet emitted, latest first.
    ongoing: Vec<Ongoing>,
    /// (kind, resource index) of the faults left open, to keep one open fault per resource
    /// and type, as the events API's deduplication does.
    open: HashSet<(Kind, usize)>,
}

impl DemoFaults {
    pub fn new(config: DemoConfig) -> Result<DemoFaults, DemoConfigError> {
        if config.customers == 0 {
            return Err(DemoConfigError::NoCustomers);
        }
        if config.customer_ids.len() != config.customers as usize {
            return Err(DemoConfigError::CustomerIdsMismatch {
                customers: config.customers,
                ids: config.customer_ids.len(),
            });
        }
        if config.sites < config.customers {
            return Err(DemoConfigError::TooFewSites { sites: config.sites, customers: config.customers });
        }
        if config.retention_seconds < 3_600 {
            return Err(DemoConfigError::RetentionTooShort(config.retention_seconds));
        }
        let fleet = Fleet::build(&config);
        // Nothing older than 90% of the retention period, so no demo fault is about to expire.
        let span = HISTORY_SECONDS.min(config.retention_seconds - config.retention_seconds / 10) * SECOND;
        let timeline = Timeline::new(config.now - span, config.now, &mut Rng::new(config.seed, 2));
        let ongoing = fleet.ongoing(config.faults, &timeline, &mut Rng::new(config.seed, 4));
        Ok(DemoFaults {
            open: ongoing.iter().map(|o| (o.kind, o.index)).collect(),
            remaining: config.faults - ongoing.len() as u64,
            ongoing,
            fleet,
            customer_ids: config.customer_ids,
            timeline,
            rng: Rng::new(config.seed, 3),
            now: config.now,
            retention_seconds: config.retention_seconds,
            log_max: 0.0,
            next_ordinary: None,
        })
    }

    pub fn fleet_size(&self) -> FleetSize {
        FleetSize {
            sites: self.fleet.sites.len(),
            devices: self.fleet.devices.len(),
            tunnels: self.fleet.tunnels.len(),
        }
    }

    /// Every site of the fleet as `(customer_id, site_id, name)`, for naming them.
    pub fn site_names(&self) -> Vec<(String, String, String)> {
        self.fleet
            .sites
            .iter()
            .map(|s| (self.customer_ids[s.customer].clone(), s.id.clone(), s.name.clone()))
            .collect()
    }

    /// Up to `max` next faults; empty when the history is exhausted.
    pub fn next_chunk(&mut self, max: usize) -> Vec<Fault> {
        self.by_ref().take(max).collect()
    }

    fn draw_ordinary_time(&mut self) -> Micros {
        // The largest of k uniforms is the largest of k + 1 times U^(1/k); 1 - max walks up
        // from 0 to 1, so the history comes out in time order.
        self.log_max += self.rng.unit_open().ln() / self.remaining as f64;
        self.remaining -= 1;
        self.timeline.at(-self.log_max.exp_m1())
    }

    fn fault(&mut self, kind: Kind, index: usize, created_at: Micros, ongoing: bool) -> Fault {
        let d = self.fleet.describe(kind, index, created_at, &mut self.rng);
        let end = created_at + (d.duration_seconds * SECOND as f64) as Micros;
        let (status, resolved_at) = if ongoing {
            (FaultStatus::Unresolved, None)
        } else if end <= self.now {
            (FaultStatus::Resolved, Some(end))
        } else if self.open.insert((kind, index)) {
            (FaultStatus::Unresolved, None)
        } else {
            // Already open on this resource: this one was a short flap that is over by now.
            let end = created_at + (self.rng.unit() * (self.now - created_at) as f64) as Micros;
            (FaultStatus::Resolved, Some(end))
        };
        let customer_id = self.customer_ids[self.fleet.site_of(kind, index).customer].clone();
        Fault {
            id: format!("flt_{}", ksuid_from_parts(created_at.div_euclid(SECOND), self.rng.payload())),
            customer_id,
            site_id: derive_site_id(&d.resource_id, &d.path),
            site_name: None,
            resource_id: d.resource_id,
            microservice_id: d.microservice.to_owned(),
            fault_type: kind.slug().to_owned(),
            status,
            severity: d.severity,
            message: d.message,
            cause: d.cause,
            created_at,
            resolved_at,
            resource_ancestry_path: d.path,
            ttl: expiry(resolved_at.unwrap_or(created_at), self.retention_seconds),
            comments: Vec::new(),
        }
    }
}

impl Iterator for DemoFaults {
    type Item = Fault;

    fn next(&mut self) -> Option<Fault> {
        if self.next_ordinary.is_none() && self.remaining > 0 {
            self.next_ordinary = Some(self.draw_ordinary_time());
        }
        let ongoing_first = match (self.ongoing.last(), self.next_ordinary) {
            (Some(o), Some(t)) => o.created_at <= t,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if ongoing_first {
            let o = self.ongoing.pop()?;
            Some(self.fault(o.kind, o.index, o.created_at, true))
        } else {
            let created_at = self.next_ordinary.take()?;
            let kind = Kind::draw(&mut self.rng);
            let index = self.fleet.draw(kind, &mut self.rng);
            Some(self.fault(kind, index, created_at, false))
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.remaining + u64::from(self.next_ordinary.is_some()) + self.ongoing.len() as u64;
        let n = usize::try_from(left).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::fault::validate_slug;
    use crate::ids::IdKind;

    const NOW: Micros = 1_761_051_600_000_000;
    const RETENTION: i64 = 400 * 86_400;

    fn config(faults: u64, seed: u64) -> DemoConfig {
        DemoConfig {
            faults,
            sites: 200,
            customers: 2,
            seed,
            now: NOW,
            retention_seconds: RETENTION,
            customer_ids: vec!["cus_a".into(), "cus_b".into()],
        }
    }

    fn generate(faults: u64, seed: u64) -> Vec<Fault> {
        DemoFaults::new(config(faults, seed)).unwrap().collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_history_and_another_seed_another() {
        let a = generate(1_000, 7);
        assert_eq!(a.len(), 1_000);
        assert_eq!(a, generate(1_000, 7));
        let b = generate(1_000, 8);
        assert_ne!(a, b);
        assert!(a.iter().zip(&b).all(|(x, y)| x.id != y.id));
        // Chunks are the same faults as one long run.
        let mut chunked = DemoFaults::new(config(1_000, 7)).unwrap();
        let mut joined = Vec::new();
        loop {
            let chunk = chunked.next_chunk(300);
            if chunk.is_empty() {
                break;
            }
            joined.extend(chunk);
        }
        assert_eq!(joined, a);
    }

    #[test]
    fn every_field_is_valid() {
        let faults = generate(20_000, 1);
        let oldest = NOW - RETENTION * SECOND;
        let mut ids = HashSet::new();
        for f in &faults {
            assert!(IdKind::Fault.is_valid(&f.id), "{}", f.id);
            assert!(ids.insert(f.id.clone()), "duplicate id {}", f.id);
            assert!(["cus_a", "cus_b"].contains(&f.customer_id.as_str()));
            assert!(validate_slug("type", &f.fault_type).is_ok());
            assert!(["site", "wantunnel", "wan-degradation", "reboot"].contains(&f.fault_type.as_str()));
            assert!(f.created_at > oldest && f.created_at <= NOW, "{f:?}");
            match f.status {
                FaultStatus::Resolved => {
                    let end = f.resolved_at.unwrap();
                    assert!(end >= f.created_at && end <= NOW, "{f:?}");
                }
                FaultStatus::Unresolved => assert_eq!(f.resolved_at, None),
            }
            assert_eq!(f.ttl, expiry(f.resolved_at.unwrap_or(f.created_at), RETENTION));
            assert!(f.ttl > NOW / SECOND);
            assert_eq!(f.site_id, derive_site_id(&f.resource_id, &f.resource_ancestry_path));
            assert!(f.site_id.is_some());
            let elements: Vec<&str> = f.resource_ancestry_path.split('|').collect();
            assert_eq!(elements.last(), Some(&f.resource_id.as_str()));
            let expected_depth = match f.fault_type.as_str() {
                "site" => 1,
                "reboot" => 2,
                _ => 3,
            };
            assert_eq!(elements.len(), expected_depth, "{}", f.resource_ancestry_path);
            for (element, prefix) in elements.iter().zip(["site_", "dev_", "tun_"]) {
                assert!(element.starts_with(prefix), "{}", f.resource_ancestry_path);
            }
            assert!(!f.message.is_empty() && !f.cause.is_empty());
            assert!(f.message.chars().count() <= crate::fault::MAX_MESSAGE);
            assert!(f.comments.is_empty());
            let expected_service = match f.fault_type.as_str() {
                "site" => "heartbeat-monitor",
                "wantunnel" => "wantunnel-monitor",
                "wan-degradation" => "sla-probe",
                _ => "device-agent",
            };
            assert_eq!(f.microservice_id, expected_service);
        }
        // Oldest first, ids time-sortable to the second.
        assert!(faults.windows(2).all(|w| w[0].created_at <= w[1].created_at));
        let severities: HashSet<Severity> = faults.iter().map(|f| f.severity).collect();
        assert_eq!(severities.len(), 5, "every severity appears: {severities:?}");
        assert!(
            faults.iter().any(|f| f.customer_id == "cus_a")
                && faults.iter().any(|f| f.customer_id == "cus_b")
        );
    }

    #[test]
    fn some_faults_are_still_open_but_one_per_resource_and_type() {
        let faults = generate(20_000, 3);
        let open: Vec<&Fault> = faults.iter().filter(|f| f.status == FaultStatus::Unresolved).collect();
        assert!(!open.is_empty());
        assert!(open.len() < faults.len() / 20, "{} open", open.len());
        let keys: HashSet<(&str, &str)> =
            open.iter().map(|f| (f.resource_id.as_str(), f.fault_type.as_str())).collect();
        assert_eq!(keys.len(), open.len());
    }

    #[test]
    fn the_mix_is_realistic() {
        let faults = generate(20_000, 5);
        let share = |pred: &dyn Fn(&Fault) -> bool| {
            faults.iter().filter(|f| pred(f)).count() as f64 / faults.len() as f64
        };
        let wan = share(&|f| f.fault_type == "wan-degradation" || f.fault_type == "wantunnel");
        let site = share(&|f| f.fault_type == "site");
        assert!(wan > 0.7, "wan {wan}");
        assert!(site > 0.02 && site < 0.15, "site {site}");
        assert!(share(&|f| f.fault_type == "site" && f.severity != Severity::Critical) == 0.0);
        // Business hours (08-18 UTC) on weekdays hold well over their 30% share of the week.
        let business = share(&|f| {
            let hour = f.created_at.div_euclid(HOUR).rem_euclid(24);
            let weekday = (f.created_at.div_euclid(DAY) + 4).rem_euclid(7);
            (8..18).contains(&hour) && (1..=5).contains(&weekday)
        });
        assert!(business > 0.42, "business hours {business}");
        // Most outages are short, a few are long.
        let durations: Vec<i64> =
            faults.iter().filter_map(|f| f.resolved_at.map(|r| r - f.created_at)).collect();
        let within_hour = durations.iter().filter(|&&d| d <= HOUR).count() as f64 / durations.len() as f64;
        assert!(within_hour > 0.6, "{within_hour}");
        assert!(durations.iter().any(|&d| d > DAY));
        // The history covers the year, more of it recently.
        let last_quarter = share(&|f| f.created_at > NOW - 91 * DAY);
        assert!(faults[0].created_at < NOW - 300 * DAY);
        assert!(last_quarter > 0.28, "last quarter {last_quarter}");
    }

    #[test]
    fn a_few_resources_produce_most_faults() {
        let mut generator = DemoFaults::new(config(20_000, 9)).unwrap();
        let size = generator.fleet_size();
        let resources = size.sites + size.devices + size.tunnels;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for f in generator.by_ref() {
            *counts.entry(f.resource_id).or_default() += 1;
        }
        let mut sorted: Vec<usize> = counts.into_values().collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let top: usize = sorted.iter().take(resources / 10).sum();
        assert!(top as f64 > 0.3 * 20_000.0, "top 10% of {resources} resources have {top} faults");
    }

    #[test]
    fn short_retention_keeps_every_fault_inside_it() {
        let mut c = config(2_000, 1);
        c.retention_seconds = 7 * 86_400;
        for f in DemoFaults::new(c).unwrap() {
            assert!(f.created_at >= NOW - 7 * DAY && f.created_at <= NOW);
            assert!(f.ttl > NOW / SECOND);
        }
    }

    #[test]
    fn inconsistent_configs_are_refused() {
        let mut c = config(10, 1);
        c.customers = 3;
        assert_eq!(
            DemoFaults::new(c).unwrap_err(),
            DemoConfigError::CustomerIdsMismatch { customers: 3, ids: 2 }
        );
        let mut c = config(10, 1);
        c.sites = 1;
        assert_eq!(DemoFaults::new(c).unwrap_err(), DemoConfigError::TooFewSites { sites: 1, customers: 2 });
        assert_eq!(DemoFaults::new(config(0, 1)).unwrap().count(), 0);
    }

    #[test]
    fn customer_names_are_distinct() {
        let names: HashSet<String> = (0..40).map(customer_name).collect();
        assert_eq!(names.len(), 40);
        assert_eq!(customer_name(0), "Acme Networks");
    }
}
