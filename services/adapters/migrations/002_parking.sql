-- Parked events (docs/parking.md): valid events waiting for a state of their transaction
-- that may still come. Rows are only read and changed under the transaction's row lock.
CREATE TABLE parked_events (
    id             bigserial   PRIMARY KEY,
    program        text        NOT NULL,
    transaction_id text        NOT NULL,
    event_key      text        NOT NULL,
    event_id       text        NOT NULL,
    action         text        NOT NULL,
    body           jsonb       NOT NULL,
    occurred_at    timestamptz NOT NULL,
    source         text        NOT NULL,
    reason         text        NOT NULL,
    parked_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (program, event_key)
);
CREATE INDEX parked_events_txn ON parked_events (program, transaction_id, id);
