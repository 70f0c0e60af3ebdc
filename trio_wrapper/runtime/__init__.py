"""The trio side: child processes, the line pipeline, the extraction worker's host,
the SSE hub and the supervisor. Thin adapters over the pure packages.
"""
