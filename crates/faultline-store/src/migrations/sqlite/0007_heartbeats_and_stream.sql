-- Heartbeats: one row per site that has ever sent one. `offline_since` is set when the
-- detector opens the site's outage (the first missed heartbeat) and cleared by the next
-- heartbeat. The detector reads only healthy sites, oldest heartbeat first, each batch of a
-- sweep starting where the previous one ended.
CREATE TABLE sites (
    customer_id     TEXT NOT NULL,
    site_id         TEXT NOT NULL,
    name            TEXT,
    first_seen      INTEGER NOT NULL,
    last_heartbeat  INTEGER NOT NULL,
    offline_since   INTEGER,
    PRIMARY KEY (customer_id, site_id)
) WITHOUT ROWID;
CREATE INDEX sites_due ON sites (last_heartbeat, customer_id, site_id) WHERE offline_since IS NULL;

-- The live stream resumes a customer's events after a sequence number.
CREATE INDEX fault_events_by_customer ON fault_events (customer_id, seq);
