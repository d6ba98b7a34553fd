-- Faults, their ancestry elements (what `site=` matches), and shared secrets.
-- Every list order is (created_at DESC, id DESC) within a customer; each filter has an index
-- that yields rows in that order, so a page never sorts or scans beyond what it returns.
CREATE TABLE faults (
    id                      TEXT PRIMARY KEY,
    customer_id             TEXT NOT NULL REFERENCES customers(id),
    resource_id             TEXT NOT NULL,
    microservice_id         TEXT NOT NULL,
    type                    TEXT NOT NULL,
    status                  TEXT NOT NULL CHECK (status IN ('unresolved', 'resolved')),
    severity                TEXT NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL', 'WARNING')),
    message                 TEXT NOT NULL,
    cause                   TEXT NOT NULL,
    created_at              BIGINT NOT NULL,
    resolved_at             BIGINT,
    resource_ancestry_path  TEXT NOT NULL,
    site_id                 TEXT,
    ttl                     BIGINT NOT NULL
);
CREATE INDEX faults_by_customer ON faults (customer_id, created_at DESC, id DESC);
CREATE INDEX faults_by_severity ON faults (customer_id, severity, created_at DESC, id DESC);
CREATE INDEX faults_by_status ON faults (customer_id, status, created_at DESC, id DESC);
CREATE INDEX faults_by_type ON faults (customer_id, type, created_at DESC, id DESC);
CREATE INDEX faults_by_resource ON faults (customer_id, resource_id, created_at DESC, id DESC);
CREATE INDEX faults_by_microservice ON faults (customer_id, microservice_id, created_at DESC, id DESC);
CREATE INDEX faults_by_site ON faults (customer_id, site_id, created_at DESC, id DESC);
CREATE INDEX faults_by_ttl ON faults (ttl);

CREATE TABLE fault_ancestors (
    customer_id  TEXT NOT NULL,
    element      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    fault_id     TEXT NOT NULL REFERENCES faults(id) ON DELETE CASCADE,
    PRIMARY KEY (customer_id, element, created_at, fault_id)
);
CREATE INDEX fault_ancestors_by_fault ON fault_ancestors (fault_id);

CREATE TABLE shared_secrets (
    name        TEXT PRIMARY KEY,
    secret      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);
