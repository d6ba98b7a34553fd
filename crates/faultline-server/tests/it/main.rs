//! End-to-end tests: the real router on a real socket (`127.0.0.1:0`), on SQLite and on
//! PostgreSQL. One test binary, one module per feature.

mod harness;

mod analytics;
mod browser;
mod console;
mod console_browser;
mod dashboard;
mod events;
mod export;
mod faults;
mod foundation;
mod hardening;
mod heartbeats;
mod idempotency;
mod integrations;
mod lifecycle;
mod matrix;
mod recent;
mod sites;
mod sla;
mod stream;
mod tokens;
mod webhooks;
