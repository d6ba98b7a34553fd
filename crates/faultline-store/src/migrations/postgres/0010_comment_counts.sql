-- Each fault's number of comments, kept by whatever adds a comment (comments go only with
-- their fault), so that a read of faults looks up the comments of those that have any and of
-- no other (`postgres::reads::comments_column`). On 1,000,000 demo faults the lookup, made for
-- each of a page's 51 faults, was 60-80 µs of the page's 80-110 µs of execution. Adding a
-- column with a constant default does not rewrite the table.
ALTER TABLE faults ADD COLUMN comment_count INTEGER NOT NULL DEFAULT 0;
UPDATE faults f SET comment_count = c.n
    FROM (SELECT fault_id, COUNT(*) AS n FROM comments GROUP BY fault_id) c
    WHERE f.id = c.fault_id;
