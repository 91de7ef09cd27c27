from foodflow.gateway.app import create_app
from foodflow.serve import serve

if __name__ == "__main__":
    serve("gateway", create_app)
