-- Heartbeats: one row per site that has ever sent one. `offline_since` is set when the
-- detector opens the site's outage (the first missed heartbeat) and cleared by the next
-- heartbeat. The detector reads only healthy sites, oldest heartbeat first, each batch of a
-- sweep starting where the previous one ended.
CREATE TABLE sites (
    customer_id     TEXT NOT NULL,
    site_id         TEXT NOT NULL,
    name            TEXT,
    first_seen      BIGINT NOT NULL,
    last_heartbeat  BIGINT NOT NULL,
    offline_since   BIGINT,
    PRIMARY KEY (customer_id, site_id)
);
CREATE INDEX sites_due ON sites (last_heartbeat, customer_id, site_id) WHERE offline_since IS NULL;

-- The live stream resumes a customer's events after a sequence number.
CREATE INDEX fault_events_by_customer ON fault_events (customer_id, seq);

-- The stream delivers the log in sequence order, and a sequence number is taken before its
-- transaction commits, so a reader can see seq 11 while 10 is still in flight. The reader
-- waits for such a gap to settle: until every transaction that was running when it saw the
-- gap has ended (pg_snapshot_xmin). That only works if the writer has a transaction id
-- before it takes its sequence number, which this statement trigger makes sure of.
CREATE FUNCTION faultline_events_take_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN NULL;
END $$;
CREATE TRIGGER fault_events_take_xid BEFORE INSERT ON fault_events
    FOR EACH STATEMENT EXECUTE FUNCTION faultline_events_take_xid();

-- Every replica's stream wakes when any replica commits events (delivered at commit; several
-- in one transaction arrive as one).
CREATE FUNCTION faultline_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('faultline_events', '');
    RETURN NULL;
END $$;
CREATE TRIGGER fault_events_notify AFTER INSERT ON fault_events
    FOR EACH STATEMENT EXECUTE FUNCTION faultline_events_notify();
