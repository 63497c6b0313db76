"""Offline stand-ins for the upstream market-data services: a WSGI test server, faithful fake APIs
speaking the upstreams' wire formats (errors included), and deterministic synthetic price series."""
