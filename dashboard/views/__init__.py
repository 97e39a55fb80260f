"""The server-rendered dashboard: one module per area, re-exported for dashboard/urls.py."""
