-- Event ingest deduplication, enforced by the database: while a fault opened by an event is
-- unresolved, `open_key` holds its (resource_id, type), and no two faults of a customer may
-- share one. Resolving clears it. Faults created by hand (POST /fault) leave it null.
ALTER TABLE faults ADD COLUMN open_key TEXT;
CREATE UNIQUE INDEX faults_open_key ON faults (customer_id, open_key) WHERE open_key IS NOT NULL;
CREATE INDEX faults_unresolved_by_resource ON faults (customer_id, resource_id, type, created_at)
    WHERE status = 'unresolved';
