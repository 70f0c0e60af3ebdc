"""Server-Sent Events as data: the wire format and the ring of recent events. Pure."""
