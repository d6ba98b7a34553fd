//! `faultline demo` and `faultline serve --demo`: load a generated fleet history (see
//! `faultline_core::demo`) into the store.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use faultline_core::Permissions;
use faultline_core::demo::{DemoConfig, DemoFaults, customer_name};
use faultline_core::time::now_micros;
use faultline_store::{BulkFaults, NewApiKey, Store};

/// Faults generated at a time.
const CHUNK: usize = 10_000;
/// What `serve --demo` loads: enough to fill the views, quick to insert.
const SERVE_DEMO_FAULTS: u64 = 10_000;
const SERVE_DEMO_SITES: u32 = 50;
const SERVE_DEMO_SEED: u64 = 1;
/// Rate limit of the demo API keys: high enough for load tests.
const DEMO_KEY_RATE_LIMIT: u32 = 1_000_000;

#[derive(Args)]
pub struct DemoArgs {
    /// How many faults to generate, over the last year.
    #[arg(long)]
    faults: u64,
    /// Sites in the fleet, shared out among the customers.
    #[arg(long, default_value_t = 200)]
    sites: u32,
    /// Customers to create, each with an API key that may do everything.
    #[arg(long, default_value_t = 1)]
    customers: u32,
    /// The same seed gives the same fleet and the same faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// `faultline demo`: create the customers and their keys, load the history, then print one
/// `<customer id> <API key>` line per customer on standard output.
pub async fn demo(args: DemoArgs, store: &dyn Store, retention: Duration) -> Result<(), String> {
    if args.faults > 100_000_000 {
        return Err("--faults must be at most 100000000".into());
    }
    if !(1..=1_000).contains(&args.customers) {
        return Err("--customers must be 1 to 1000".into());
    }
    if !(args.customers..=100_000).contains(&args.sites) {
        return Err(format!("--sites must be {} (one per customer) to 100000", args.customers));
    }
    let mut customers = Vec::with_capacity(args.customers as usize);
    for index in 0..args.customers as usize {
        let customer = store.create_customer(&customer_name(index)).await.map_err(|e| e.to_string())?;
        let (key, secret) =
            NewApiKey::generate(&customer.id, "demo", Permissions::all(), Some(DEMO_KEY_RATE_LIMIT));
        store.create_api_key(key).await.map_err(|e| e.to_string())?;
        eprintln!("faultline: demo: created customer {} ({})", customer.id, customer.name);
        customers.push((customer.id, secret));
    }
    let ids = customers.iter().map(|(id, _)| id.clone()).collect();
    load(store, ids, args.faults, args.sites, args.seed, retention).await?;
    for (id, secret) in customers {
        println!("{id} {secret}");
    }
    Ok(())
}

/// `serve --demo`: the demo history, for the customer that the first start created.
pub async fn load_for_serve(store: &dyn Store, customer_id: &str, retention: Duration) -> Result<(), String> {
    let ids = vec![customer_id.to_owned()];
    load(store, ids, SERVE_DEMO_FAULTS, SERVE_DEMO_SITES, SERVE_DEMO_SEED, retention).await
}

/// Generate and insert (`Store::bulk_insert_faults`). Generation runs on a blocking thread one
/// chunk ahead of the inserts, so the two overlap.
async fn load(
    store: &dyn Store,
    customer_ids: Vec<String>,
    faults: u64,
    sites: u32,
    seed: u64,
    retention: Duration,
) -> Result<(), String> {
    let config = DemoConfig {
        faults,
        sites,
        customers: customer_ids.len() as u32,
        seed,
        now: now_micros(),
        retention_seconds: i64::try_from(retention.as_secs()).unwrap_or(i64::MAX),
        customer_ids,
    };
    let mut generator = DemoFaults::new(config).map_err(|e| format!("demo: {e}"))?;
    let fleet = generator.fleet_size();
    // Sites carry their names (`Branch-025`), as an operator would have set them.
    let mut by_customer: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for (customer_id, site_id, name) in generator.site_names() {
        by_customer.entry(customer_id).or_default().push((site_id, name));
    }
    for (customer_id, names) in by_customer {
        store
            .name_sites(&customer_id, &names, now_micros())
            .await
            .map_err(|e| format!("demo: naming the sites failed: {e}"))?;
    }
    eprintln!(
        "faultline: demo: {faults} faults over the last year on {} sites, {} routers, {} WAN tunnels (seed {seed})",
        fleet.sites, fleet.devices, fleet.tunnels
    );
    let (chunks, incoming) = tokio::sync::mpsc::channel::<BulkFaults>(1);
    // Returns how many faults it generated.
    let producer = tokio::task::spawn_blocking(move || {
        let mut generated = 0;
        loop {
            let chunk = generator.next_chunk(CHUNK);
            generated += chunk.len() as u64;
            let message = if chunk.is_empty() { BulkFaults::End } else { BulkFaults::Chunk(chunk) };
            let end = matches!(message, BulkFaults::End);
            // A closed channel means the inserts failed; their error is reported.
            if chunks.blocking_send(message).is_err() || end {
                return generated;
            }
        }
    });
    let started = Instant::now();
    let mut progress = Progress::new(faults);
    store
        .bulk_insert_faults(incoming, "demo", Box::new(move |n| progress.add(n as u64, started.elapsed())))
        .await
        .map_err(|e| format!("demo: inserting faults failed: {e}"))?;
    // The load committed, so it holds every fault generated.
    let inserted = producer.await.map_err(|e| format!("demo: the generator failed: {e}"))?;
    store.analyze().await.map_err(|e| format!("demo: analysing the loaded tables failed: {e}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "faultline: demo: inserted {} faults in {elapsed:.1} s ({:.0} faults/s)",
        inserted,
        inserted as f64 / elapsed.max(1e-9)
    );
    Ok(())
}

/// Progress on standard error: a line rewritten in place on a terminal, a line per tenth
/// otherwise.
struct Progress {
    total: u64,
    done: u64,
    next_line: u64,
    terminal: bool,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress { total, done: 0, next_line: total / 10, terminal: std::io::stderr().is_terminal() }
    }

    fn add(&mut self, inserted: u64, elapsed: Duration) {
        self.done += inserted;
        let done = self.done;
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
        let percent = done * 100 / self.total.max(1);
        let text = format!("faultline: demo: {done}/{} faults ({percent}%), {rate:.0} faults/s", self.total);
        if self.terminal {
            eprint!("\r{text}");
            if done >= self.total {
                eprintln!();
            }
        } else if done >= self.next_line && done < self.total {
            eprintln!("{text}");
            self.next_line = done + self.total / 10;
        }
    }
}
