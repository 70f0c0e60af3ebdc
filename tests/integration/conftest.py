"""The real CLIs, installed once per session (tests/integration/clis.py); their versions are
printed at the end of the run, and why one was skipped.

Installing them all takes minutes on a clean machine (Aider's venv alone ~2 min), so when
the run holds a real-CLI test, the four installs start in threads as soon as the tests are
collected, side by side and while the rest of the suite runs; a test waits only for its own.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests.integration.clis import CLIS, Installed, InstallError, install

# name -> what ``--version`` said, or why it could not be installed
_SEEN: dict[str, str] = {}
_INSTALLS: dict[str, Future[Installed]] = {}
_POOL: ThreadPoolExecutor | None = None


def pytest_collection_finish(session: pytest.Session) -> None:
    global _POOL
    if _POOL is None and any(item.get_closest_marker("real_cli") for item in session.items):
        _POOL = ThreadPoolExecutor(max_workers=len(CLIS), thread_name_prefix="install")
        for name, cli in CLIS.items():
            _INSTALLS[name] = _POOL.submit(install, cli)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def real_cli() -> Callable[[str], Installed]:
    """``real_cli("codex")``: the installed CLI, or the test skips with the reason."""
    done: dict[str, Installed | InstallError] = {}

    def get(name: str) -> Installed:
        if name not in done:
            try:
                started = _INSTALLS.get(name)
                done[name] = started.result() if started is not None else install(CLIS[name])
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
