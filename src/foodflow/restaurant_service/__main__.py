from foodflow.platform.serve import serve
from foodflow.restaurant_service.app import create_app

if __name__ == "__main__":
    serve("restaurant_service", create_app)
