"""`python -m foodflow.order_writer`: serve the writer on settings.order_writer_port."""

from foodflow.order_writer.app import create_app
from foodflow.platform.serve import serve

if __name__ == "__main__":
    serve("order_writer", create_app)
