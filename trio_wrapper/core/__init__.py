"""Pure domain logic: statuses, lines, formats, errors, time formats, API shapes.

Imports no trio, Quart or hypercorn (checked by the import contract in `make lint`).
"""
