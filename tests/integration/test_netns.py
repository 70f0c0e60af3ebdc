"""The loopback-only network namespace the real-CLI tests run in."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.integration.netns import NetnsUnavailable, loopback_only, reaches_outside


def _namespace() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_only_loopback_inside_and_back_after() -> None:
    before = _namespace()
    try:
        with loopback_only():
            assert _namespace() != before
            assert not reaches_outside()
            with socket.create_server(("127.0.0.1", 0)) as server:
                port = server.getsockname()[1]
                # A child started inside shares the namespace: it reaches the server.
                code = f"import socket; socket.create_connection(('127.0.0.1', {port}), 5)"
                assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0
    except NetnsUnavailable as exc:
        pytest.skip(f"no network namespace of its own here: {exc}")
    assert _namespace() == before
