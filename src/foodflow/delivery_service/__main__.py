from foodflow.delivery_service.app import create_app
from foodflow.platform.serve import serve

if __name__ == "__main__":
    serve("delivery_service", create_app)
