-- The catalogue (with stock) and one reservation per order that asked for stock.
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
