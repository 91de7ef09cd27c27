"""The inventory service: catalogue, stock check, and reserve / commit / release of stock."""
