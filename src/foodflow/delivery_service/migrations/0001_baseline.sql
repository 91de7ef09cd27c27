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
