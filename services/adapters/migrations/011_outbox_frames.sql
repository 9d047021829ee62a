-- Outbox rows hold their messages' keys, values and headers as one bytea of frames
-- (issue 12; services/adapters/outbox_frames.py): PostgreSQL stores it as it comes, where it
-- built three arrays and a jsonb per row at about five times the CPU. ``topics`` stays: the
-- relay counts and filters messages by it, and ``loyalty outbox status`` counts per topic.
-- Message i's frame: key length (int32, -1 for no key), value length, headers length (0 for
-- none), then the key, the value and the headers' JSON. Rows written before are converted.
ALTER TABLE outbox ADD COLUMN frames bytea;
UPDATE outbox o SET frames = (
    SELECT string_agg(
        int4send(coalesce(length(m.k), -1)) || int4send(length(m.v)) || int4send(octet_length(m.h))
            || coalesce(m.k, ''::bytea) || m.v || m.h,
        ''::bytea ORDER BY m.i)
    FROM (
        SELECT u.k, u.v, u.i,
               CASE WHEN jsonb_array_length(o.headers -> (u.i::int - 1)) > 0
                    THEN convert_to((o.headers -> (u.i::int - 1))::text, 'UTF8')
                    ELSE ''::bytea END AS h
        FROM unnest(o.keys, o.payloads) WITH ORDINALITY AS u(k, v, i)
    ) AS m
);
ALTER TABLE outbox
    DROP CONSTRAINT outbox_packed,
    DROP COLUMN keys,
    DROP COLUMN payloads,
    DROP COLUMN headers,
    ALTER COLUMN frames SET NOT NULL,
    ADD CONSTRAINT outbox_packed CHECK (cardinality(topics) > 0);
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN frames SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 unavailable: the outbox keeps pglz';
END $$;
-- One packed row, as write_outbox passes it (migration 010's per-message type is replaced).
CREATE TYPE outbox_row AS (lane integer, topics text[], frames bytea);
DROP TYPE outbox_message;
