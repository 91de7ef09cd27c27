"""The gateway: public HTTP edge of foodflow (menu, live dashboard, order API) on port 8000."""
