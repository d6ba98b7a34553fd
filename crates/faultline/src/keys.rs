//! `faultline customers …` and `faultline keys …`, and the first-start bootstrap.

use clap::Subcommand;
use faultline_core::Permissions;
use faultline_core::ids::IdKind;
use faultline_core::time::{format_micros, now_micros};
use faultline_store::{Customer, NewApiKey, Store};

#[derive(Subcommand)]
pub enum CustomersCommand {
    /// Create a customer and print its id alone on standard output.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List customers.
    List,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print its secret alone on standard output.
    Create {
        /// The customer the key belongs to (cus_…).
        #[arg(long)]
        customer: String,
        /// A label for the key.
        #[arg(long, default_value = "")]
        name: String,
        /// Comma-separated: faults:read, faults:write, faults:delete, tokens:write,
        /// heartbeats:write, webhooks:write, or all.
        #[arg(long, default_value = "faults:read")]
        permissions: String,
        /// Requests per minute for this key (default: the service's rate_limit).
        #[arg(long)]
        rate_limit: Option<u32>,
    },
    /// List API keys (never their secrets).
    List {
        /// Only this customer's keys.
        #[arg(long)]
        customer: Option<String>,
    },
    /// Revoke an API key at once.
    Revoke { key_id: String },
}

/// On an empty database: create the first customer and an admin key; `None` otherwise.
pub async fn bootstrap(store: &dyn Store) -> Result<Option<(Customer, String)>, String> {
    let customer_id = IdKind::Customer.new_id();
    let (key, secret) =
        NewApiKey::generate(&customer_id, "admin (created on first start)", Permissions::all(), None);
    let created = store.bootstrap("default", key).await.map_err(|e| format!("bootstrap failed: {e}"))?;
    Ok(created.map(|(customer, _)| (customer, secret)))
}

pub async fn customers(command: CustomersCommand, store: &dyn Store) -> Result<(), String> {
    match command {
        CustomersCommand::Create { name } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                return Err("--name must be 1 to 200 characters".into());
            }
            let customer = store.create_customer(name).await.map_err(|e| e.to_string())?;
            println!("{}", customer.id);
        }
        CustomersCommand::List => {
            println!("{:<31}  {:<27}  name", "id", "created");
            for c in store.list_customers().await.map_err(|e| e.to_string())? {
                println!("{:<31}  {:<27}  {}", c.id, format_micros(c.created_at), c.name);
            }
        }
    }
    Ok(())
}

pub async fn keys(command: KeysCommand, store: &dyn Store) -> Result<(), String> {
    match command {
        KeysCommand::Create { customer, name, permissions, rate_limit } => {
            let permissions: Permissions = permissions.parse().map_err(|e| format!("--permissions: {e}"))?;
            if permissions.is_empty() {
                return Err("--permissions must name at least one permission".into());
            }
            if rate_limit == Some(0) {
                return Err("--rate-limit must be at least 1 request per minute".into());
            }
            if store.get_customer(&customer).await.map_err(|e| e.to_string())?.is_none() {
                return Err(format!(
                    "customer '{customer}' does not exist; `faultline customers list` shows the customers"
                ));
            }
            let (key, secret) = NewApiKey::generate(&customer, &name, permissions, rate_limit);
            let stored = store.create_api_key(key).await.map_err(|e| e.to_string())?;
            eprintln!("faultline: created {} for {}", stored.id, stored.customer_id);
            println!("{secret}");
        }
        KeysCommand::List { customer } => {
            println!(
                "{:<31}  {:<31}  {:<27}  {:<27}  {:<10}  {:<7}  permissions",
                "id", "customer", "last used", "revoked", "rate/min", "name"
            );
            for k in store.list_api_keys(customer.as_deref()).await.map_err(|e| e.to_string())? {
                let time = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), format_micros);
                let rate = k.rate_limit_per_minute.map_or_else(|| "default".to_owned(), |n| n.to_string());
                println!(
                    "{:<31}  {:<31}  {:<27}  {:<27}  {:<10}  {:<7}  {}",
                    k.id,
                    k.customer_id,
                    time(k.last_used_at),
                    time(k.revoked_at),
                    rate,
                    if k.name.is_empty() { "-" } else { &k.name },
                    k.permissions
                );
            }
        }
        KeysCommand::Revoke { key_id } => {
            if !store.revoke_api_key(&key_id, now_micros()).await.map_err(|e| e.to_string())? {
                return Err(format!("no API key '{key_id}'; `faultline keys list` shows the keys"));
            }
            eprintln!("faultline: revoked {key_id}");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum SigningKeysCommand {
    /// Make a new key the signing key. Tokens already issued keep verifying: the old key
    /// verifies until the longest-lived token it may have signed has expired (30 days).
    Rotate,
    /// List the keys that still verify tokens.
    List,
}

pub async fn signing_keys(command: SigningKeysCommand, store: &dyn Store) -> Result<(), String> {
    match command {
        SigningKeysCommand::Rotate => {
            let now = now_micros();
            let key = faultline_server::jwt::generate_signing_key(now);
            let verify_until = now + (faultline_server::jwt::MAX_TOKEN_LIFETIME_SECONDS + 60) * 1_000_000;
            store.rotate_signing_key(&key, verify_until).await.map_err(|e| e.to_string())?;
            eprintln!(
                "faultline: {} now signs new tokens; earlier keys verify until {}",
                key.kid,
                format_micros(verify_until)
            );
        }
        SigningKeysCommand::List => {
            println!("{:<20}  {:<27}  {:<27}  verifies until", "kid", "created", "retired");
            for k in store.signing_keys(now_micros()).await.map_err(|e| e.to_string())? {
                let time = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), format_micros);
                println!(
                    "{:<20}  {:<27}  {:<27}  {}",
                    k.kid,
                    format_micros(k.created_at),
                    time(k.retired_at),
                    time(k.verify_until)
                );
            }
        }
    }
    Ok(())
}
