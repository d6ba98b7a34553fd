-- Customers and their API keys. Times are microseconds since the Unix epoch.
CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id                     TEXT PRIMARY KEY,
    customer_id            TEXT NOT NULL REFERENCES customers(id),
    user_id                TEXT NOT NULL,
    name                   TEXT NOT NULL,
    lookup                 TEXT NOT NULL UNIQUE,
    secret_hash            TEXT NOT NULL,
    permissions            TEXT NOT NULL,
    rate_limit_per_minute  INTEGER,
    created_at             INTEGER NOT NULL,
    last_used_at           INTEGER,
    revoked_at             INTEGER
);
CREATE INDEX api_keys_by_customer ON api_keys (customer_id, created_at);
