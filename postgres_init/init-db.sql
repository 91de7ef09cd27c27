-- foodflow schema and seed menu. Idempotent: safe to run on every start (the Postgres
-- container runs it once from /docker-entrypoint-initdb.d; `foodflow infra up` runs it always).

CREATE TABLE IF NOT EXISTS inventory_items (
    item_id     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    price       NUMERIC(10, 2) NOT NULL CHECK (price >= 0),
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per order that asked for stock: the idempotency key of reserve/commit/release.
CREATE TABLE IF NOT EXISTS stock_reservations (
    order_id    UUID PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('RESERVED', 'COMMITTED', 'RELEASED', 'REJECTED')),
    items       JSONB NOT NULL,
    detail      JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

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

-- The seed menu. ON CONFLICT DO NOTHING keeps stock that orders have already used.
INSERT INTO inventory_items (item_id, name, price, stock) VALUES
    ('sushi-set',       'Sushi set (12 pieces)',       25.50, 1000),
    ('pho-bo',          'Pho bo (beef noodle soup)',    9.00, 1000),
    ('pad-thai',        'Pad thai',                    11.50, 1000),
    ('banh-mi',         'Banh mi',                      7.50, 1000),
    ('margherita',      'Pizza margherita',            10.00, 1000),
    ('pepperoni',       'Pizza pepperoni',             12.50, 1000),
    ('cheeseburger',    'Cheeseburger',                 9.90, 1000),
    ('veggie-burger',   'Veggie burger',                9.50, 1000),
    ('caesar-salad',    'Caesar salad',                 8.75, 1000),
    ('ramen',           'Tonkotsu ramen',              13.00, 1000),
    ('falafel-wrap',    'Falafel wrap',                 7.90, 1000),
    ('chicken-tikka',   'Chicken tikka masala',        12.90, 1000),
    ('gyoza',           'Gyoza (6 pieces)',             5.50, 1000),
    ('spring-rolls',    'Spring rolls (4 pieces)',      4.50, 1000),
    ('mango-lassi',     'Mango lassi',                  3.90, 1000),
    ('green-tea',       'Green tea',                    2.50, 1000)
ON CONFLICT (item_id) DO NOTHING;

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

-- Delivery (delivery_service): restaurants (pickup points), which restaurant cooks which item,
-- couriers with their position and availability, and one delivery per delivered order.
CREATE TABLE IF NOT EXISTS restaurants (
    restaurant_id   TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    lat             DOUBLE PRECISION NOT NULL,
    lon             DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS restaurant_items (
    item_id         TEXT PRIMARY KEY,
    restaurant_id   TEXT NOT NULL REFERENCES restaurants (restaurant_id)
);

CREATE TABLE IF NOT EXISTS couriers (
    courier_id      TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    lat             DOUBLE PRECISION NOT NULL,
    lon             DOUBLE PRECISION NOT NULL,
    available       BOOLEAN NOT NULL DEFAULT true,
    current_order   UUID,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS deliveries (
    order_id        UUID PRIMARY KEY,
    user_id         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN
                    ('WAITING', 'ASSIGNED', 'PICKED_UP', 'DELIVERED', 'CANCELLING', 'CANCELLED')),
    restaurant_id   TEXT NOT NULL,
    address         TEXT NOT NULL,
    lat             DOUBLE PRECISION NOT NULL,
    lon             DOUBLE PRECISION NOT NULL,
    courier_id      TEXT,
    distance_km     NUMERIC(8, 2),
    eta_minutes     INTEGER,
    cancel_reason   TEXT,
    waiting_since   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deliveries_waiting ON deliveries (state, waiting_since);

INSERT INTO restaurants (restaurant_id, name, lat, lon) VALUES
    ('tokyo-kitchen',  'Tokyo Kitchen',  52.5200, 13.4050),
    ('saigon-street',  'Saigon Street',  52.5000, 13.4200),
    ('napoli-oven',    'Napoli Oven',    52.5300, 13.3800),
    ('central-kitchen','Central Kitchen',52.5150, 13.3900)
ON CONFLICT (restaurant_id) DO NOTHING;

INSERT INTO restaurant_items (item_id, restaurant_id) VALUES
    ('sushi-set', 'tokyo-kitchen'), ('ramen', 'tokyo-kitchen'), ('gyoza', 'tokyo-kitchen'),
    ('green-tea', 'tokyo-kitchen'), ('pho-bo', 'saigon-street'), ('banh-mi', 'saigon-street'),
    ('spring-rolls', 'saigon-street'), ('pad-thai', 'saigon-street'),
    ('margherita', 'napoli-oven'), ('pepperoni', 'napoli-oven')
ON CONFLICT (item_id) DO NOTHING;

INSERT INTO couriers (courier_id, name, lat, lon) VALUES
    ('courier-01', 'Anna',   52.5210, 13.4100), ('courier-02', 'Ben',    52.5050, 13.4250),
    ('courier-03', 'Chloe',  52.5320, 13.3750), ('courier-04', 'David',  52.5100, 13.3850),
    ('courier-05', 'Emre',   52.4950, 13.4400), ('courier-06', 'Fatima', 52.5400, 13.4100),
    ('courier-07', 'Georg',  52.5180, 13.3600), ('courier-08', 'Hana',   52.5010, 13.3950),
    ('courier-09', 'Ivan',   52.5250, 13.4300), ('courier-10', 'Julia',  52.5120, 13.4150)
ON CONFLICT (courier_id) DO NOTHING;

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
