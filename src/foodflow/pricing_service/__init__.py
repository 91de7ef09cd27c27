"""The pricing service: `/calculate_price` turns order lines into a price breakdown."""
