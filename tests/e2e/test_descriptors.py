"""A daemon short of file descriptors refuses new streams and agents with a JSON 503 while
it still has some left, keeps answering plain requests, and takes them again once
descriptors are freed. Run under a small RLIMIT_NOFILE (its hard limit, so the daemon's own
raise to the hard limit cannot lift it)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import httpx

from tests.daemon import Daemon, poll
from tests.helpers import REPO

LIMIT = 160
RESERVE = 40
# Sets the open-file limit, then becomes the daemon.
WITH_LIMIT = (
    "import os, resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({LIMIT}, {LIMIT})); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def open_stream(port: int) -> tuple[socket.socket, int, bytes]:
    """A raw SSE request; the socket, the status and what came with the head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    if status != 200:  # the error body follows the head
        while b"}}" not in rest:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return sock, status, rest


def test_refuses_streams_and_agents_before_descriptors_run_out(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, env={"TRIO_WRAPPER_LIMITS_FD_RESERVE": str(RESERVE)}, cwd=REPO)
    daemon.args = [sys.executable, "-c", WITH_LIMIT, *daemon.args]
    socks: list[socket.socket] = []
    with daemon:
        try:
            refused: tuple[int, bytes] | None = None
            for _ in range(LIMIT):  # more than could ever fit
                sock, status, rest = open_stream(daemon.port)
                socks.append(sock)
                if status != 200:
                    refused = (status, rest)
                    break
            assert refused is not None, "every stream was taken: no refusal before EMFILE"
            status, body = refused
            assert status == 503
            error = json.loads(body[body.index(b"{") : body.rindex(b"}") + 1])["error"]
            assert error["code"] == "too_many_open_files", error
            assert "limits.fd_reserve" in error["message"]
            streams = len(socks) - 1
            assert streams > 20, f"only {streams} streams before the refusal"
            with httpx.Client(base_url=daemon.url, timeout=10) as http:
                # The reserve is there for everything else.
                assert http.get("/api/health").status_code == 200
                created = http.post("/api/agents", json={"name": "late", "command": ["true"]})
                assert created.status_code == 503, created.text
                assert created.json()["error"]["code"] == "too_many_open_files"
                for sock in socks:
                    sock.close()
                socks.clear()

                def admitted() -> bool:  # once the daemon has counted again
                    answer = http.post("/api/agents", json={"name": "late", "command": ["true"]})
                    return answer.status_code == 201

                poll(admitted, 20, "agents were still refused after the streams closed")
        finally:
            for sock in socks:
                sock.close()
            # By itself, promptly: the sampler is one of the tasks the daemon must end.
            code = daemon.stop(20)
    assert code == 0, f"exit status {code} (-9: killed after 20 s):\n{daemon.log}"
