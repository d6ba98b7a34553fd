-- Comments, and the append-only event log: the timeline of every fault, kept after the
-- fault is deleted (no foreign key), in one sequence per deployment.
CREATE TABLE comments (
    id           TEXT PRIMARY KEY,
    fault_id     TEXT NOT NULL REFERENCES faults(id) ON DELETE CASCADE,
    customer_id  TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    comment      TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX comments_by_fault ON comments (fault_id, created_at, id);

CREATE TABLE fault_events (
    seq          BIGSERIAL PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    fault_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    actor        TEXT NOT NULL,
    at           BIGINT NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX fault_events_by_fault ON fault_events (customer_id, fault_id, seq);
