"""The HTTP face (Quart-Trio): app wiring, routes, the SSE adapter, JSON responses and errors."""
