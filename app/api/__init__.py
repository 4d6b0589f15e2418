"""The HTTP API served beside the fleet."""
