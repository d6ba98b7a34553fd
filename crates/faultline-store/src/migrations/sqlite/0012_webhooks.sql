-- Outbound webhooks (docs/webhooks.md).
--
-- The outbox is the event log: every change already appends to `fault_events` in its own
-- transaction, so a change and its webhook messages can never part. The dispatcher reads the
-- log from `webhook_dispatch.position` and writes the messages it owes each endpoint in one
-- transaction with its new position; a crash before that commit reads the same entries again.
-- An endpoint is owed the entries after `from_seq`, the log's head when it was created.
CREATE TABLE webhooks (
    id                    TEXT PRIMARY KEY,
    customer_id           TEXT NOT NULL,
    url                   TEXT NOT NULL,
    events                TEXT NOT NULL,
    filter                TEXT NOT NULL,
    description           TEXT,
    enabled               INTEGER NOT NULL,
    disabled_reason       TEXT,
    secret                TEXT NOT NULL,
    previous_secret       TEXT,
    previous_secret_until INTEGER,
    failing_since         INTEGER,
    from_seq              INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX webhooks_by_customer ON webhooks (customer_id, created_at, id);

-- One message per event and endpoint. `next_attempt_at` is set while it is pending.
CREATE TABLE webhook_messages (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER
);
CREATE INDEX webhook_messages_by_webhook ON webhook_messages (webhook_id, created_at, id);
-- The due messages of one endpoint, longest due first: the delivery worker seeks each
-- endpoint's apart, so that a dead endpoint's backlog never slows the others'.
CREATE INDEX webhook_messages_due ON webhook_messages (webhook_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_messages_finished ON webhook_messages (created_at) WHERE status <> 'pending';

CREATE TABLE webhook_attempts (
    message_id  TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    duration_ms INTEGER NOT NULL,
    error       TEXT,
    response    TEXT,
    PRIMARY KEY (message_id, attempt)
) WITHOUT ROWID;

-- Where the dispatcher is in the log: every entry up to it has its messages. It starts at
-- the log's head, so that an upgrade does not send the history.
CREATE TABLE webhook_dispatch (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL
);
INSERT INTO webhook_dispatch (id, position) SELECT 1, COALESCE(MAX(seq), 0) FROM fault_events;
