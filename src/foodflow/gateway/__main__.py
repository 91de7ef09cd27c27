from foodflow.gateway.app import create_app
from foodflow.platform.serve import serve

if __name__ == "__main__":
    serve("gateway", create_app)
