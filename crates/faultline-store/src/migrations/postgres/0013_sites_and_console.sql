-- Sites an operator names (`PUT /sites/{site_id}`) may never have sent a heartbeat, so
-- `last_heartbeat` may be null; `named_by_operator` says the name was set that way, and then
-- heartbeats no longer change it.
ALTER TABLE sites ALTER COLUMN last_heartbeat DROP NOT NULL;
ALTER TABLE sites ADD COLUMN named_by_operator BIGINT NOT NULL DEFAULT 0;
-- `GET /sites` pages by the label a site shows as: its name, else its id (byte order).
CREATE INDEX sites_by_label ON sites (customer_id, (COALESCE(name, site_id)) COLLATE "C", site_id COLLATE "C");

-- Console sessions: the cookie holds a random secret, the table its SHA-256. A session acts as
-- the API key that signed in; it ends at logout, after 12 hours unused, or with the key.
CREATE TABLE console_sessions (
    id_hash       TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_key ON console_sessions (key_id);
CREATE INDEX console_sessions_idle ON console_sessions (last_seen_at);

-- One-time sign-in links (`POST /console/links`), by the SHA-256 of their code.
CREATE TABLE console_links (
    code_hash    TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT
);
CREATE INDEX console_links_expiry ON console_links (expires_at);
