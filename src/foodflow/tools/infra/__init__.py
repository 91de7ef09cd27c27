"""Real Kafka, PostgreSQL and Redis as local processes, no Docker: `foodflow infra ...`."""
