"""Pure domain logic: statuses, lines, names, specs and their resolution from a request,
errors, time formats, and the typed shapes of the contract (``models``).

Imports no trio, Quart or hypercorn (checked by the import contract in `make lint`).
"""
