-- Whether an item is on the public listing: the gateway's /menu (and so what a customer may
-- order) and the dashboard's stock panel. Pricing still prices every item.
-- A flag the item's creator sets, rather than a rule on reserved id prefixes: the creator knows
-- whether an item is for customers (`foodflow bench` and `foodflow chaos` create theirs
-- unlisted), and no real dish is ever hidden because its id happens to start like a tool's.
ALTER TABLE inventory_items ADD COLUMN IF NOT EXISTS listed BOOLEAN NOT NULL DEFAULT true;

-- Once: the items bench, chaos and test runs left in a catalogue before there was a flag (they
-- filled the public menu), taken off the listing. Kept, not deleted: orders name them.
UPDATE inventory_items SET listed = false
WHERE item_id LIKE 'bench-%' OR item_id LIKE 'chaos-%' OR item_id LIKE 'test-%';
