-- Sites an operator names (`PUT /sites/{site_id}`) may never have sent a heartbeat, so
-- `last_heartbeat` may be null; `named_by_operator` says the name was set that way, and then
-- heartbeats no longer change it. SQLite cannot drop a NOT NULL, so the table is rebuilt.
CREATE TABLE sites_new (
    customer_id        TEXT NOT NULL,
    site_id            TEXT NOT NULL,
    name               TEXT,
    named_by_operator  INTEGER NOT NULL DEFAULT 0,
    first_seen         INTEGER NOT NULL,
    last_heartbeat     INTEGER,
    offline_since      INTEGER,
    PRIMARY KEY (customer_id, site_id)
) WITHOUT ROWID;
INSERT INTO sites_new (customer_id, site_id, name, first_seen, last_heartbeat, offline_since)
    SELECT customer_id, site_id, name, first_seen, last_heartbeat, offline_since FROM sites;
DROP TABLE sites;
ALTER TABLE sites_new RENAME TO sites;
CREATE INDEX sites_due ON sites (last_heartbeat, customer_id, site_id) WHERE offline_since IS NULL;
-- `GET /sites` pages by the label a site shows as: its name, else its id.
CREATE INDEX sites_by_label ON sites (customer_id, COALESCE(name, site_id), site_id);

-- Console sessions: the cookie holds a random secret, the table its SHA-256. A session acts as
-- the API key that signed in; it ends at logout, after 12 hours unused, or with the key.
CREATE TABLE console_sessions (
    id_hash       TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);
CREATE INDEX console_sessions_by_key ON console_sessions (key_id);
CREATE INDEX console_sessions_idle ON console_sessions (last_seen_at);

-- One-time sign-in links (`POST /console/links`), by the SHA-256 of their code.
CREATE TABLE console_links (
    code_hash    TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX console_links_expiry ON console_links (expires_at);
