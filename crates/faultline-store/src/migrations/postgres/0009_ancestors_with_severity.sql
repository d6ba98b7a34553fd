-- fault_ancestors carries its fault's severity (a fault's severity never changes), so that a
-- page of `site=…&severity=…` filters the site's rows before joining them to `faults`. Stop
-- replicas of an older version before a replica of this one applies it: their inserts name no
-- severity and fail once the column is NOT NULL. The table is analysed at the end: until it is,
-- the planner knows nothing of the new column and may sort a whole site to find one page.
ALTER TABLE fault_ancestors ADD COLUMN severity TEXT;
UPDATE fault_ancestors a SET severity = f.severity FROM faults f WHERE f.id = a.fault_id;
DELETE FROM fault_ancestors WHERE severity IS NULL;
ALTER TABLE fault_ancestors ALTER COLUMN severity SET NOT NULL;
ANALYZE fault_ancestors;
