"""The order saga: consumes `validated_orders` and drives each order to a final state."""
