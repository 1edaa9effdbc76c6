-- Nova.Workflow PostgreSQL schema, version 1. "{schema}" is replaced by the configured schema name.
CREATE TABLE IF NOT EXISTS {schema}.executions (
    id               uuid PRIMARY KEY,
    workflow         text        NOT NULL,
    version          integer     NOT NULL,
    status           smallint    NOT NULL,
    created_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    idempotency_key  text UNIQUE,
    awaiting_review  boolean     NOT NULL DEFAULT false,
    state            jsonb       NOT NULL
);
-- Running and paused executions (sweeper), finished ones by end time (retention), newest first (dashboard).
CREATE INDEX IF NOT EXISTS executions_active ON {schema}.executions (id) WHERE status IN (1, 2);
CREATE INDEX IF NOT EXISTS executions_ended ON {schema}.executions (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS executions_created ON {schema}.executions (created_at DESC);

CREATE TABLE IF NOT EXISTS {schema}.node_runs (
    execution_id  uuid        NOT NULL REFERENCES {schema}.executions (id) ON DELETE CASCADE,
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    node_id       text        NOT NULL,
    handler       text        NOT NULL,
    attempt       integer     NOT NULL,
    status        smallint    NOT NULL,
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz NOT NULL,
    worker_id     text,
    error_type    text,
    error_message text,
    PRIMARY KEY (execution_id, seq)
);
-- The monitoring questions: max duration and failure rate per handler over a window.
CREATE INDEX IF NOT EXISTS node_runs_started ON {schema}.node_runs (started_at, handler);

CREATE TABLE IF NOT EXISTS {schema}.jobs (
    id             text PRIMARY KEY,          -- execution:node:attempt, so a duplicate enqueue is a no-op
    queue          text        NOT NULL,
    priority       smallint    NOT NULL,
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    not_before     timestamptz NOT NULL,
    lease_token    uuid,
    lease_expires  timestamptz,
    deliveries     integer     NOT NULL DEFAULT 0,
    payload        jsonb       NOT NULL
);
-- Claims read this index in order and stop at the batch size, whatever the backlog.
CREATE INDEX IF NOT EXISTS jobs_ready ON {schema}.jobs (queue, priority DESC, seq) WHERE lease_token IS NULL;
CREATE INDEX IF NOT EXISTS jobs_oldest ON {schema}.jobs (queue, seq) WHERE lease_token IS NULL;
CREATE INDEX IF NOT EXISTS jobs_leased ON {schema}.jobs (queue, lease_expires) WHERE lease_token IS NOT NULL;

CREATE TABLE IF NOT EXISTS {schema}.dead_letters (
    id     uuid PRIMARY KEY,
    at     timestamptz NOT NULL,
    entry  jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_at ON {schema}.dead_letters (at DESC);

CREATE TABLE IF NOT EXISTS {schema}.rate_events (
    handler  text        NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_events_handler ON {schema}.rate_events (handler, at);

-- Counts takes across workers without a hot row: every 10th value claims the oldest ready job (anti-starvation).
CREATE SEQUENCE IF NOT EXISTS {schema}.take_seq;

-- For cron schedules (a later feature): one row per schedule, claimed by next_run.
CREATE TABLE IF NOT EXISTS {schema}.schedules (
    id        text PRIMARY KEY,
    cron      text        NOT NULL,
    workflow  text        NOT NULL,
    input     jsonb,
    next_run  timestamptz NOT NULL,
    enabled   boolean     NOT NULL DEFAULT true
);
