//! The analytics index: a customer's faults held in memory as columns of the fields that
//! analytics filter, count and group by, so that `GET /fault/analytics`, `GET /fault/sla` and
//! `GET /fault/top_faults` read columns in memory instead of scanning the `faults` table for
//! each figure.
//!
//! It answers exactly what the SQL of [`crate::analytics`] and [`crate::sql::top_resource_counts`]
//! answers on SQLite, for every filter of `GET /fault` (free text as SQLite's `lower()` and
//! `LIKE` match it). A backend keeps it in step with the event log: every change to a fault
//! appends an entry (`created`, `resolved`, `deleted`, `expired`, …), and before each answer the
//! backend re-reads the faults named by the entries it has not applied yet
//! ([`CustomerIndex::apply`]). The conformance suite checks every answer against the SQL on
//! random histories.
//!
//! Memory: a fixed-width entry per fault in each column plus its id in a hash map, and each
//! distinct string (types, resources, sites, services, ancestry paths, messages, causes) once,
//! however many faults share it.

use std::collections::HashMap as StdHashMap;
use std::sync::Arc;

/// Hash maps keyed by the index's strings: foldhash (seeded per map) hashes short strings
/// faster than the standard library's SipHash, and a load hashes several strings of every fault.
type HashMap<K, V> = StdHashMap<K, V, foldhash::quality::RandomState>;

use faultline_core::fault::{FaultStatus, Severity};
use faultline_core::filter::{FaultFilter, RECENT_WINDOW_MICROS};
use faultline_core::time::Micros;

use crate::analytics::{GroupBy, Slots};

/// The fields of one fault the index holds, as read from the `faults` table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexRow<'a> {
    pub id: &'a str,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    pub status: &'a str,
    pub severity: &'a str,
    pub fault_type: &'a str,
    pub resource_id: &'a str,
    pub site_id: Option<&'a str>,
    pub microservice_id: &'a str,
    pub resource_ancestry_path: &'a str,
    pub message: &'a str,
    pub cause: &'a str,
}

/// A string's number in the index's dictionary.
type Sym = u32;

/// No site: `site_id` is null.
const NO_SITE: Sym = Sym::MAX;
/// A row that holds no fault (free for the next one).
const FREE: i64 = i64::MIN;
/// `resolved_at` is null.
const UNRESOLVED: i64 = i64::MIN;

/// Every distinct string of the index, once.
#[derive(Debug, Default)]
struct Dictionary {
    /// Each string is allocated once, shared by both.
    numbers: HashMap<Arc<str>, Sym>,
    strings: Vec<Arc<str>>,
}

impl Dictionary {
    fn intern(&mut self, s: &str) -> Sym {
        if let Some(&n) = self.numbers.get(s) {
            return n;
        }
        let n = self.strings.len() as Sym;
        let shared: Arc<str> = s.into();
        self.strings.push(shared.clone());
        self.numbers.insert(shared, n);
        n
    }

    fn find(&self, s: &str) -> Option<Sym> {
        self.numbers.get(s).copied()
    }

    fn get(&self, n: Sym) -> &str {
        &self.strings[n as usize]
    }
}

fn severity_number(s: &str) -> u8 {
    Severity::ALL.iter().position(|v| v.as_str() == s).map_or(u8::MAX, |i| i as u8)
}

/// One customer's faults, in columns. Rows of deleted faults are reused.
#[derive(Debug, Default)]
pub(crate) struct CustomerIndex {
    /// The last event-log sequence number whose change the columns hold.
    pub applied_seq: i64,
    rows: HashMap<Box<str>, u32>,
    free: Vec<u32>,
    created_at: Vec<i64>,
    resolved_at: Vec<i64>,
    resolved: Vec<bool>,
    severity: Vec<u8>,
    fault_type: Vec<Sym>,
    resource: Vec<Sym>,
    site: Vec<Sym>,
    microservice: Vec<Sym>,
    path: Vec<Sym>,
    message: Vec<Sym>,
    cause: Vec<Sym>,
    dictionary: Dictionary,
    /// The dictionary's size when it last held only strings in use: it is rebuilt from the
    /// faults in the index once it has grown past twice that (strings of removed faults stay
    /// until then).
    compacted_size: usize,
}

impl CustomerIndex {
    /// How many faults it holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Put `row` in the index (replacing the fault's previous state).
    pub fn upsert(&mut self, row: &IndexRow<'_>) {
        let resolved = row.status == FaultStatus::Resolved.as_str();
        let severity = severity_number(row.severity);
        let fault_type = self.dictionary.intern(row.fault_type);
        let resource = self.dictionary.intern(row.resource_id);
        let site = row.site_id.map_or(NO_SITE, |s| self.dictionary.intern(s));
        let microservice = self.dictionary.intern(row.microservice_id);
        let path = self.dictionary.intern(row.resource_ancestry_path);
        let (message, cause) = (self.dictionary.intern(row.message), self.dictionary.intern(row.cause));
        let at = match self.rows.get(row.id) {
            Some(&at) => at as usize,
            None => {
                let at = match self.free.pop() {
                    Some(at) => at as usize,
                    None => {
                        self.created_at.push(FREE);
                        self.resolved_at.push(UNRESOLVED);
                        self.resolved.push(false);
                        self.severity.push(0);
                        self.fault_type.push(0);
                        self.resource.push(0);
                        self.site.push(NO_SITE);
                        self.microservice.push(0);
                        self.path.push(0);
                        self.message.push(0);
                        self.cause.push(0);
                        self.created_at.len() - 1
                    }
                };
                self.rows.insert(row.id.into(), at as u32);
                at
            }
        };
        self.created_at[at] = row.created_at;
        self.resolved_at[at] = row.resolved_at.unwrap_or(UNRESOLVED);
        self.resolved[at] = resolved;
        self.severity[at] = severity;
        self.fault_type[at] = fault_type;
        self.resource[at] = resource;
        self.site[at] = site;
        self.microservice[at] = microservice;
        self.path[at] = path;
        self.message[at] = message;
        self.cause[at] = cause;
    }

    /// Take the fault out of the index, if it is there.
    pub fn remove(&mut self, fault_id: &str) {
        if let Some(at) = self.rows.remove(fault_id) {
            self.created_at[at as usize] = FREE;
            self.free.push(at);
        }
    }

    /// Bring the faults `changed` names up to date: each becomes `current`'s row for it, or
    /// leaves the index when `current` has none (deleted or expired).
    pub fn apply(&mut self, changed: &[String], current: &[IndexRow<'_>], applied_seq: i64) {
        for id in changed {
            self.remove(id);
        }
        for row in current {
            self.upsert(row);
        }
        self.applied_seq = self.applied_seq.max(applied_seq);
        if self.dictionary.strings.len() > 2 * self.compacted_size + 4_096 {
            self.compact();
        }
    }

    /// Rebuild the dictionary from the strings the faults in the index use.
    pub fn compact(&mut self) {
        let old = std::mem::take(&mut self.dictionary);
        let mut renumbered: Vec<Option<Sym>> = vec![None; old.strings.len()];
        let live: Vec<usize> = (0..self.created_at.len()).filter(|&at| self.created_at[at] != FREE).collect();
        let dictionary = &mut self.dictionary;
        let mut renumber = |column: &mut Vec<Sym>| {
            for &at in &live {
                let sym = column[at];
                if sym != NO_SITE {
                    column[at] =
                        *renumbered[sym as usize].get_or_insert_with(|| dictionary.intern(old.get(sym)));
                }
            }
        };
        for column in [
            &mut self.fault_type,
            &mut self.resource,
            &mut self.site,
            &mut self.microservice,
            &mut self.path,
            &mut self.message,
            &mut self.cause,
        ] {
            renumber(column);
        }
        self.compacted_size = self.dictionary.strings.len();
    }

    /// `filter` at `now`, compiled against this index.
    fn matcher(&self, filter: &FaultFilter, now: Micros) -> Matcher {
        let symbols = |values: &[String]| -> Option<Vec<Sym>> {
            (!values.is_empty()).then(|| values.iter().filter_map(|v| self.dictionary.find(v)).collect())
        };
        let severities = |values: &[Severity]| -> u8 {
            if values.is_empty() {
                u8::MAX
            } else {
                values.iter().fold(0, |mask, s| mask | 1 << severity_number(s.as_str()))
            }
        };
        let mut matcher = Matcher {
            from: filter.from.unwrap_or(i64::MIN + 1),
            to: filter.to.unwrap_or(i64::MAX),
            severities: severities(&filter.severities),
            resolved: match (
                filter.statuses.contains(&FaultStatus::Unresolved),
                filter.statuses.contains(&FaultStatus::Resolved),
            ) {
                (false, false) | (true, true) => None,
                (unresolved, _) => Some(!unresolved),
            },
            recent_since: filter.recent.then(|| now - RECENT_WINDOW_MICROS),
            sym_lists: Vec::new(),
            site_sets: Vec::new(),
            text: filter.text.as_deref().map(|text| self.text_set(text)),
            rows: None,
        };
        let mut list = |column: Column, values: &[String]| {
            if let Some(symbols) = symbols(values) {
                matcher.sym_lists.push((column, symbols));
            }
        };
        list(Column::Type, &filter.types);
        list(Column::Resource, &filter.resource_ids);
        list(Column::Microservice, &filter.microservice_ids);
        if !filter.sites.is_empty() {
            matcher.site_sets.push(self.site_set(&filter.sites));
        }
        if let Some(scope) = &filter.scope {
            list(Column::Resource, &scope.resource_ids);
            list(Column::Type, &scope.types);
            matcher.severities &= severities(&scope.severity);
            if !scope.site_ids.is_empty() {
                matcher.site_sets.push(self.site_set(&scope.site_ids));
            }
            if !scope.fault_ids.is_empty() {
                let mut rows: Vec<u32> =
                    scope.fault_ids.iter().filter_map(|id| self.rows.get(id.as_str()).copied()).collect();
                rows.sort_unstable();
                rows.dedup();
                matcher.rows = Some(rows);
            }
        }
        matcher
    }

    /// Which dictionary strings, read as an ancestry path or as a resource id, match one of
    /// `sites` the way `site=` does: any element of the path, or the resource id itself.
    fn site_set(&self, sites: &[String]) -> SiteSet {
        let paths = self
            .dictionary
            .strings
            .iter()
            .map(|path| path.split('|').any(|element| sites.iter().any(|s| s == element)))
            .collect();
        let resources = sites.iter().filter_map(|s| self.dictionary.find(s)).collect();
        SiteSet { paths, resources }
    }

    /// Which dictionary strings hold `text` the way `q=` matches a message or cause: SQLite's
    /// `lower(column) LIKE '%' || lower(text) || '%'`, where `lower()` folds ASCII letters
    /// only and the text was folded in full.
    fn text_set(&self, text: &str) -> Vec<bool> {
        let needle = text.to_lowercase();
        self.dictionary.strings.iter().map(|s| s.to_ascii_lowercase().contains(&needle)).collect()
    }

    /// Call `each` with every row matching `matcher`.
    fn for_each(&self, matcher: &Matcher, mut each: impl FnMut(usize)) {
        let mut visit = |at: usize| {
            if matcher.matches(self, at) {
                each(at);
            }
        };
        match &matcher.rows {
            Some(rows) => rows.iter().for_each(|&at| visit(at as usize)),
            None => (0..self.created_at.len()).for_each(visit),
        }
    }

    /// The group `at` falls in, as a number below [`CustomerIndex::group_count`]: a dictionary
    /// string's, then the severities', then "no site".
    fn group_of(&self, group: GroupBy, at: usize) -> usize {
        let strings = self.dictionary.strings.len();
        match group {
            GroupBy::Severity => strings + usize::from(self.severity[at]),
            GroupBy::Type => self.fault_type[at] as usize,
            GroupBy::Resource => self.resource[at] as usize,
            GroupBy::Site => match self.site[at] {
                NO_SITE => strings + Severity::ALL.len(),
                site => site as usize,
            },
        }
    }

    fn group_count(&self) -> usize {
        self.dictionary.strings.len() + Severity::ALL.len() + 1
    }

    /// The name of group number `n` (`""` for "no site", as SQL's `COALESCE(site_id, '')`).
    fn group_name(&self, n: usize) -> &str {
        match n.checked_sub(self.dictionary.strings.len()) {
            None => self.dictionary.get(n as Sym),
            Some(severity) => Severity::ALL.get(severity).map_or("", |s| s.as_str()),
        }
    }

    /// As [`crate::analytics::top_groups`]: `(group, count)`, largest first, ties by group
    /// in byte order, at most `limit`.
    pub fn top_groups(
        &self,
        filter: &FaultFilter,
        group: GroupBy,
        limit: u32,
        now: Micros,
    ) -> Vec<(String, i64)> {
        let matcher = self.matcher(filter, now);
        let mut counts = vec![0i64; self.group_count()];
        self.for_each(&matcher, |at| counts[self.group_of(group, at)] += 1);
        let mut named: Vec<(&str, i64)> = counts
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(g, &n)| (self.group_name(g), n))
            .collect();
        named.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        named.into_iter().take(limit as usize).map(|(g, n)| (g.to_owned(), n)).collect()
    }

    /// As [`crate::analytics::counts_by_slot`]: `(slot, group, count)` of the matching
    /// faults, in no particular order.
    pub fn counts_by_slot(
        &self,
        filter: &FaultFilter,
        slots: Slots,
        group: Option<(GroupBy, &[String], &str)>,
        now: Micros,
    ) -> Vec<(i64, String, i64)> {
        let matcher = self.matcher(filter, now);
        // Each row's label: 0 for "no group" or `other`, 1 + i for the i-th listed group,
        // looked up by group number.
        let (labels, label_of_group): (Vec<String>, Vec<u32>) = match group {
            None => (vec![String::new()], Vec::new()),
            Some((_, listed, other)) => {
                let labels = std::iter::once(other.to_owned()).chain(listed.iter().cloned()).collect();
                let label = |name: &str| listed.iter().position(|l| l == name).map(|i| i as u32 + 1);
                // As SQL, where `other` named like a listed group counts as that group.
                let other = label(other).unwrap_or(0);
                let label_of_group =
                    (0..self.group_count()).map(|g| label(self.group_name(g)).unwrap_or(other)).collect();
                (labels, label_of_group)
            }
        };
        let label = |at: usize| match group {
            None => 0,
            Some((g, _, _)) => label_of_group[self.group_of(g, at)] as usize,
        };
        let width = slots.slot_micros.max(1);
        // As SQL's integer division: towards zero.
        let slot_of = |at: usize| (self.created_at[at] - slots.origin) / width;
        let mut counts: HashMap<(i64, usize), i64> = HashMap::default();
        // Counted in place when the window's slots are known and few enough.
        let span = (matcher.from >= slots.origin && matcher.to < i64::MAX)
            .then(|| (matcher.to - slots.origin) / width + 1)
            .filter(|&n| n > 0 && n.saturating_mul(labels.len() as i64) <= 1 << 22);
        match span {
            Some(n) => {
                let mut dense = vec![0i64; n as usize * labels.len()];
                self.for_each(&matcher, |at| dense[slot_of(at) as usize * labels.len() + label(at)] += 1);
                for (i, &count) in dense.iter().enumerate().filter(|&(_, &c)| c > 0) {
                    counts.insert(((i / labels.len()) as i64, i % labels.len()), count);
                }
            }
            None => self.for_each(&matcher, |at| *counts.entry((slot_of(at), label(at))).or_default() += 1),
        }
        counts.into_iter().map(|((slot, label), n)| (slot, labels[label].clone(), n)).collect()
    }

    /// As [`crate::analytics::repair_times`]: `resolved_at - created_at` of the matching
    /// resolved faults.
    pub fn repair_times(&self, filter: &FaultFilter, now: Micros) -> Vec<i64> {
        let matcher = self.matcher(filter, now);
        let mut times = Vec::new();
        self.for_each(&matcher, |at| {
            if self.resolved[at] && self.resolved_at[at] != UNRESOLVED {
                times.push(self.resolved_at[at] - self.created_at[at]);
            }
        });
        times
    }

    /// As [`crate::analytics::count_open`].
    pub fn count_open(&self, filter: &FaultFilter, now: Micros) -> i64 {
        let matcher = self.matcher(filter, now);
        let mut open = 0;
        self.for_each(&matcher, |at| open += i64::from(!self.resolved[at]));
        open
    }

    /// As [`crate::analytics::site_outages`]: `(site, start, end)` of the `site`-type faults
    /// matching `filter` (but its window) that overlap `[from, to)`.
    pub fn site_outages(
        &self,
        filter: &FaultFilter,
        from: Micros,
        to: Micros,
    ) -> Vec<(String, i64, Option<i64>)> {
        let site_faults =
            FaultFilter { from: None, to: None, types: vec!["site".to_owned()], ..filter.clone() };
        let matcher = self.matcher(&site_faults, 0);
        let mut outages = Vec::new();
        self.for_each(&matcher, |at| {
            let (start, end) = (self.created_at[at], self.resolved_at[at]);
            if start < to && (end == UNRESOLVED || end > from) {
                let site = match self.site[at] {
                    NO_SITE => self.resource[at],
                    site => site,
                };
                outages.push((
                    self.dictionary.get(site).to_owned(),
                    start,
                    (end != UNRESOLVED).then_some(end),
                ));
            }
        });
        outages
    }
}

#[derive(Debug, Clone, Copy)]
enum Column {
    Type,
    Resource,
    Microservice,
}

/// The strings matching a list of sites: `paths[n]` for dictionary string `n` read as a path.
#[derive(Debug)]
struct SiteSet {
    paths: Vec<bool>,
    resources: Vec<Sym>,
}

/// A filter compiled against one index's dictionary.
#[derive(Debug)]
struct Matcher {
    from: i64,
    to: i64,
    /// A bit per `Severity::ALL` index.
    severities: u8,
    /// `Some(true)`: resolved ones only; `Some(false)`: unresolved ones only.
    resolved: Option<bool>,
    /// `recent=true`: unresolved, or created at or after this.
    recent_since: Option<i64>,
    /// Each column's value must be one of its list (an empty list matches nothing).
    sym_lists: Vec<(Column, Vec<Sym>)>,
    /// Each set must match the row's ancestry path or resource.
    site_sets: Vec<SiteSet>,
    /// `q=`: the dictionary strings holding the text; the message or the cause must be one.
    text: Option<Vec<bool>>,
    /// Only these rows (an access token's fault ids).
    rows: Option<Vec<u32>>,
}

impl Matcher {
    fn matches(&self, index: &CustomerIndex, at: usize) -> bool {
        let created_at = index.created_at[at];
        if created_at == FREE || created_at < self.from || created_at >= self.to {
            return false;
        }
        let severity = index.severity[at];
        if severity >= 8 || self.severities & (1 << severity) == 0 {
            return false;
        }
        let resolved = index.resolved[at];
        if self.resolved.is_some_and(|r| r != resolved) {
            return false;
        }
        if self.recent_since.is_some_and(|since| resolved && created_at < since) {
            return false;
        }
        for (column, symbols) in &self.sym_lists {
            let value = match column {
                Column::Type => index.fault_type[at],
                Column::Resource => index.resource[at],
                Column::Microservice => index.microservice[at],
            };
            if !symbols.contains(&value) {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let holds = |sym: Sym| text.get(sym as usize).copied().unwrap_or(false);
            if !holds(index.message[at]) && !holds(index.cause[at]) {
                return false;
            }
        }
        self.site_sets.iter().all(|set| {
            set.paths.get(index.path[at] as usize).copied().unwrap_or(false)
                || set.resources.contains(&index.resource[at])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(
        id: &'a str,
        created_at: i64,
        resolved_at: Option<i64>,
        severity: &'a str,
        path: &'a str,
    ) -> IndexRow<'a> {
        IndexRow {
            id,
            created_at,
            resolved_at,
            status: if resolved_at.is_some() { "resolved" } else { "unresolved" },
            severity,
            fault_type: "wantunnel",
            site_id: path.split('|').find(|e| e.starts_with("site_")),
            resource_id: path.rsplit('|').next().unwrap(),
            microservice_id: "m",
            resource_ancestry_path: path,
            message: "Tunnel down",
            cause: "",
        }
    }

    #[test]
    fn a_removed_fault_leaves_every_figure_and_its_row_is_reused() {
        let mut index = CustomerIndex::default();
        index.upsert(&row("a", 10, Some(40), "HIGH", "site_1|dev|tun_1"));
        index.upsert(&row("b", 20, None, "LOW", "site_2|tun_2"));
        let all = FaultFilter::default();
        assert_eq!(index.count_open(&all, 0), 1);
        assert_eq!(index.repair_times(&all, 0), vec![30]);
        index.apply(&["a".to_owned()], &[], 7);
        assert_eq!(index.applied_seq, 7);
        assert!(index.repair_times(&all, 0).is_empty());
        assert_eq!(index.len(), 1);
        index.upsert(&row("c", 30, None, "HIGH", "site_1|tun_3"));
        assert_eq!(index.created_at.len(), 2, "the freed row was reused");
        let site_1 = FaultFilter { sites: vec!["site_1".to_owned()], ..FaultFilter::default() };
        assert_eq!(index.count_open(&site_1, 0), 1);
        let by_site = index.top_groups(&all, GroupBy::Site, 10, 0);
        assert_eq!(by_site, vec![("site_1".to_owned(), 1), ("site_2".to_owned(), 1)]);
    }

    #[test]
    fn strings_of_removed_faults_do_not_pile_up() {
        // 100 faults alive at a time, each replaced in turn by one with a message of its own,
        // 20,000 times: the dictionary keeps to about twice the strings in use (plus 4,096).
        let mut index = CustomerIndex::default();
        let name = |n: usize| (format!("flt_{n}"), format!("message {n}"));
        let mut largest = 0;
        for n in 0..20_100 {
            let (id, message) = name(n);
            let new = IndexRow { message: &message, ..row(&id, n as i64, None, "HIGH", "site_1|tun_1") };
            let gone: Vec<String> = n.checked_sub(100).map(|old| name(old).0).into_iter().collect();
            index.apply(&gone, &[new], n as i64);
            largest = largest.max(index.dictionary.strings.len());
        }
        assert_eq!(index.len(), 100);
        assert!(largest <= 2 * 110 + 4_097, "the dictionary reached {largest} strings");
        let last = FaultFilter { text: Some("message 20099".to_owned()), ..FaultFilter::default() };
        assert_eq!(index.count_open(&last, 0), 1);
        let first = FaultFilter { text: Some("message 19999".to_owned()), ..FaultFilter::default() };
        assert_eq!(index.count_open(&first, 0), 0, "replaced");
        assert_eq!(
            index.top_groups(&FaultFilter::default(), GroupBy::Site, 5, 0),
            vec![("site_1".to_owned(), 100)]
        );
    }

    #[test]
    fn free_text_folds_ascii_letters_as_sqlite_does() {
        let mut index = CustomerIndex::default();
        index.upsert(&IndexRow { message: "Tunnel DOWN at ZÜRICH", ..row("a", 10, None, "HIGH", "site_1") });
        index.upsert(&IndexRow {
            message: "Rebooted",
            cause: "état 50%",
            ..row("b", 10, None, "HIGH", "site_1")
        });
        let count = |q: &str| {
            index.count_open(&FaultFilter { text: Some(q.to_owned()), ..FaultFilter::default() }, 0)
        };
        assert_eq!(count("down"), 1);
        assert_eq!(count("N AT z"), 1);
        assert_eq!(count("zürich"), 0, "SQLite's lower() leaves Ü as it is");
        assert_eq!(count("ÉTAT"), 1, "the text is folded in full");
        assert_eq!(count("50%"), 1);
        assert_eq!(count("5_%"), 0, "LIKE's wildcards are escaped");
    }
}
