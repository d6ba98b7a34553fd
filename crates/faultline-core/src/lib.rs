//! faultline's domain: types and rules with no I/O.
//!
//! Everything here is pure and synchronous so that the store, the server and the
//! command line share one definition of each rule.
#![forbid(unsafe_code)]

pub mod alertmanager;
pub mod analytics;
pub mod auth;
pub mod csv;
pub mod cursor;
pub mod demo;
pub mod duration;
pub mod fault;
pub mod filter;
pub mod heartbeat;
pub mod ids;
pub mod ingest;
pub mod pagerduty;
pub mod scope;
pub mod secret;
pub mod time;
pub mod validation;
pub mod webhooks;

pub use auth::{Permission, Permissions, Principal};
pub use validation::ValidationError;
