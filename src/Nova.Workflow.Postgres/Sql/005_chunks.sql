-- Version 5: a large execution's node states in chunks of consecutive nodes, one row each, beside its document. Every
-- transition used to rewrite the whole document: a megabyte for a 10,000-node execution, per batch of a few dozen
-- completions (the server spent its time copying and compressing it). Now only the chunks a transition changed are
-- written; the document keeps the execution's own fields. Executions of up to 128 nodes keep their nodes in the document.
CREATE TABLE IF NOT EXISTS {schema}.execution_chunks (
    execution_id  uuid    NOT NULL REFERENCES {schema}.executions (id) ON DELETE CASCADE,
    chunk         integer NOT NULL,
    state         bytea   NOT NULL,  -- UTF-8 JSON: [[node, ...], [incoming edge outcome, ...]] for the chunk's nodes
    PRIMARY KEY (execution_id, chunk)
);
DO $$
BEGIN
    ALTER TABLE {schema}.execution_chunks ALTER COLUMN state SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL;
END $$;
