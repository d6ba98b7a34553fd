-- fault_ancestors without its foreign key and its index by fault: each cost event ingest an
-- index insert or lookup per ancestry element. Whatever deletes a fault deletes its elements by
-- their key (sql::delete_ancestors), as on SQLite.
ALTER TABLE fault_ancestors DROP CONSTRAINT IF EXISTS fault_ancestors_fault_id_fkey;
DROP INDEX IF EXISTS fault_ancestors_by_fault;
