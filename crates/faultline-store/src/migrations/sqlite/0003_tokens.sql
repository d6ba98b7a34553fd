-- Access tokens: the Ed25519 keys that sign them, the tokens minted (never the JWT itself),
-- and the short links that open a token's dashboard.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    secret_key    BLOB NOT NULL,
    public_key    BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER,
    verify_until  INTEGER
);

CREATE TABLE access_tokens (
    id            TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL REFERENCES customers(id),
    kid           TEXT NOT NULL REFERENCES signing_keys(kid),
    label         TEXT NOT NULL,
    scope         TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    last_used_at  INTEGER,
    use_count     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX access_tokens_by_customer ON access_tokens (customer_id, created_at DESC, id DESC);

CREATE TABLE short_links (
    code        TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL REFERENCES access_tokens(id) ON DELETE CASCADE,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX short_links_by_token ON short_links (token_id);
