//! Sites as operators see them: their names, status, and open faults (`GET/PUT /sites`).
//! Heartbeats create and refresh sites (`heartbeats.rs`); this reads them and names them.

use async_trait::async_trait;

use crate::db::{Conn, Database, FromRow, FromValue, Read, Row};
use crate::sql::{Sql, escape_like, query};
use crate::store::SqlStore;
use crate::{Backend, Site, SiteQuery, StoreResult};

/// A customer's sites.
#[async_trait]
pub trait Sites: Send + Sync {
    /// A page of the customer's sites, by label (name, else id) then id, after `query.after`.
    async fn list_sites(&self, customer_id: &str, query: &SiteQuery) -> StoreResult<Vec<Site>>;

    /// One of the customer's sites.
    async fn get_site(&self, customer_id: &str, site_id: &str) -> StoreResult<Option<Site>>;

    /// Name a site (`Some`), or hand its naming back to its heartbeats (`None`); a site never
    /// seen before is created without a heartbeat. The site as it now is.
    async fn set_site_name(
        &self,
        customer_id: &str,
        site_id: &str,
        name: Option<&str>,
        now: i64,
    ) -> StoreResult<Site>;

    /// The names of those of `site_ids` that have one (reports that list sites by id show
    /// their names with this).
    async fn site_names(
        &self,
        customer_id: &str,
        site_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, String>>;

    /// Name many of the customer's sites at once, as [`Sites::set_site_name`] does one
    /// (`faultline demo` names its fleet so), in one transaction.
    async fn name_sites(&self, customer_id: &str, names: &[(String, String)], now: i64) -> StoreResult<()>;
}

/// The columns of a [`Site`] but `open_faults`, in the order [`FromRow`] reads them.
const SITE_COLUMNS: &str =
    "customer_id, site_id, name, named_by_operator, first_seen, last_heartbeat, offline_since";

impl FromRow for Site {
    fn from_row(row: &dyn Row) -> StoreResult<Self> {
        Ok(Site {
            customer_id: FromValue::from_value(row, 0)?,
            site_id: FromValue::from_value(row, 1)?,
            name: FromValue::from_value(row, 2)?,
            named_by_operator: FromValue::from_value(row, 3)?,
            first_seen: FromValue::from_value(row, 4)?,
            last_heartbeat: FromValue::from_value(row, 5)?,
            offline_since: FromValue::from_value(row, 6)?,
            open_faults: 0,
        })
    }
}

/// The label's expression, in the collation of the `sites_by_label` index.
fn label(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "COALESCE(name, site_id)",
        Backend::Postgres => "(COALESCE(name, site_id) COLLATE \"C\")",
    }
}

fn site_id_ordered(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "site_id",
        Backend::Postgres => "(site_id COLLATE \"C\")",
    }
}

/// Fill in each site's count of unresolved faults: one range of `faults_by_status` (the
/// customer's unresolved faults, few next to its history) for the whole page, rather than
/// each site's history through `faults_by_site`.
async fn count_open_faults(c: &mut dyn Conn, backend: Backend, sites: &mut [Site]) -> StoreResult<()> {
    let Some(first) = sites.first() else { return Ok(()) };
    let mut sql = Sql::default();
    let customer = sql.text(&first.customer_id);
    let list = sql.list(sites.iter().map(|s| s.site_id.clone()));
    let index = match backend {
        Backend::Sqlite => "INDEXED BY faults_by_status",
        Backend::Postgres => "",
    };
    sql.text = format!(
        "SELECT site_id, COUNT(*) FROM faults {index} WHERE customer_id = {customer} AND status = 'unresolved' \
         AND site_id IN ({list}) GROUP BY site_id"
    );
    let counts: Vec<(String, i64)> = c.fetch_all(&sql).await?;
    for (site_id, count) in counts {
        if let Some(site) = sites.iter_mut().find(|s| s.site_id == site_id) {
            site.open_faults = count;
        }
    }
    Ok(())
}

async fn select_site(
    c: &mut dyn Conn,
    backend: Backend,
    customer_id: &str,
    site_id: &str,
) -> StoreResult<Option<Site>> {
    let select = query(format!("SELECT {SITE_COLUMNS} FROM sites WHERE customer_id = $1 AND site_id = $2"))
        .arg(customer_id)
        .arg(site_id);
    let Some(site) = c.fetch_optional::<Site>(&select).await? else { return Ok(None) };
    let mut sites = [site];
    count_open_faults(c, backend, &mut sites).await?;
    let [site] = sites;
    Ok(Some(site))
}

/// The insert of [`Sites::set_site_name`] and [`Sites::name_sites`], before its rows.
const NAME_SITES: &str = "INSERT INTO sites \
    (customer_id, site_id, name, named_by_operator, first_seen, last_heartbeat, offline_since) VALUES";
const NAME_SITES_CONFLICT: &str = "ON CONFLICT (customer_id, site_id) DO UPDATE SET \
    name = excluded.name, named_by_operator = excluded.named_by_operator";
/// Sites a statement of [`Sites::name_sites`] names.
const NAME_SITES_CHUNK: usize = 500;

#[async_trait]
impl<D: Database> Sites for SqlStore<D> {
    async fn list_sites(&self, customer_id: &str, site_query: &SiteQuery) -> StoreResult<Vec<Site>> {
        let (label, site_id) = (label(D::BACKEND), site_id_ordered(D::BACKEND));
        let mut sql = Sql::default();
        let customer = sql.text(customer_id);
        let mut conditions = vec![format!("customer_id = {customer}")];
        if !site_query.statuses.is_empty() {
            let any: Vec<&str> = site_query.statuses.iter().map(|s| s.condition()).collect();
            conditions.push(format!("({})", any.join(" OR ")));
        }
        if let Some(text) = &site_query.text {
            let p = sql.text(&format!("%{}%", escape_like(&text.to_lowercase())));
            conditions.push(format!(
                "(lower(COALESCE(name, '')) LIKE {p} ESCAPE '\\' OR lower(site_id) LIKE {p} ESCAPE '\\')"
            ));
        }
        if let Some((after_label, after_id)) = &site_query.after {
            let (l, i) = (sql.text(after_label), sql.text(after_id));
            // The `>=` bound is implied by the rest, but lets the planner seek the index to the
            // cursor (neither SQLite nor PostgreSQL seeks on the OR alone: every page would scan
            // the customer's sites from the first). On 100,000 sites, a page near the end:
            // SQLite `SEARCH sites USING INDEX sites_by_label (customer_id=? AND <expr>>?)`,
            // 0.04 ms (61 ms without the bound); PostgreSQL `Index Scan using sites_by_label`,
            // `Index Cond: customer_id = $1 AND COALESCE(name, site_id) >= $2`, 0.03 ms.
            conditions.push(format!("{label} >= {l} AND ({label} > {l} OR {site_id} > {i})"));
        }
        let limit = sql.int(i64::from(site_query.limit));
        sql.text = format!(
            "SELECT {SITE_COLUMNS} FROM sites WHERE {} ORDER BY {label}, {site_id} LIMIT {limit}",
            conditions.join(" AND ")
        );
        self.read(Read::Short, move |c| {
            Box::pin(async move {
                let mut sites: Vec<Site> = c.fetch_all(&sql).await?;
                count_open_faults(c, D::BACKEND, &mut sites).await?;
                Ok(sites)
            })
        })
        .await
    }

    async fn get_site(&self, customer_id: &str, site_id: &str) -> StoreResult<Option<Site>> {
        let (customer_id, site_id) = (customer_id.to_owned(), site_id.to_owned());
        self.read(Read::Short, move |c| {
            Box::pin(async move { select_site(c, D::BACKEND, &customer_id, &site_id).await })
        })
        .await
    }

    async fn set_site_name(
        &self,
        customer_id: &str,
        site_id: &str,
        name: Option<&str>,
        now: i64,
    ) -> StoreResult<Site> {
        // An operator's name wins over the heartbeats' until it is cleared; cleared, the site
        // has no name until a heartbeat sends one.
        let upsert = query(format!("{NAME_SITES} ($1, $2, $3, $4, $5, NULL, NULL) {NAME_SITES_CONFLICT}"))
            .arg(customer_id)
            .arg(site_id)
            .arg(name)
            .arg(name.is_some())
            .arg(now);
        let (customer_id, site_id) = (customer_id.to_owned(), site_id.to_owned());
        self.write(move |c| {
            Box::pin(async move {
                c.execute(&upsert).await?;
                select_site(c, D::BACKEND, &customer_id, &site_id)
                    .await?
                    .ok_or_else(|| crate::StoreError::Corrupt("a site just written is missing".into()))
            })
        })
        .await
    }

    async fn site_names(
        &self,
        customer_id: &str,
        site_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, String>> {
        let statements: Vec<Sql> = site_ids
            .chunks(NAME_SITES_CHUNK)
            .map(|chunk| {
                let mut sql = Sql::default();
                let customer = sql.text(customer_id);
                let list = sql.list(chunk.iter().cloned());
                sql.text = format!(
                    "SELECT site_id, name FROM sites WHERE customer_id = {customer} AND site_id IN ({list}) \
                     AND name IS NOT NULL"
                );
                sql
            })
            .collect();
        self.read(Read::Short, move |c| {
            Box::pin(async move {
                let mut names = std::collections::HashMap::new();
                for statement in &statements {
                    names.extend(c.fetch_all::<(String, String)>(statement).await?);
                }
                Ok(names)
            })
        })
        .await
    }

    async fn name_sites(&self, customer_id: &str, names: &[(String, String)], now: i64) -> StoreResult<()> {
        // A site named twice keeps its last name (PostgreSQL refuses to upsert one row twice
        // in a statement), in the order given.
        let mut last: std::collections::HashMap<&str, usize> = Default::default();
        for (n, (site_id, _)) in names.iter().enumerate() {
            last.insert(site_id.as_str(), n);
        }
        let names: Vec<&(String, String)> = names
            .iter()
            .enumerate()
            .filter(|(n, (id, _))| last[id.as_str()] == *n)
            .map(|(_, pair)| pair)
            .collect();
        let statements: Vec<Sql> = names
            .chunks(NAME_SITES_CHUNK)
            .map(|chunk| {
                let mut sql = Sql::default();
                let (customer, now, named) = (sql.text(customer_id), sql.int(now), sql.bind(true.into()));
                let rows: Vec<String> = chunk
                    .iter()
                    .map(|(site_id, name)| {
                        let (site, name) = (sql.text(site_id), sql.text(name));
                        format!("({customer}, {site}, {name}, {named}, {now}, NULL, NULL)")
                    })
                    .collect();
                sql.text = format!("{NAME_SITES} {} {NAME_SITES_CONFLICT}", rows.join(", "));
                sql
            })
            .collect();
        self.write(move |c| {
            Box::pin(async move {
                for statement in &statements {
                    c.execute(statement).await?;
                }
                Ok(())
            })
        })
        .await
    }
}
