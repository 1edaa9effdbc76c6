-- Version 3: each workflow version's node ids and handlers, written when it first starts an execution. The execution
-- document holds only node state, in plan order; with this row a process that has not registered the workflow (a
-- dashboard host) can still name the nodes of its executions.
CREATE TABLE IF NOT EXISTS {schema}.plans (
    workflow  text    NOT NULL,
    version   integer NOT NULL,
    nodes     bytea   NOT NULL,  -- UTF-8 JSON: [[id, handler], ...] in plan order
    PRIMARY KEY (workflow, version)
);
