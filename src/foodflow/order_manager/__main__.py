from foodflow.order_manager.app import create_app
from foodflow.serve import serve

serve("order_manager", create_app)
