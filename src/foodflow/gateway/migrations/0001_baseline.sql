-- Baseline: the gateway's tables as they stood before migrations; idempotent over such a database.

-- Users of the public API (gateway), and the orders they placed through it: who owns which
-- order, and the Idempotency-Key that placed it.
CREATE TABLE IF NOT EXISTS users (
    user_id         UUID PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('customer', 'courier', 'admin')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS customer_orders (
    order_id        UUID PRIMARY KEY,
    user_id         UUID NOT NULL REFERENCES users (user_id),
    idempotency_key TEXT,
    request_hash    TEXT NOT NULL,
    request         JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS customer_orders_user_created ON customer_orders (user_id, created_at DESC);
