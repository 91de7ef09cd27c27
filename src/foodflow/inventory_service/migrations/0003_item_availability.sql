-- Whether the restaurant that cooks an item offers it now: staff mark an item unavailable (out
-- of an ingredient) through the restaurant service, which tells the inventory. An unavailable
-- item is off the public menu and counts as short, so an order for it fails OUT_OF_STOCK.
-- Apart from the stock on purpose: the stock is kept as it is for when the item comes back.
ALTER TABLE inventory_items ADD COLUMN IF NOT EXISTS available BOOLEAN NOT NULL DEFAULT true;
