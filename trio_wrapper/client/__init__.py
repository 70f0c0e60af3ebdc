"""The command-line client: ``trio-wrapper ls``, ``start``, ``tail -f``, ``run``… talk to a
running daemon over its HTTP API, with the standard library only.

- ``http``: requests, error answers turned into one line, Server-Sent Events read live.
- ``sse``: the SSE wire format, parsed line by line (pure).
- ``render``: tables, durations, records and stream events as text, colour on a TTY (pure).
- ``flags``: the subcommands' flags and help (plain text).
- ``commands``: what each subcommand asks the daemon and prints.

The client imports nothing of the daemon's async stack (no trio, Quart, runtime or api).
"""
