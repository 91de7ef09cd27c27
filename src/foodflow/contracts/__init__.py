"""Every Kafka message and every service-to-service HTTP body, as pydantic models, in one place."""
