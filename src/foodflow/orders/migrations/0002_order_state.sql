-- The truth of every order's current state: the saga resumes from it, the delivery service moves
-- it on, the sweeper finds unfinished orders in it. Redis keeps a copy (`order_status:<id>`) as
-- a cache that may be flushed at any moment.
CREATE TABLE IF NOT EXISTS order_state (
    order_id      UUID PRIMARY KEY,
    version       INTEGER NOT NULL,
    status        TEXT NOT NULL,
    in_saga       BOOLEAN NOT NULL,     -- not yet CONFIRMED or final: the saga still drives it
    snapshot      TEXT NOT NULL,        -- OrderSnapshot JSON: the status with its whole history
    request       TEXT,                 -- ValidatedOrder JSON, for re-driving an unfinished saga
    created_at    TIMESTAMPTZ NOT NULL, -- when the saga took the order in
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until TIMESTAMPTZ           -- a sweeper's lease on an unfinished order
);
CREATE INDEX IF NOT EXISTS order_state_in_saga ON order_state (created_at) WHERE in_saga;
CREATE INDEX IF NOT EXISTS order_state_updated ON order_state (updated_at) WHERE NOT in_saga;
