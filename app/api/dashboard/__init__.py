"""The dashboard page: `GET /dashboard`, the fleet at a glance, for operators (ADMIN_API_TOKEN)."""
