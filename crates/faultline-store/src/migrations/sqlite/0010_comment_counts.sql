-- Each fault's number of comments, kept by whatever adds a comment (comments go only with
-- their fault), so that a read of faults looks up the comments of those that have any and
-- of no other (`sqlite::packed::comments_column`). SQLite adds a column with a constant
-- default without rewriting the table.
ALTER TABLE faults ADD COLUMN comment_count INTEGER NOT NULL DEFAULT 0;
UPDATE faults SET comment_count = (SELECT COUNT(*) FROM comments c WHERE c.fault_id = faults.id)
    WHERE id IN (SELECT fault_id FROM comments);
