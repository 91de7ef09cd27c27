-- Operators run the dashboard; a courier's account is bound to the courier row they ride as
-- (the delivery service's courier id: only that courier reports its deliveries' steps).
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('customer', 'courier', 'operator', 'admin'));

ALTER TABLE users ADD COLUMN IF NOT EXISTS courier_id TEXT;
ALTER TABLE users ADD CONSTRAINT users_courier_id_for_couriers
    CHECK (courier_id IS NULL OR role = 'courier');
