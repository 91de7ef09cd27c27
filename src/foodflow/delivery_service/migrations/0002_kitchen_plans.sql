-- Restaurants are the restaurant service's now (its own tables: kitchens, kitchen_menu): a
-- delivery learns where to collect the food, and when it will be ready, from the order's
-- kitchen plan (RESTAURANT_ACCEPTED on), not from a table here. Taken in at CONFIRMED, a
-- delivery has no restaurant until one accepts the order.
ALTER TABLE deliveries
    ADD COLUMN IF NOT EXISTS restaurant_name TEXT,
    ADD COLUMN IF NOT EXISTS pickup_lat DOUBLE PRECISION,
    ADD COLUMN IF NOT EXISTS pickup_lon DOUBLE PRECISION,
    -- When the kitchen says the food will be ready (moved by a delay), and whether it is.
    ADD COLUMN IF NOT EXISTS ready_by TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS food_ready BOOLEAN NOT NULL DEFAULT false,
    -- The courier's trip: when assigned, when due at the restaurant riding at
    -- COURIER_SPEED_KMH, when they reported being there (the ETA follows a delay from these).
    ADD COLUMN IF NOT EXISTS assigned_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS courier_due_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS arrived_at TIMESTAMPTZ,
    ALTER COLUMN restaurant_id DROP NOT NULL;

-- Deliveries from before: the restaurant they were given at intake is their pickup point, and
-- their food was ready at once (there was no kitchen to wait for). A waiting one's order is
-- CONFIRMED, which no kitchen will move on now: the waiting limit cancels and refunds it.
UPDATE deliveries d
SET restaurant_name = r.name, pickup_lat = r.lat, pickup_lon = r.lon,
    ready_by = d.waiting_since, food_ready = true
FROM restaurants r
WHERE r.restaurant_id = d.restaurant_id AND d.pickup_lat IS NULL;

-- The dispatch rounds look for waiting deliveries, earliest ready first.
DROP INDEX IF EXISTS deliveries_waiting;
CREATE INDEX IF NOT EXISTS deliveries_waiting_ready ON deliveries (ready_by)
    WHERE state = 'WAITING';

DROP TABLE IF EXISTS restaurant_items;
DROP TABLE IF EXISTS restaurants;
