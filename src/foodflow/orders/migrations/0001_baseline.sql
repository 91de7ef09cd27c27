-- Baseline: the order tables as they stood before migrations; idempotent over such a database.

-- Final state of each order, written by order_writer from `db_write_order_status`.
CREATE TABLE IF NOT EXISTS orders (
    order_id        UUID PRIMARY KEY,
    user_id         TEXT NOT NULL,
    status          TEXT NOT NULL,
    reason          TEXT,
    detail          TEXT,
    version         INTEGER NOT NULL,
    subtotal        NUMERIC(12, 2),
    discount        NUMERIC(12, 2),
    delivery_fee    NUMERIC(12, 2),
    small_order_fee NUMERIC(12, 2),
    tax             NUMERIC(12, 2),
    total           NUMERIC(12, 2),
    currency        TEXT,
    promo_code      TEXT,
    price_breakdown JSONB,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_user_created ON orders (user_id, created_at DESC);

CREATE TABLE IF NOT EXISTS order_items (
    order_id    UUID NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    item_id     TEXT NOT NULL,
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    unit_price  NUMERIC(10, 2),          -- NULL when the order failed before pricing
    line_total  NUMERIC(12, 2),
    PRIMARY KEY (order_id, item_id)
);

CREATE TABLE IF NOT EXISTS order_status_history (
    order_id    UUID NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT,
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, version)
);
