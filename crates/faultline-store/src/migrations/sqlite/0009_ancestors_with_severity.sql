-- fault_ancestors carries its fault's severity (a fault's severity never changes), so that a
-- page of `site=…&severity=…` skips the site's other severities in the table itself instead of
-- looking each one up in `faults` (two B-tree searches a skipped row). The table is rebuilt,
-- in key order, with the severity from the join.
CREATE TABLE fault_ancestors_v9 (
    customer_id  TEXT NOT NULL,
    element      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    fault_id     TEXT NOT NULL,
    severity     TEXT NOT NULL,
    PRIMARY KEY (customer_id, element, created_at, fault_id)
) WITHOUT ROWID;
INSERT INTO fault_ancestors_v9 (customer_id, element, created_at, fault_id, severity)
    SELECT a.customer_id, a.element, a.created_at, a.fault_id, f.severity
    FROM fault_ancestors a JOIN faults f ON f.id = a.fault_id
    ORDER BY 1, 2, 3, 4;
DROP TABLE fault_ancestors;
ALTER TABLE fault_ancestors_v9 RENAME TO fault_ancestors;
