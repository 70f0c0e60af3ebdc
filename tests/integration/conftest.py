"""The real CLIs, installed once per session (tests/integration/clis.py); their versions are
printed at the end of the run, and why one was skipped."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.clis import CLIS, Installed, InstallError, install

# name -> what ``--version`` said, or why it could not be installed
_SEEN: dict[str, str] = {}


@pytest.fixture(scope="session")
def real_cli() -> Callable[[str], Installed]:
    """``real_cli("codex")``: the installed CLI, or the test skips with the reason."""
    done: dict[str, Installed | InstallError] = {}

    def get(name: str) -> Installed:
        if name not in done:
            try:
                done[name] = install(CLIS[name])
                _SEEN[name] = f"{done[name].version_text} ({done[name].executable})"
            except InstallError as exc:
                done[name] = exc
                _SEEN[name] = f"not installed: {exc}"
        found = done[name]
        if isinstance(found, InstallError):
            pytest.skip(f"{name} could not be installed here: {found}")
        return found

    return get


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SEEN:
        terminalreporter.section("real agent CLIs")
        for name, text in sorted(_SEEN.items()):
            terminalreporter.write_line(f"{name}: {text}")
