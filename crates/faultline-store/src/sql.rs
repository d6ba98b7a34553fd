//! SQL text shared by both backends. Both accept `$N` placeholders, row-value comparisons
//! and `UNION ALL` of ordered subqueries, so the fault queries are written once here and each
//! backend only binds and runs them.

use faultline_core::cursor::Position;
use faultline_core::fault::{Fault, FaultStatus};
use faultline_core::filter::{FaultFilter, RECENT_WINDOW_MICROS};
use faultline_core::scope::TokenScope;
use faultline_core::time::Micros;

use std::sync::LazyLock;

use crate::Backend;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    OptInt(Option<i64>),
    OptText(Option<String>),
    Blob(Vec<u8>),
}

impl From<&str> for Param {
    fn from(v: &str) -> Param {
        Param::Text(v.to_owned())
    }
}
impl From<&String> for Param {
    fn from(v: &String) -> Param {
        Param::Text(v.clone())
    }
}
impl From<String> for Param {
    fn from(v: String) -> Param {
        Param::Text(v)
    }
}
impl From<i64> for Param {
    fn from(v: i64) -> Param {
        Param::Int(v)
    }
}
impl From<bool> for Param {
    fn from(v: bool) -> Param {
        Param::Int(i64::from(v))
    }
}
impl From<u32> for Param {
    fn from(v: u32) -> Param {
        Param::Int(i64::from(v))
    }
}
impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Param {
        Param::OptInt(v)
    }
}
impl From<Option<&str>> for Param {
    fn from(v: Option<&str>) -> Param {
        Param::OptText(v.map(str::to_owned))
    }
}
impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Param {
        Param::OptText(v)
    }
}
impl From<&[u8]> for Param {
    fn from(v: &[u8]) -> Param {
        Param::Blob(v.to_vec())
    }
}

/// A statement and its parameters, in placeholder order.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Param>,
    /// Whether the driver keeps the statement prepared for the next run (the default).
    pub cache_plan: bool,
    /// [`Sql::positional`], made once.
    positional: std::sync::OnceLock<(String, Vec<usize>)>,
}

impl Default for Sql {
    fn default() -> Sql {
        Sql::new(String::new(), Vec::new())
    }
}

/// The statement `text`, its parameters added with [`Sql::arg`].
pub(crate) fn query(text: impl Into<String>) -> Sql {
    Sql::new(text, Vec::new())
}

impl Sql {
    pub fn new(text: impl Into<String>, params: Vec<Param>) -> Sql {
        Sql { text: text.into(), params, cache_plan: true, positional: std::sync::OnceLock::new() }
    }

    /// The statement with `value` as its next parameter.
    pub fn arg(mut self, value: impl Into<Param>) -> Sql {
        self.params.push(value.into());
        self
    }

    /// The statement, prepared again each time it runs when `cache` is false.
    pub fn cache_plan(mut self, cache: bool) -> Sql {
        self.cache_plan = cache;
        self
    }

    /// The statement with anonymous `?` placeholders, in the order they appear, and for each
    /// the index of its parameter (a `$N` used twice appears twice). SQLite binds these in
    /// constant time, where it finds each `$N` by a linear scan of the statement's names: a
    /// statement of P named parameters costs O(P²) to bind, and a multi-row insert has hundreds.
    pub fn positional(&self) -> &(String, Vec<usize>) {
        self.positional.get_or_init(|| {
            let (text, bytes) = (&self.text, self.text.as_bytes());
            let mut out = String::with_capacity(text.len());
            let mut order = Vec::with_capacity(self.params.len());
            let (mut copied, mut i, mut quoted) = (0, 0, false);
            while i < bytes.len() {
                match bytes[i] {
                    b'\'' => quoted = !quoted,
                    b'$' if !quoted && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                        let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
                        let n: usize = text[i + 1..i + 1 + digits].parse().unwrap_or(0);
                        out.push_str(&text[copied..i]);
                        out.push('?');
                        order.push(n.saturating_sub(1));
                        i += 1 + digits;
                        copied = i;
                        continue;
                    }
                    _ => {}
                }
                i += 1;
            }
            out.push_str(&text[copied..]);
            (out, order)
        })
    }

    /// Add a parameter; returns its placeholder.
    pub fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    pub fn text(&mut self, value: &str) -> String {
        self.bind(Param::Text(value.to_owned()))
    }

    pub fn int(&mut self, value: i64) -> String {
        self.bind(Param::Int(value))
    }

    pub(crate) fn list(&mut self, values: impl IntoIterator<Item = String>) -> String {
        let placeholders: Vec<String> = values.into_iter().map(|v| self.bind(Param::Text(v))).collect();
        placeholders.join(", ")
    }
}

/// The select list of a fault on alias `f`, in the order of [`crate::rows::FAULT_COLUMNS`].
static FAULT_COLUMNS: LazyLock<String> = LazyLock::new(|| crate::rows::fault_column_list("f."));
/// The columns of a fault, unqualified, in the same order (an insert's list, an outer select's).
static FAULT_COLUMN_NAMES: LazyLock<String> = LazyLock::new(|| crate::rows::fault_column_list(""));

/// A page of faults: the filter, the position after which to start, and how many rows.
#[derive(Debug, Clone)]
pub struct FaultQuery<'a> {
    pub filter: &'a FaultFilter,
    pub after: Option<&'a Position>,
    pub limit: u32,
    /// The clock `recent` is measured against.
    pub now: Micros,
}

/// The conditions of `filter` on alias `f`, except `recent` and `sites` (which shape the FROM);
/// `customer` is the placeholder of the customer id.
pub(crate) fn filter_conditions(sql: &mut Sql, filter: &FaultFilter, customer: &str) -> Vec<String> {
    let mut conditions = Vec::new();
    if let Some(from) = filter.from {
        conditions.push(format!("f.created_at >= {}", sql.int(from)));
    }
    if let Some(to) = filter.to {
        conditions.push(format!("f.created_at < {}", sql.int(to)));
    }
    let mut in_list = |column: &str, values: Vec<String>| {
        if !values.is_empty() {
            let list = sql.list(values);
            conditions.push(format!("{column} IN ({list})"));
        }
    };
    in_list("f.severity", filter.severities.iter().map(|s| s.as_str().to_owned()).collect());
    in_list("f.status", filter.statuses.iter().map(|s| s.as_str().to_owned()).collect());
    in_list("f.type", filter.types.clone());
    in_list("f.resource_id", filter.resource_ids.clone());
    in_list("f.microservice_id", filter.microservice_ids.clone());
    if let Some(text) = &filter.text {
        let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
        let p = sql.text(&pattern);
        // lower() folds ASCII on SQLite and all of Unicode on PostgreSQL.
        conditions
            .push(format!("(lower(f.message) LIKE {p} ESCAPE '\\' OR lower(f.cause) LIKE {p} ESCAPE '\\')"));
    }
    if let Some(scope) = &filter.scope {
        let mut restrict = |column: &str, values: Vec<String>| {
            if !values.is_empty() {
                let list = sql.list(values);
                conditions.push(format!("{column} IN ({list})"));
            }
        };
        restrict("f.resource_id", scope.resource_ids.clone());
        restrict("f.id", scope.fault_ids.clone());
        restrict("f.type", scope.types.clone());
        restrict("f.severity", scope.severity.iter().map(|s| s.as_str().to_owned()).collect());
        if !scope.site_ids.is_empty() {
            let list = sql.list(scope.site_ids.iter().cloned());
            conditions.push(format!(
                "f.id IN (SELECT fault_id FROM fault_ancestors WHERE customer_id = {customer} AND element IN ({list}))"
            ));
        }
    }
    conditions
}

pub(crate) fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// `SELECT` of one fault of `customer_id`, its columns then `derived`: the backend's
/// [`crate::store::derived_columns`] (on the fault's alias `f`), as in [`list_faults`].
pub(crate) fn fault_select(customer_id: &str, fault_id: &str, derived: &str) -> Sql {
    let fault_columns = FAULT_COLUMNS.as_str();
    let params = vec![Param::Text(fault_id.to_owned()), Param::Text(customer_id.to_owned())];
    Sql::new(
        format!("SELECT {fault_columns}, {derived} FROM faults f WHERE f.id = $1 AND f.customer_id = $2"),
        params,
    )
}

/// `SELECT` of one page of faults, newest first, for `customer_id`.
///
/// One site drives the query from the `fault_ancestors` index; `recent` is the union of the
/// unresolved faults and the last day's resolved ones, each read from its own range of
/// `faults_by_status`. SQLite is told so (`INDEXED BY`): left alone, with a `type` filter it
/// read the type's whole history through `faults_by_type` instead of those two short ranges.
///
/// After the fault's columns come `derived`, the backend's [`crate::store::derived_columns`]
/// (comments and site name, on the fault's alias `f`), so a page is one statement.
pub(crate) fn list_faults(customer_id: &str, query: &FaultQuery<'_>, backend: Backend, derived: &str) -> Sql {
    let fault_columns = FAULT_COLUMNS.as_str();
    let fault_column_names = FAULT_COLUMN_NAMES.as_str();
    let derived_names = crate::store::DERIVED_COLUMN_NAMES;
    let extra_column = format!(", {derived}");
    let mut sql = Sql::default();
    let customer = sql.text(customer_id);
    let limit = sql.int(i64::from(query.limit));
    let filter = query.filter;
    let mut common = filter_conditions(&mut sql, filter, &customer);

    // The table that drives the order, and its order columns.
    let (from, order_created, order_id) = match filter.sites.as_slice() {
        [site] => {
            let site = sql.text(site);
            common.push(format!("a.customer_id = {customer}"));
            common.push(format!("a.element = {site}"));
            // Checked on the ancestor row, before the join (`f.severity` is checked again after).
            if !filter.severities.is_empty() {
                let list = sql.list(filter.severities.iter().map(|s| s.as_str().to_owned()));
                common.push(format!("a.severity IN ({list})"));
            }
            let join = match backend {
                // By the integer key: one B-tree search a fault instead of two. The id is
                // checked too: a `seq` is reused once the newest fault is deleted, so an element
                // left behind would otherwise name another fault, perhaps another customer's.
                Backend::Sqlite => {
                    "fault_ancestors a JOIN faults f ON f.seq = a.fault_seq AND f.id = a.fault_id"
                }
                Backend::Postgres => "fault_ancestors a JOIN faults f ON f.id = a.fault_id",
            };
            (join, "a.created_at", "a.fault_id")
        }
        sites => {
            common.push(format!("f.customer_id = {customer}"));
            if !sites.is_empty() {
                let list = sql.list(sites.iter().cloned());
                common.push(format!(
                    "f.id IN (SELECT fault_id FROM fault_ancestors WHERE customer_id = {customer} AND element IN ({list}))"
                ));
            }
            ("faults f", "f.created_at", "f.id")
        }
    };
    if let Some(after) = query.after {
        let (c, i) = (sql.int(after.created_at), sql.text(&after.id));
        common.push(format!("({order_created}, {order_id}) < ({c}, {i})"));
    }
    let order = format!("ORDER BY {order_created} DESC, {order_id} DESC");
    let branch = |from: &str, extra: &[String]| {
        let conditions: Vec<&str> = common.iter().chain(extra).map(String::as_str).collect();
        format!(
            "SELECT {fault_columns}{extra_column} FROM {from} WHERE {} {order} LIMIT {limit}",
            conditions.join(" AND ")
        )
    };
    let by_status = match (backend, from) {
        (Backend::Sqlite, "faults f") => "faults f INDEXED BY faults_by_status",
        _ => from,
    };

    sql.text = if filter.recent {
        let wants = |s: FaultStatus| filter.statuses.is_empty() || filter.statuses.contains(&s);
        let since = sql.int(query.now - RECENT_WINDOW_MICROS);
        let mut branches = Vec::new();
        if wants(FaultStatus::Unresolved) {
            branches.push(branch(by_status, &["f.status = 'unresolved'".to_owned()]));
        }
        if wants(FaultStatus::Resolved) {
            branches.push(branch(
                by_status,
                &["f.status = 'resolved'".to_owned(), format!("f.created_at >= {since}")],
            ));
        }
        if branches.is_empty() {
            // Asked for recent faults of no status: nothing.
            format!("SELECT {fault_columns}{extra_column} FROM faults f WHERE 1 = 0")
        } else {
            let parts: Vec<String> =
                branches.iter().enumerate().map(|(n, b)| format!("SELECT * FROM ({b}) AS b{n}")).collect();
            format!(
                "SELECT {fault_column_names}, {derived_names} FROM ({}) AS u ORDER BY created_at DESC, id DESC LIMIT {limit}",
                parts.join(" UNION ALL ")
            )
        }
    } else {
        branch(from, &[])
    };
    sql
}

/// What [`crate::Store::top_resources`] ranks: the faults created in a window, within a scope.
#[derive(Debug, Clone)]
pub struct TopQuery<'a> {
    /// Faults created at or after this time count.
    pub since: Micros,
    /// An access token's scope: only the faults it may read count.
    pub scope: Option<&'a TokenScope>,
    /// How many resources, at most.
    pub limit: u32,
    /// How many of each resource's newest faults (in the window and scope) come with it.
    pub sample: u32,
}

/// The conditions selecting the faults `query` counts, on alias `f`.
fn top_window(sql: &mut Sql, customer_id: &str, query: &TopQuery<'_>) -> Vec<String> {
    let customer = sql.text(customer_id);
    let filter =
        FaultFilter { from: Some(query.since), scope: query.scope.cloned(), ..FaultFilter::default() };
    let mut conditions = vec![format!("f.customer_id = {customer}")];
    conditions.extend(filter_conditions(sql, &filter, &customer));
    conditions
}

/// `(resource_id, count)` of the resources with the most faults in the window, most first,
/// ties by resource id in byte order (each backend names its binary collation).
///
/// The window is one range of `faults_by_customer (customer_id, created_at DESC, id DESC)`,
/// grouped in a temporary table: the work grows with the faults in the window, never with the
/// customer's whole history. `EXPLAIN` on 300,000 demo faults (one customer, 16,375 in the
/// last 14 days):
///
/// - SQLite: `SEARCH f USING INDEX faults_by_customer (customer_id=? AND created_at>?)`, `USE
///   TEMP B-TREE FOR GROUP BY`, `USE TEMP B-TREE FOR ORDER BY`. Left to itself SQLite prefers
///   `SEARCH f USING COVERING INDEX faults_by_resource (customer_id=?)`, which saves the GROUP
///   BY sort but reads every fault the customer ever had (300,000 index entries instead of
///   16,375), so the statement names its index (`INDEXED BY`, which also fails loudly, rather
///   than scanning, should the index ever go).
/// - PostgreSQL: `Index Scan using faults_by_customer` (`customer_id = $1 AND created_at >=
///   $2`) → `HashAggregate` → top-N `Sort`. PostgreSQL chooses by its statistics: when the
///   window holds most of a customer's faults (a 90-day window on a young database) a
///   sequential scan is cheaper, and it takes one.
pub(crate) fn top_resource_counts(customer_id: &str, query: &TopQuery<'_>, backend: Backend) -> Sql {
    let (index, byte_order) = match backend {
        Backend::Sqlite => ("INDEXED BY faults_by_customer", "BINARY"),
        Backend::Postgres => ("", "\"C\""),
    };
    let mut sql = Sql::default();
    let conditions = top_window(&mut sql, customer_id, query);
    let limit = sql.int(i64::from(query.limit));
    sql.text = format!(
        "SELECT f.resource_id, COUNT(*) AS fault_count FROM faults f {index} WHERE {} \
         GROUP BY f.resource_id ORDER BY fault_count DESC, f.resource_id COLLATE {byte_order} LIMIT {limit}",
        conditions.join(" AND ")
    );
    sql
}

/// The newest `query.sample` faults in the window and scope of each of `resource_ids`: one
/// range of `faults_by_resource (customer_id, resource_id, created_at DESC, id DESC)` each, in
/// one statement. Rows come in no particular order.
pub(crate) fn latest_faults_of(
    customer_id: &str,
    query: &TopQuery<'_>,
    resource_ids: &[String],
    derived: &str,
) -> Sql {
    let fault_columns = FAULT_COLUMNS.as_str();
    let mut sql = Sql::default();
    let conditions = top_window(&mut sql, customer_id, query).join(" AND ");
    let sample = sql.int(i64::from(query.sample));
    let branches: Vec<String> = resource_ids
        .iter()
        .enumerate()
        .map(|(n, resource_id)| {
            let resource = sql.text(resource_id);
            format!(
                "SELECT * FROM (SELECT {fault_columns}, {derived} FROM faults f WHERE {conditions} AND f.resource_id = {resource} \
                 ORDER BY f.created_at DESC, f.id DESC LIMIT {sample}) AS b{n}"
            )
        })
        .collect();
    sql.text = if branches.is_empty() {
        format!("SELECT {fault_columns}, {derived} FROM faults f WHERE 1 = 0")
    } else {
        branches.join(" UNION ALL ")
    };
    sql
}

/// The rows of a minted token and its short link.
pub(crate) fn insert_access_token(
    token: &crate::model::AccessToken,
    short_code: &str,
) -> Result<Vec<Sql>, crate::error::StoreError> {
    let scope =
        serde_json::to_string(&token.scope).map_err(|e| crate::error::StoreError::Corrupt(e.to_string()))?;
    let mut row = Sql::new(crate::rows::INSERT_ACCESS_TOKEN, Vec::new());
    for value in [&token.id, &token.customer_id, &token.kid, &token.label, &scope, &token.created_by] {
        row.params.push(Param::Text(value.clone()));
    }
    row.params.extend([Param::Int(token.created_at), Param::Int(token.expires_at)]);
    let link = Sql::new(
        "INSERT INTO short_links (code, token_id, expires_at) VALUES ($1, $2, $3)",
        vec![Param::Text(short_code.to_owned()), Param::Text(token.id.clone()), Param::Int(token.expires_at)],
    );
    // The mint in the event log: once on the token's own id, and on the timeline of each fault
    // the scope names (those faults were shared).
    let detail = serde_json::json!({"token_id": token.id, "expires_at": token.expires_at}).to_string();
    let mut statements = vec![row, link];
    for subject in std::iter::once(&token.id).chain(&token.scope.fault_ids) {
        statements.push(Sql::new(
            crate::rows::INSERT_EVENT,
            vec![
                Param::Text(token.customer_id.clone()),
                Param::Text(subject.clone()),
                Param::Text("token_minted".to_owned()),
                Param::Text(token.created_by.clone()),
                Param::Int(token.created_at),
                Param::Text(detail.clone()),
            ],
        ));
    }
    Ok(statements)
}

/// For each id list of `scope`: how many distinct ids it names, and the statement counting how
/// many of them belong to the customer.
pub(crate) fn scope_id_counts(customer_id: &str, scope: &TokenScope) -> Vec<(i64, Sql)> {
    let lists = [
        ("SELECT COUNT(*) FROM faults WHERE customer_id = {c} AND id IN ({l})", &scope.fault_ids),
        (
            "SELECT COUNT(DISTINCT resource_id) FROM faults WHERE customer_id = {c} AND resource_id IN ({l})",
            &scope.resource_ids,
        ),
        (
            "SELECT COUNT(DISTINCT element) FROM fault_ancestors WHERE customer_id = {c} AND element IN ({l})",
            &scope.site_ids,
        ),
    ];
    lists
        .into_iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(template, ids)| {
            let mut sql = Sql::default();
            let c = sql.text(customer_id);
            let l = sql.list(ids.iter().cloned());
            sql.text = template.replace("{c}", &c).replace("{l}", &l);
            (ids.len() as i64, sql)
        })
        .collect()
}

/// Multi-row `INSERT`s for `faults` and their ancestry elements and `created` events, in
/// chunks that stay under both backends' parameter limits.
pub(crate) fn insert_faults(faults: &[Fault], actor: &str, backend: Backend) -> Vec<Sql> {
    let mut statements = insert_fault_rows(faults, None);
    statements.extend(insert_fault_extras(faults, actor, backend));
    statements
}

/// `INSERT`s of the fault rows alone. With `open_keys` (one per fault), each open row claims its
/// key and a conflicting row is skipped (`ON CONFLICT DO NOTHING`), so an insert of one fault
/// affects no row when another open fault holds the key.
pub(crate) fn insert_fault_rows(faults: &[Fault], open_keys: Option<&[String]>) -> Vec<Sql> {
    let fault_column_names = FAULT_COLUMN_NAMES.as_str();
    // Small statements: the size dates from when SQLite bound each `$N` by name, found by a
    // linear scan of the statement's parameter names, so a statement with P parameters cost
    // O(P²) to bind. SQLite's statements are now bound by position ([`Sql::positional`]), which
    // removes that cost; the size has not been chosen again since.
    const FAULTS_PER_STATEMENT: usize = 25;
    let mut statements = Vec::new();
    let open_key = open_keys.is_some();
    for (n, chunk) in faults.chunks(FAULTS_PER_STATEMENT).enumerate() {
        let mut sql = Sql::default();
        let rows: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut values: Vec<String> =
                    crate::rows::FAULT_COLUMNS.iter().map(|column| sql.bind((column.value)(f))).collect();
                if let Some(keys) = open_keys {
                    // Only an open fault holds its key.
                    let key = &keys[n * FAULTS_PER_STATEMENT + i];
                    let key = (f.status == FaultStatus::Unresolved).then(|| key.clone());
                    values.push(sql.bind(Param::OptText(key)));
                }
                format!("({})", values.join(", "))
            })
            .collect();
        sql.text = if open_key {
            format!(
                "INSERT INTO faults ({fault_column_names}, open_key) VALUES {} \
                 ON CONFLICT (customer_id, open_key) WHERE open_key IS NOT NULL DO NOTHING",
                rows.join(", ")
            )
        } else {
            format!("INSERT INTO faults ({fault_column_names}) VALUES {}", rows.join(", "))
        };
        statements.push(sql);
    }
    statements
}

/// `INSERT`s of what comes with new faults (after their rows): ancestry elements and
/// `created` events.
pub(crate) fn insert_fault_extras(faults: &[Fault], actor: &str, backend: Backend) -> Vec<Sql> {
    let mut statements = insert_ancestors(faults, backend);
    let created: Vec<LogEntry<'_>> = faults
        .iter()
        .map(|f| LogEntry {
            customer_id: &f.customer_id,
            fault_id: &f.id,
            kind: "created",
            at: f.created_at,
            detail: None,
        })
        .collect();
    statements.extend(insert_log(actor, &created));
    statements
}

/// `INSERT`s of the ancestry elements of new faults, after the faults' rows. On SQLite each
/// element also carries its fault's `seq`, by which a page of `site=…` reads the fault (one
/// B-tree search instead of two); the lookup finds the row just inserted, and fails the
/// statement (`fault_seq` is NOT NULL) if there is none.
pub(crate) fn insert_ancestors(faults: &[Fault], backend: Backend) -> Vec<Sql> {
    const ELEMENTS_PER_STATEMENT: usize = 100;
    let mut statements = Vec::new();
    let elements: Vec<(&Fault, String)> =
        faults.iter().flat_map(|f| f.ancestry_elements().into_iter().map(move |e| (f, e))).collect();
    for chunk in elements.chunks(ELEMENTS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let rows: Vec<String> = chunk
            .iter()
            .map(|(f, element)| {
                let (customer, element) = (sql.text(&f.customer_id), sql.text(element));
                let (created_at, id) = (sql.int(f.created_at), sql.text(&f.id));
                let severity = sql.text(f.severity.as_str());
                match backend {
                    Backend::Sqlite => format!(
                        "({customer}, {element}, {created_at}, {id}, {severity}, (SELECT seq FROM faults WHERE id = {id}))"
                    ),
                    Backend::Postgres => format!("({customer}, {element}, {created_at}, {id}, {severity})"),
                }
            })
            .collect();
        let seq = match backend {
            Backend::Sqlite => ", fault_seq",
            Backend::Postgres => "",
        };
        sql.text = format!(
            "INSERT INTO fault_ancestors (customer_id, element, created_at, fault_id, severity{seq}) VALUES {}",
            rows.join(", ")
        );
        statements.push(sql);
    }
    statements
}

/// `DELETE` of a removed fault's ancestry elements. They are found by their key: the table
/// has no index by fault and no foreign key (each would cost the ingest a B-tree insert or
/// lookup per element it writes), so whatever deletes a fault deletes them.
pub(crate) fn delete_ancestors(removed: &crate::rows::RemovedRow) -> Sql {
    let (fault_id, customer_id, resource_id, _, _, path, created_at) = removed;
    let mut sql = Sql::default();
    let customer = sql.text(customer_id);
    let elements = sql.list(faultline_core::fault::ancestry_elements(resource_id, path));
    let (created_at, fault_id) = (sql.int(*created_at), sql.text(fault_id));
    sql.text = format!(
        "DELETE FROM fault_ancestors WHERE customer_id = {customer} AND element IN ({elements}) \
         AND created_at = {created_at} AND fault_id = {fault_id}"
    );
    sql
}

/// One entry of the event log, without details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogEntry<'a> {
    pub customer_id: &'a str,
    pub fault_id: &'a str,
    pub kind: &'static str,
    pub at: Micros,
    /// The entry's detail, a JSON object (`{}` when `None`).
    pub detail: Option<&'a str>,
}

/// `INSERT`s appending `entries` to the event log, in order, by `actor`.
pub(crate) fn insert_log(actor: &str, entries: &[LogEntry<'_>]) -> Vec<Sql> {
    const EVENTS_PER_STATEMENT: usize = 100;
    let mut statements = Vec::new();
    for chunk in entries.chunks(EVENTS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let (actor, empty) = (sql.text(actor), sql.text("{}"));
        let rows: Vec<String> = chunk
            .iter()
            .map(|e| {
                let customer = sql.text(e.customer_id);
                let (id, kind, at) = (sql.text(e.fault_id), sql.text(e.kind), sql.int(e.at));
                let detail = e.detail.map_or_else(|| empty.clone(), |detail| sql.text(detail));
                format!("({customer}, {id}, {kind}, {actor}, {at}, {detail})")
            })
            .collect();
        sql.text = format!(
            "INSERT INTO fault_events (customer_id, fault_id, kind, actor, at, detail) VALUES {}",
            rows.join(", ")
        );
        statements.push(sql);
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }

    #[test]
    fn placeholders_match_parameters() {
        let filter = FaultFilter {
            severities: vec![faultline_core::fault::Severity::High],
            sites: vec!["site_1".into()],
            recent: true,
            text: Some("down".into()),
            ..FaultFilter::default()
        };
        let after = Position { created_at: 5, id: "flt_x".into() };
        let q = FaultQuery { filter: &filter, after: Some(&after), limit: 51, now: 1_000 };
        let sql = list_faults("cus_1", &q, Backend::Sqlite, "NULL");
        let highest = (1..=sql.params.len()).rev().find(|n| sql.text.contains(&format!("${n}"))).unwrap();
        assert_eq!(highest, sql.params.len(), "{}", sql.text);
        assert!(sql.text.contains("UNION ALL") && sql.text.contains("fault_ancestors a"));
        assert!(!sql.text.contains("INDEXED BY"), "one site drives the query from its ancestors");
    }

    #[test]
    fn positional_form_repeats_reused_parameters_in_order() {
        let mut sql = Sql::default();
        let (a, b) = (sql.text("a"), sql.int(7));
        sql.text =
            format!("SELECT '$1 stays', {b}, {a} WHERE x = {b} AND y LIKE '%$' ESCAPE '\\' AND z = {a}");
        let (text, order) = sql.positional();
        assert_eq!(text, "SELECT '$1 stays', ?, ? WHERE x = ? AND y LIKE '%$' ESCAPE '\\' AND z = ?");
        assert_eq!(order, &[1, 0, 1, 0]);
    }

    #[test]
    fn recent_lists_read_the_status_index_on_sqlite() {
        let filter = FaultFilter { types: vec!["wantunnel".into()], recent: true, ..FaultFilter::default() };
        let q = FaultQuery { filter: &filter, after: None, limit: 51, now: 1_000 };
        let sqlite = list_faults("cus_1", &q, Backend::Sqlite, "NULL").text;
        assert_eq!(sqlite.matches("INDEXED BY faults_by_status").count(), 2, "{sqlite}");
        assert!(!list_faults("cus_1", &q, Backend::Postgres, "NULL").text.contains("INDEXED BY"));
        let plain = FaultFilter { recent: false, ..filter.clone() };
        let q = FaultQuery { filter: &plain, after: None, limit: 51, now: 1_000 };
        assert!(!list_faults("cus_1", &q, Backend::Sqlite, "NULL").text.contains("INDEXED BY"));
    }

    #[test]
    fn top_statements_bind_every_placeholder() {
        let scope = TokenScope {
            site_ids: vec!["site_1".into()],
            types: vec!["wantunnel".into()],
            ..TokenScope::default()
        };
        let query = TopQuery { since: 5, scope: Some(&scope), limit: 10, sample: 5 };
        let resources = ["tun_1".to_owned(), "tun_2".to_owned()];
        for sql in [
            top_resource_counts("cus_1", &query, Backend::Sqlite),
            top_resource_counts("cus_1", &query, Backend::Postgres),
            latest_faults_of("cus_1", &query, &resources, "NULL AS comments, NULL AS site_name"),
        ] {
            let highest = (1..=sql.params.len()).rev().find(|n| sql.text.contains(&format!("${n}"))).unwrap();
            assert_eq!(highest, sql.params.len(), "{}", sql.text);
        }
        let sqlite = top_resource_counts("cus_1", &query, Backend::Sqlite).text;
        assert!(sqlite.contains("INDEXED BY faults_by_customer"), "{sqlite}");
        let postgres = top_resource_counts("cus_1", &query, Backend::Postgres).text;
        assert!(!postgres.contains("INDEXED BY") && postgres.contains("COLLATE \"C\""), "{postgres}");
        let latest = latest_faults_of("cus_1", &query, &resources, "NULL AS comments, NULL AS site_name");
        assert_eq!(latest.text.matches("UNION ALL").count(), 1);
    }
}
