"""The payment service: a simulated card provider with a ledger in PostgreSQL."""
