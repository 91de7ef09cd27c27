"""PostgreSQL access shared by every service: the connection pool."""
