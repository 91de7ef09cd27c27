from foodflow.order_manager.app import create_app
from foodflow.platform.serve import serve

if __name__ == "__main__":
    serve("order_manager", create_app)
