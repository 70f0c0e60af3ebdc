"""The HTTP routes, one module per resource; each ``install`` adds its routes to the app."""
