-- Loyalty engine schema. Every row is scoped by program (DESIGN.md 5.7).

CREATE TABLE customers (
    program             text        NOT NULL,
    customer_id         text        NOT NULL,
    score               bigint      NOT NULL DEFAULT 0,
    spendable           bigint      NOT NULL DEFAULT 0,
    pending             bigint      NOT NULL DEFAULT 0,
    spent               bigint      NOT NULL DEFAULT 0,
    purchase_total      numeric     NOT NULL DEFAULT 0,
    purchase_count      integer     NOT NULL DEFAULT 0,
    purchase_items      numeric     NOT NULL DEFAULT 0,
    purchase_first_date timestamptz,
    purchase_last_date  timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program, customer_id)
);

-- The transaction aggregate is stored whole in ``doc`` (items, coupons, offers, snapshot
-- fields); the columns beside it are what queries, locks and timers filter on.
CREATE TABLE transactions (
    program        text        NOT NULL,
    transaction_id text        NOT NULL,
    customer_id    text,
    status         text        NOT NULL,
    type           text        NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    accepted_at    timestamptz,
    auto_accept_at timestamptz,
    doc            jsonb       NOT NULL,
    PRIMARY KEY (program, transaction_id)
);
CREATE INDEX transactions_customer ON transactions (program, customer_id, created_at DESC);
CREATE INDEX transactions_due ON transactions (auto_accept_at) WHERE status = 'pending';

CREATE TABLE status_history (
    id             bigserial   PRIMARY KEY,
    program        text        NOT NULL,
    transaction_id text        NOT NULL,
    from_status    text,
    to_status      text        NOT NULL,
    event_key      text        NOT NULL,
    action         text        NOT NULL,
    at             timestamptz NOT NULL
);
CREATE INDEX status_history_txn ON status_history (program, transaction_id, id);

-- Points ledger: balances in ``customers`` always equal the sums of these deltas.
CREATE TABLE points_ledger (
    id             bigserial   PRIMARY KEY,
    program        text        NOT NULL,
    customer_id    text        NOT NULL,
    transaction_id text,
    movement       text        NOT NULL,
    points         bigint      NOT NULL CHECK (points >= 0),
    score          bigint      NOT NULL,
    spendable      bigint      NOT NULL,
    pending        bigint      NOT NULL,
    spent          bigint      NOT NULL,
    event_key      text        NOT NULL,
    at             timestamptz NOT NULL
);
CREATE INDEX points_ledger_customer ON points_ledger (program, customer_id);
CREATE INDEX points_ledger_txn ON points_ledger (program, transaction_id);

-- Inbox: one row per handled inbound event, written in the same database transaction as
-- its effects (docs/idempotency.md).
CREATE TABLE inbox (
    program      text        NOT NULL,
    event_key    text        NOT NULL,
    action       text,
    source       text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program, event_key)
);

-- Transactional outbox (docs/outbox.md). ``lane`` is a hash of (topic, key): all rows of
-- one key share a lane and a lane is published by one relay at a time, in id order.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    lane         integer     NOT NULL,
    topic        text        NOT NULL,
    key          bytea,
    value        bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (lane, id) WHERE published_at IS NULL;
