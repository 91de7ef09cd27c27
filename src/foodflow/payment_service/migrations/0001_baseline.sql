-- Payments (payment_service): one row per order, and a ledger of every operation, keyed by
-- the caller's idempotency key so that a repeated request is answered from the ledger.
CREATE TABLE IF NOT EXISTS payments (
    order_id        UUID PRIMARY KEY,
    state           TEXT NOT NULL
                    CHECK (state IN ('AUTHORISED', 'DECLINED', 'CAPTURED', 'VOIDED', 'REFUNDED')),
    amount_cents    BIGINT NOT NULL CHECK (amount_cents >= 0),
    captured_cents  BIGINT NOT NULL DEFAULT 0 CHECK (captured_cents >= 0),
    refunded_cents  BIGINT NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    currency        TEXT NOT NULL DEFAULT 'EUR',
    decline_code    TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (refunded_cents <= captured_cents AND captured_cents <= amount_cents)
);

CREATE TABLE IF NOT EXISTS payment_ledger (
    idempotency_key TEXT PRIMARY KEY,
    order_id        UUID NOT NULL,
    operation       TEXT NOT NULL CHECK (operation IN ('AUTHORISE', 'CAPTURE', 'VOID', 'REFUND')),
    amount_cents    BIGINT NOT NULL,
    approved        BOOLEAN NOT NULL,
    state           TEXT NOT NULL,
    response        JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS payment_ledger_order ON payment_ledger (order_id, created_at);
