"""Kafka topic names. The first three are the seed design's, exactly."""

VALIDATED_ORDERS = "validated_orders"
ORDER_STATUS_UPDATES = "order_status_updates"
DB_WRITE_ORDER_STATUS = "db_write_order_status"
DEAD_LETTER = "dead_letter_orders"

ALL_TOPICS = (VALIDATED_ORDERS, ORDER_STATUS_UPDATES, DB_WRITE_ORDER_STATUS, DEAD_LETTER)
