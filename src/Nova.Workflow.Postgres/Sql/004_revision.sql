-- Version 4: a revision per execution, raised by every write of its document. A process that wrote the document last
-- keeps a large execution's state in memory and skips reading and parsing it (megabytes for thousands of nodes) while
-- the revision still matches.
ALTER TABLE {schema}.executions ADD COLUMN IF NOT EXISTS revision bigint NOT NULL DEFAULT 0;
