-- Version 2: the execution document is stored as UTF-8 JSON bytes, not jsonb. Every transition reads and rewrites
-- the whole document; jsonb parsing on write and rendering on read cost 4× the bytes themselves (measured: 2.6 ms vs
-- 0.6 ms to rewrite a 200-node document). Nothing queries inside the document, so jsonb bought nothing.
ALTER TABLE {schema}.executions ALTER COLUMN state TYPE bytea USING convert_to(state::text, 'UTF8');
-- lz4 compresses the document several times faster than the default pglz; servers built without lz4 keep pglz.
DO $$
BEGIN
    ALTER TABLE {schema}.executions ALTER COLUMN state SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL;
END $$;
