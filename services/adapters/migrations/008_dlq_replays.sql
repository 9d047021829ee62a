-- DLQ replays (`loyalty dlq replay`, services/cli/dlq.py): one row per dead-lettered record
-- re-produced to its source topic, so replaying it again is a no-op.
CREATE TABLE dlq_replays (
    dlq_topic   text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    replayed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, partition, "offset")
);
