from foodflow.platform.serve import serve
from foodflow.pricing_service.app import create_app

if __name__ == "__main__":
    serve("pricing_service", create_app)
