"""The delivery service: couriers, sending the nearest free courier so as to reach the
restaurant when the food is ready, arrival, pickup, delivery, and every cancellation.

Who moves an order, and so owns its version counter: the order manager's saga until the order
leaves it (CONFIRMED or FAILED); from CONFIRMED on, the restaurant service moves the kitchen's
steps (accepted or rejected, preparing, ready) and this service the courier's (assign, pick
up, deliver) and every cancellation (a customer's, no courier, a restaurant's rejection; the
gateway's cancel comes here too). Each step reads the order's snapshot, applies
`foodflow.orders.lifecycle.advance` (version + 1) and stores it behind the version guard, then
announces it on `order_status_updates` (and, enriched, on `db_write_order_status`). If a save
ever meets another writer, it re-reads and re-decides.
"""
