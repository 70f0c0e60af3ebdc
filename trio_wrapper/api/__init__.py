"""The HTTP face (Quart-Trio): ``app`` wires it; ``routes`` (one module per resource),
``guards`` (host, token), ``handlers`` (errors), ``requests`` / ``responses`` (JSON in and
out), ``errors`` (refusal code → HTTP status), ``openapi``, and the SSE adapter."""
