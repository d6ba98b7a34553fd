-- fault_ancestors without its foreign key and its index by fault: each cost event ingest a
-- B-tree lookup or insert per ancestry element (about 8% of ingest on SQLite). Whatever deletes
-- a fault deletes its elements by their key (sql::delete_ancestors). SQLite cannot drop a
-- foreign key, so the table is rebuilt.
CREATE TABLE fault_ancestors_v8 (
    customer_id  TEXT NOT NULL,
    element      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    fault_id     TEXT NOT NULL,
    PRIMARY KEY (customer_id, element, created_at, fault_id)
) WITHOUT ROWID;
INSERT INTO fault_ancestors_v8 (customer_id, element, created_at, fault_id)
    SELECT customer_id, element, created_at, fault_id FROM fault_ancestors ORDER BY 1, 2, 3, 4;
DROP TABLE fault_ancestors;
ALTER TABLE fault_ancestors_v8 RENAME TO fault_ancestors;
