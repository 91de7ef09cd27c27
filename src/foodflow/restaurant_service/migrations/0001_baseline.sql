-- Restaurants (restaurant_service): the kitchens with their place, hours and capacity, which
-- kitchen cooks which item, and one ticket per order a kitchen cooks. Named `kitchen…` so they
-- never meet the delivery service's old `restaurants` and `restaurant_items`.
CREATE TABLE IF NOT EXISTS kitchens (
    restaurant_id   TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    lat             DOUBLE PRECISION NOT NULL,
    lon             DOUBLE PRECISION NOT NULL,
    -- Hours are local to `timezone`; equal times: open all day; closes before opens: past midnight.
    timezone        TEXT NOT NULL DEFAULT 'Europe/Berlin',
    opens_at        TIME NOT NULL DEFAULT '00:00',
    closes_at       TIME NOT NULL DEFAULT '00:00',
    accepting       BOOLEAN NOT NULL DEFAULT true,
    -- Tickets ACCEPTED or PREPARING at once; past it a new order is rejected (KITCHEN_BUSY).
    capacity        INTEGER NOT NULL DEFAULT 20 CHECK (capacity > 0),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS kitchen_menu (
    item_id         TEXT PRIMARY KEY,
    restaurant_id   TEXT NOT NULL REFERENCES kitchens (restaurant_id),
    prep_minutes    NUMERIC(5, 1) NOT NULL CHECK (prep_minutes >= 0),
    available       BOOLEAN NOT NULL DEFAULT true,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS kitchen_menu_restaurant ON kitchen_menu (restaurant_id);

CREATE TABLE IF NOT EXISTS kitchen_tickets (
    order_id        UUID PRIMARY KEY,
    restaurant_id   TEXT NOT NULL REFERENCES kitchens (restaurant_id),
    state           TEXT NOT NULL CHECK (state IN
                    ('PENDING', 'ACCEPTED', 'PREPARING', 'READY', 'PICKED_UP', 'REJECTED',
                     'CANCELLED')),
    lines           JSONB NOT NULL,
    ready_by        TIMESTAMPTZ,
    reason          TEXT,
    detail          TEXT,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS kitchen_tickets_restaurant ON kitchen_tickets (restaurant_id, state);
CREATE INDEX IF NOT EXISTS kitchen_tickets_waiting ON kitchen_tickets (state, received_at);

INSERT INTO kitchens (restaurant_id, name, lat, lon) VALUES
    ('tokyo-kitchen',  'Tokyo Kitchen',  52.5200, 13.4050),
    ('saigon-street',  'Saigon Street',  52.5000, 13.4200),
    ('napoli-oven',    'Napoli Oven',    52.5300, 13.3800),
    ('central-kitchen','Central Kitchen',52.5150, 13.3900)
ON CONFLICT (restaurant_id) DO NOTHING;

-- Every item of the seed menu; items on no menu are cooked by central-kitchen.
INSERT INTO kitchen_menu (item_id, restaurant_id, prep_minutes) VALUES
    ('sushi-set', 'tokyo-kitchen', 15), ('ramen', 'tokyo-kitchen', 12),
    ('gyoza', 'tokyo-kitchen', 8), ('green-tea', 'tokyo-kitchen', 5),
    ('pho-bo', 'saigon-street', 12), ('banh-mi', 'saigon-street', 7),
    ('spring-rolls', 'saigon-street', 8), ('pad-thai', 'saigon-street', 10),
    ('margherita', 'napoli-oven', 12), ('pepperoni', 'napoli-oven', 14),
    ('cheeseburger', 'central-kitchen', 10), ('veggie-burger', 'central-kitchen', 10),
    ('caesar-salad', 'central-kitchen', 6), ('falafel-wrap', 'central-kitchen', 7),
    ('chicken-tikka', 'central-kitchen', 20), ('mango-lassi', 'central-kitchen', 5)
ON CONFLICT (item_id) DO NOTHING;
