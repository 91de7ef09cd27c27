"""The restaurant service: kitchens, their menus and opening hours, and one ticket per order a
kitchen cooks.

Who moves an order: from CONFIRMED on, this service moves the kitchen's steps
(RESTAURANT_ACCEPTED or RESTAURANT_REJECTED, PREPARING, READY_FOR_PICKUP) and the delivery
service the courier's and every cancellation. Each step reads the order's snapshot from
PostgreSQL, applies `foodflow.orders.lifecycle.advance` (version + 1), stores it behind the
version guard and announces it on `order_status_updates`, within the transaction that records
the ticket's step.
"""
