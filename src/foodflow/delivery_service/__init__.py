"""The delivery service: couriers, assignment of the nearest free courier, pickup, delivery.

Who moves an order, and so owns its version counter: the order manager's saga until the order
leaves it (CONFIRMED or FAILED); from CONFIRMED on, this service alone (assign, pick up,
deliver, cancel; the gateway's cancel comes here too). Each step reads the order's snapshot
from Redis, applies `foodflow.orders.lifecycle.advance` (version + 1) and stores it with the Redis
version guard, then announces it on `order_status_updates` (and DELIVERED/CANCELLED, enriched,
on `db_write_order_status`). If a save ever meets another writer, it re-reads and re-decides.
"""
