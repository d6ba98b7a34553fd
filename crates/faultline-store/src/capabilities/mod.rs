//! What the store can do, one trait per capability; [`crate::Store`] is all of them. Each is
//! implemented once, for both backends, in its own file (see `docs/architecture.md`).

mod admin;
mod analytics;
mod comments;
mod console;
mod customers;
mod event_log;
mod faults;
mod heartbeats;
mod idempotency;
mod leases;
mod sites;
mod tokens;
mod webhook_outbox;
pub(crate) mod webhooks;

pub use admin::Admin;
pub use analytics::Analytics;
pub use comments::Comments;
pub use console::ConsoleSessions;
pub use customers::Customers;
pub use event_log::EventLog;
pub use faults::Faults;
pub use heartbeats::Heartbeats;
pub use idempotency::IdempotencyKeys;
pub use leases::Leases;
pub use sites::Sites;
pub use tokens::Tokens;
pub use webhook_outbox::WebhookOutbox;
pub use webhooks::Webhooks;
