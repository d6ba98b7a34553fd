//! What the store can do, one trait per capability; [`crate::Store`] is all of them. Each
//! backend implements them in files of the same names (`sqlite/faults.rs`,
//! `postgres/faults.rs`, ...).

mod admin;
mod analytics;
mod comments;
mod customers;
mod event_log;
mod faults;
mod heartbeats;
mod idempotency;
mod leases;
mod tokens;

pub use admin::Admin;
pub use analytics::Analytics;
pub use comments::Comments;
pub use customers::Customers;
pub use event_log::EventLog;
pub use faults::Faults;
pub use heartbeats::Heartbeats;
pub use idempotency::IdempotencyKeys;
pub use leases::Leases;
pub use tokens::Tokens;
