"""trio_wrapper: run AI coding-agent CLIs as child processes and watch them work."""

__version__ = "0.1.0"
