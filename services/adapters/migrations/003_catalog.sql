-- Reference data from loyalty.catalog (services/core/docs/catalog.md). Products, stores and
-- offers are documents by (program, kind, id); coupons hold state and belong to a customer.
CREATE TABLE catalog (
    program    text        NOT NULL,
    kind       text        NOT NULL,
    id         text        NOT NULL,
    doc        jsonb       NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (program, kind, id)
);

CREATE TABLE coupons (
    program     text        NOT NULL,
    code        text        NOT NULL,
    customer_id text        NOT NULL,
    status      text        NOT NULL,
    doc         jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (program, code)
);
CREATE INDEX coupons_customer ON coupons (program, customer_id);
