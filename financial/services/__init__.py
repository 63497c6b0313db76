"""Business logic behind the API: each service answers one resource group with plain Python data."""
