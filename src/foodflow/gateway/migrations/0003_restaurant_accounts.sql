-- Restaurant staff: an account bound to the restaurant it works for (the restaurant service's
-- restaurant id: its staff see and act on that restaurant's orders only).
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('customer', 'courier', 'restaurant', 'operator', 'admin'));

ALTER TABLE users ADD COLUMN IF NOT EXISTS restaurant_id TEXT;
ALTER TABLE users ADD CONSTRAINT users_restaurant_id_for_restaurants
    CHECK (restaurant_id IS NULL OR role = 'restaurant');
