"""A run's files on disk: paths, the atomic meta file (``runfiles``), the events file
(``events``), history found at start, log tails (``logtail``).

Blocking file I/O, no trio.
"""
