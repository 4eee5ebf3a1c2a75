-- How far the changes table has been pruned: the highest seq a prune
-- deleted, raised in the same transaction as the delete. A watcher that
-- resumes after a seq below it may have missed changes that will never be
-- read (it was away longer than change rows are kept), which seq gaps
-- cannot tell from rolled-back transactions. One row.
CREATE TABLE changes_pruned (
	through INTEGER NOT NULL
);
INSERT INTO changes_pruned (through) VALUES (0);
