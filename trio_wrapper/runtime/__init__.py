"""The trio side: child processes, the line pipeline, the extraction worker's host,
the SSE hub and the supervisor. Thin adapters over the pure packages.

- ``agent``: one run's task tree and status transitions (the readers: the hot path)
- ``process``: spawning, the child's streams, group signals, stdin
- ``views``: what is shown of a run (list entry, detail, meta file), as ``core.models``
- ``supervisor``: the registry, start / remove / shutdown, history at start
- ``lifecycle``: the order the hub and supervisor start and stop in (daemon and app)
"""
