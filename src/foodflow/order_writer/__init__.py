"""The PostgreSQL writer: consumes `db_write_order_status`, keeps `orders` and its children."""
