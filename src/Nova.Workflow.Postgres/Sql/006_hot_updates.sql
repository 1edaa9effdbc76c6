-- Version 6: cheaper writes on the hot path.
-- Room on each page of executions for the new version of a row: a transition that leaves the indexed columns alone (a
-- node starting) is then a heap-only update, with no new entry in any of the table's five indexes. Applies to pages
-- written from now on.
ALTER TABLE {schema}.executions SET (fillfactor = 70);
-- The same for a large execution's chunks: a transition rewrites a few of them and never their keys.
ALTER TABLE {schema}.execution_chunks SET (fillfactor = 70);
-- History rows are written only in the transaction holding their execution's row lock, and retention deletes them
-- with it: the foreign key's check on every inserted row (a lookup and a share lock on the execution) bought nothing
-- and was a third of the insert's cost.
ALTER TABLE {schema}.node_runs DROP CONSTRAINT IF EXISTS node_runs_execution_id_fkey;
