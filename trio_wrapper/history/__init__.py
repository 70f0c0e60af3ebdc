"""A run's files on disk: paths, the atomic meta file, history found at start, log tails.

Blocking file I/O, no trio.
"""
