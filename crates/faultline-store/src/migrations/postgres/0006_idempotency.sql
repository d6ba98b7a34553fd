-- Idempotency-Key records: written in the same transaction as the effect they describe, so a
-- retried POST either replays the stored answer or runs for the first time; never both, never
-- twice. Kept 24 hours, then swept.
CREATE TABLE idempotency_keys (
    credential_id  TEXT NOT NULL,
    idem_key       TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    status         BIGINT NOT NULL,
    body           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (credential_id, idem_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
