//! The schema's migrations, one list per backend (the SQL of each in `migrations/<backend>/`).

use crate::Backend;

const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_foundation.sql")),
    (2, include_str!("migrations/sqlite/0002_faults.sql")),
    (3, include_str!("migrations/sqlite/0003_tokens.sql")),
    (4, include_str!("migrations/sqlite/0004_lifecycle.sql")),
    (5, include_str!("migrations/sqlite/0005_ingest.sql")),
    (6, include_str!("migrations/sqlite/0006_idempotency.sql")),
    (7, include_str!("migrations/sqlite/0007_heartbeats_and_stream.sql")),
    (8, include_str!("migrations/sqlite/0008_ancestors_without_cascade.sql")),
    (9, include_str!("migrations/sqlite/0009_ancestors_with_severity.sql")),
    (10, include_str!("migrations/sqlite/0010_comment_counts.sql")),
    (11, include_str!("migrations/sqlite/0011_fault_seq.sql")),
    (12, include_str!("migrations/sqlite/0012_webhooks.sql")),
    (13, include_str!("migrations/sqlite/0013_sites_and_console.sql")),
];

const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/0001_foundation.sql")),
    (2, include_str!("migrations/postgres/0002_faults.sql")),
    (3, include_str!("migrations/postgres/0003_tokens.sql")),
    (4, include_str!("migrations/postgres/0004_lifecycle.sql")),
    (5, include_str!("migrations/postgres/0005_ingest.sql")),
    (6, include_str!("migrations/postgres/0006_idempotency.sql")),
    (7, include_str!("migrations/postgres/0007_heartbeats_and_stream.sql")),
    (8, include_str!("migrations/postgres/0008_ancestors_without_cascade.sql")),
    (9, include_str!("migrations/postgres/0009_ancestors_with_severity.sql")),
    (10, include_str!("migrations/postgres/0010_comment_counts.sql")),
    (12, include_str!("migrations/postgres/0012_webhooks.sql")),
    (13, include_str!("migrations/postgres/0013_sites_and_console.sql")),
];

/// The backend's migrations, oldest first: (version, SQL).
pub(crate) fn migrations(backend: Backend) -> &'static [(i64, &'static str)] {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}
