-- Access tokens: the Ed25519 keys that sign them, the tokens minted (never the JWT itself),
-- and the short links that open a token's dashboard.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    secret_key    BYTEA NOT NULL,
    public_key    BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    retired_at    BIGINT,
    verify_until  BIGINT
);

CREATE TABLE access_tokens (
    id            TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL REFERENCES customers(id),
    kid           TEXT NOT NULL REFERENCES signing_keys(kid),
    label         TEXT NOT NULL,
    scope         TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    last_used_at  BIGINT,
    use_count     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX access_tokens_by_customer ON access_tokens (customer_id, created_at DESC, id DESC);

CREATE TABLE short_links (
    code        TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL REFERENCES access_tokens(id) ON DELETE CASCADE,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX short_links_by_token ON short_links (token_id);
