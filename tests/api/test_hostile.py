"""A catalogue of hostile requests against the real daemon (issue 15).

Each is sent on its own connection to ``trio-wrapper serve`` on an ephemeral loopback
port, started once with a token. Each must be answered with the contract's JSON error
(status and code as listed, a message), leave no traceback in the daemon's stderr, and
leave the daemon healthy (``GET /api/health`` 200). Requests go out as raw bytes: the
malformed ones are what no HTTP client library would send.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.daemon import Daemon, running_daemon

TOKEN = "hostile-s3cret"
HOST = b"{HOST}"  # replaced by 127.0.0.1:<port>
KNOWN = "known"  # an agent that exists (created by the fixture)


@dataclass(frozen=True)
class Case:
    id: str
    status: int
    code: str
    method: str = "GET"
    target: str = "/api/health"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    auth: bool = False  # send the right token
    json: bool = False  # Content-Type: application/json
    raw: bytes | None = None  # the whole request, as is ({HOST} replaced)
    absent: tuple[bytes, ...] = field(default=())  # must not be in the response head

    def request(self, host: bytes) -> bytes:
        if self.raw is not None:
            return self.raw.replace(HOST, host)
        lines = [f"{self.method} {self.target} HTTP/1.1".encode(), b"Host: " + host]
        if self.auth:
            lines.append(f"Authorization: Bearer {TOKEN}".encode())
        if self.json:
            lines.append(b"Content-Type: application/json")
        names = {name.lower() for name, _ in self.headers}
        lines += [f"{name}: {value}".encode("latin-1") for name, value in self.headers]
        if self.body and not {"content-length", "transfer-encoding"} & names:
            lines.append(f"Content-Length: {len(self.body)}".encode())
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


def post(id: str, status: int, code: str, body: str | bytes, **kw: object) -> Case:
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    fields: dict[str, object] = {"auth": True, "json": True, **kw}
    return Case(
        id, status, code, "POST", str(fields.pop("target", "/api/agents")), body=data, **fields
    )  # type: ignore[arg-type]


def agent(**fields: object) -> str:
    return json.dumps({"name": "h", "command": ["true"], **fields})


def deep(depth: int) -> str:
    return '{"name": "h", "command": ' + "[" * depth + "]" * depth + "}"


BIG = 2 * 1024 * 1024
CASES = [
    # -- malformed bodies
    post("json-garbage", 400, "invalid_request", "{not json"),
    post("json-empty-body", 400, "invalid_request", b"", headers=(("Content-Length", "0"),)),
    post("json-array", 400, "invalid_request", "[1, 2]"),
    post("json-null", 400, "invalid_request", "null"),
    post("json-string", 400, "invalid_request", '"agent"'),
    post("json-trailing-garbage", 400, "invalid_request", agent() + " x"),
    post("json-nan", 400, "invalid_request", '{"name": "h", "command": ["true"], "x": NaN}'),
    post("json-invalid-utf8", 400, "invalid_request", b'{"name": "\xff\xfe", "command": []}'),
    post("json-bom", 400, "invalid_request", b"\xef\xbb\xbf" + agent().encode()),
    post("json-deep-arrays-100k", 400, "invalid_request", "[" * 100_000),
    post("json-deep-valid-40", 400, "invalid_request", deep(40)),
    post("json-deep-objects", 400, "invalid_request", '{"a":' * 50 + "1" + "}" * 50),
    post(
        "json-lone-surrogate-stdin",
        400,
        "invalid_request",
        '{"data": "\\ud800"}',
        target=f"/api/agents/{KNOWN}/input",
    ),
    # -- wrong types, unknown and missing fields
    post("type-name-int", 400, "invalid_request", '{"name": 5, "command": ["true"]}'),
    post("type-command-int", 400, "invalid_request", '{"name": "h", "command": 5}'),
    post("type-command-ints", 400, "invalid_request", '{"name": "h", "command": [1, 2]}'),
    post("type-env-int-value", 400, "invalid_request", agent(env={"A": 1})),
    post("type-env-list", 400, "invalid_request", agent(env=[])),
    post("type-stdin-string", 400, "invalid_request", agent(stdin="yes")),
    post("type-timeout-string", 400, "invalid_request", agent(timeout_seconds="10")),
    post("timeout-negative", 400, "invalid_request", agent(timeout_seconds=-1)),
    post("timeout-infinite", 400, "invalid_request", agent()[:-1] + ', "timeout_seconds": 1e400}'),
    post("format-unknown", 400, "invalid_request", agent(format="xml")),
    post("unknown-field", 400, "invalid_request", agent(bogus=1)),
    post("unknown-field-proto", 400, "invalid_request", agent(__proto__={})),
    post("missing-everything", 400, "invalid_request", "{}"),
    post("missing-command", 400, "invalid_request", '{"name": "h"}'),
    post("command-empty", 400, "invalid_request", agent(command=[])),
    post("command-empty-argv0", 400, "invalid_request", agent(command=[""])),
    post("command-nul", 400, "invalid_request", agent(command=["tr\u0000ue"])),
    post("command-surrogate", 400, "invalid_request", agent(command=["echo", "\ud800"])),
    post("args-nul", 400, "invalid_request", agent(command="echo", args=["a\u0000"])),
    post("cwd-nul", 400, "invalid_request", agent(cwd="/tmp\u0000/x")),
    post("cwd-missing", 422, "spawn_failed", agent(cwd="/no/such/dir")),
    post(
        "profile-unknown", 404, "unknown_profile", '{"name": "h", "profile": "nope", "prompt": "x"}'
    ),
    post(
        "prompt-nul",
        400,
        "invalid_request",
        '{"name": "h", "profile": "codex", "prompt": "a\\u0000"}',
    ),
    post("agent-exists", 409, "agent_exists", agent(name=KNOWN)),
    # -- names: traversal, control characters, length
    post("name-dotdot", 400, "invalid_name", agent(name="..")),
    post("name-traversal", 400, "invalid_name", agent(name="../../etc")),
    post("name-slash", 400, "invalid_name", agent(name="a/b")),
    post("name-nul", 400, "invalid_name", agent(name="a\u0000b")),
    post("name-newline", 400, "invalid_name", agent(name="a\nb")),
    post("name-empty", 400, "invalid_name", agent(name="")),
    post("name-too-long", 400, "invalid_name", agent(name="n" * 65)),
    post("name-unicode", 400, "invalid_name", agent(name="caf\u00e9")),
    post("name-space", 400, "invalid_name", agent(name="a b")),
    post("name-option", 400, "invalid_name", agent(name="-rf")),
    post("name-hidden", 400, "invalid_name", agent(name=".hidden")),
    # -- env
    post("env-key-nul", 400, "invalid_request", agent(env={"A\u0000B": "1"})),
    post("env-key-equals", 400, "invalid_request", agent(env={"A=B": "1"})),
    post("env-key-empty", 400, "invalid_request", agent(env={"": "1"})),
    post("env-value-nul", 400, "invalid_request", agent(env={"A": "x\u0000y"})),
    post("env-value-surrogate", 400, "invalid_request", agent(env={"A": "\udbff"})),
    # -- sizes
    post("body-2mib", 413, "body_too_large", agent(command=["echo", "x" * BIG])),
    post(
        "body-2mib-chunked",
        413,
        "body_too_large",
        b"%x\r\n%s\r\n0\r\n\r\n" % (BIG, b"x" * BIG),
        headers=(("Transfer-Encoding", "chunked"),),
    ),
    post(
        "stdin-2mib",
        413,
        "body_too_large",
        json.dumps({"data": "x" * BIG}),
        target=f"/api/agents/{KNOWN}/input",
    ),
    Case("header-100k", 431, "headers_too_large", headers=(("X-Big", "x" * 100_000),)),
    Case("header-20k", 431, "headers_too_large", headers=(("X-Big", "x" * 20_000),)),
    Case(
        "headers-1000",
        431,
        "headers_too_large",
        headers=tuple((f"X-H{i}", "y" * 20) for i in range(1000)),
    ),
    Case("url-20k", 431, "headers_too_large", target="/api/agents/" + "a" * 20_000),
    # -- HTTP framing (answered by hypercorn's h11 layer)
    Case("framing-garbage", 400, "invalid_request", raw=b"GARBAGE\r\n\r\n"),
    Case(
        "framing-no-host",
        400,
        "invalid_request",
        raw=b"GET /api/health HTTP/1.1\r\nConnection: close\r\n\r\n",
    ),
    Case(
        "framing-cr-in-value",
        400,
        "invalid_request",
        raw=b"GET /api/health HTTP/1.1\r\nHost: {HOST}\r\nX-A: a\rInjected: b\r\n\r\n",
    ),
    Case(
        "framing-nul-in-value",
        400,
        "invalid_request",
        raw=b"GET /api/health HTTP/1.1\r\nHost: {HOST}\r\nX-A: a\x00b\r\n\r\n",
    ),
    Case(
        "framing-space-in-name",
        400,
        "invalid_request",
        raw=b"GET /api/health HTTP/1.1\r\nHost: {HOST}\r\nBad Name: x\r\n\r\n",
    ),
    Case(
        "framing-negative-length",
        400,
        "invalid_request",
        raw=b"POST /api/agents HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: -1\r\n\r\n",
    ),
    Case(
        "framing-word-length",
        400,
        "invalid_request",
        raw=b"POST /api/agents HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: abc\r\n\r\n",
    ),
    Case(
        "framing-two-lengths",
        400,
        "invalid_request",
        raw=b"POST /api/agents HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1\r\n"
        b"Content-Length: 2\r\n\r\nxx",
    ),
    Case(
        "framing-bad-chunk",
        400,
        "invalid_request",
        raw=b"POST /api/agents HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n",
    ),
    Case(
        "framing-token-nul",
        400,
        "invalid_request",
        raw=b"POST /api/agents HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer \x00\r\n\r\n",
    ),
    Case(
        "framing-non-ascii-target",
        400,
        "invalid_request",
        raw=b"GET /api/agents/caf\xc3\xa9 HTTP/1.1\r\nHost: {HOST}\r\n\r\n",
    ),
    Case(
        "websocket-upgrade",
        400,
        "invalid_request",
        raw=b"GET /api/health HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n",
    ),
    # -- header injection through the path: the name comes back in the message, not a header
    Case(
        "inject-crlf-in-path",
        404,
        "agent_not_found",
        target="/api/agents/a%0d%0aX-Injected:%20yes",
        absent=(b"x-injected",),
    ),
    Case(
        "inject-crlf-in-query",
        400,
        "invalid_request",
        target="/api/events?history=1%0d%0aX-Injected:%20yes",
        absent=(b"x-injected",),
    ),
    # -- tokens
    post("token-missing", 401, "unauthorized", agent(), auth=False),
    post(
        "token-wrong",
        401,
        "unauthorized",
        agent(),
        auth=False,
        headers=(("Authorization", "Bearer nope"),),
    ),
    post(
        "token-empty",
        401,
        "unauthorized",
        agent(),
        auth=False,
        headers=(("Authorization", "Bearer "),),
    ),
    post(
        "token-prefix",
        401,
        "unauthorized",
        agent(),
        auth=False,
        headers=(("Authorization", f"Bearer {TOKEN[:-1]}"),),
    ),
    post(
        "token-longer",
        401,
        "unauthorized",
        agent(),
        auth=False,
        headers=(("Authorization", f"Bearer {TOKEN}x"),),
    ),
    post(
        "token-basic-scheme",
        401,
        "unauthorized",
        agent(),
        auth=False,
        headers=(("Authorization", f"Basic {TOKEN}"),),
    ),
    post(
        "token-in-query-on-post",
        401,
        "unauthorized",
        agent(),
        auth=False,
        target=f"/api/agents?access_token={TOKEN}",
    ),
    Case(
        "token-in-query-on-delete",
        401,
        "unauthorized",
        "DELETE",
        f"/api/agents/{KNOWN}?access_token={TOKEN}",
    ),
    Case("token-missing-delete", 401, "unauthorized", "DELETE", f"/api/agents/{KNOWN}"),
    Case(
        "token-latin1",
        401,
        "unauthorized",
        "DELETE",
        f"/api/agents/{KNOWN}",
        headers=(("Authorization", "Bearer caf\u00e9"),),
    ),
    # -- Origin and Host
    post(
        "origin-evil",
        403,
        "origin_not_allowed",
        agent(),
        headers=(("Origin", "http://evil.example"),),
    ),
    post("origin-null", 403, "origin_not_allowed", agent(), headers=(("Origin", "null"),)),
    Case(
        "origin-evil-delete",
        403,
        "origin_not_allowed",
        "DELETE",
        f"/api/agents/{KNOWN}",
        auth=True,
        headers=(("Origin", "http://localhost.evil.example"),),
    ),
    Case(
        "host-evil",
        403,
        "host_not_allowed",
        raw=b"GET /api/health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    ),
    Case(
        "host-suffix",
        403,
        "host_not_allowed",
        raw=b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1.evil.example\r\n"
        b"Connection: close\r\n\r\n",
    ),
    Case(
        "host-broken-bracket",
        403,
        "host_not_allowed",
        raw=b"GET /api/health HTTP/1.1\r\nHost: [::1\r\nConnection: close\r\n\r\n",
    ),
    Case(
        "host-empty",
        403,
        "host_not_allowed",
        raw=b"GET /api/health HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
    ),
    # -- SSE parameters
    Case("sse-history-superscript", 400, "invalid_request", target="/api/events?history=%C2%B2"),
    Case("sse-history-negative", 400, "invalid_request", target="/api/events?history=-1"),
    Case("sse-history-word", 400, "invalid_request", target="/api/events?history=abc"),
    Case("sse-history-above-cap", 400, "invalid_request", target="/api/events?history=99999999"),
    Case(
        "sse-history-5000-digits",
        400,
        "invalid_request",
        target="/api/events?history=" + "9" * 5000,
    ),
    Case(
        "sse-last-event-id-superscript",
        400,
        "invalid_request",
        target="/api/events",
        headers=(("Last-Event-ID", "\u00b2"),),
    ),
    Case(
        "sse-last-event-id-negative",
        400,
        "invalid_request",
        target="/api/events",
        headers=(("Last-Event-ID", "-5"),),
    ),
    Case(
        "sse-last-event-id-huge",
        400,
        "invalid_request",
        target="/api/events",
        headers=(("Last-Event-ID", "9" * 30),),
    ),
    Case(
        "sse-last-event-id-arabic-query",
        400,
        "invalid_request",
        target=f"/api/agents/{KNOWN}/stream?last_event_id=%D9%A1",
    ),
    Case(
        "sse-last-event-id-float-query",
        400,
        "invalid_request",
        target=f"/api/agents/{KNOWN}/stream?last_event_id=1e3",
    ),
    Case("sse-unknown-agent", 404, "agent_not_found", target="/api/agents/ghost/stream"),
    # -- other query strings
    Case("query-status-unknown", 400, "invalid_request", target="/api/agents?status=sleepy"),
    Case(
        "query-tail-superscript",
        400,
        "invalid_request",
        target=f"/api/agents/{KNOWN}/logs?tail=%C2%B2",
    ),
    Case("query-tail-zero", 400, "invalid_request", target=f"/api/agents/{KNOWN}/logs?tail=0"),
    Case(
        "query-tail-huge",
        400,
        "invalid_request",
        target=f"/api/agents/{KNOWN}/logs?tail=" + "9" * 40,
    ),
    Case(
        "query-stream-traversal",
        400,
        "invalid_request",
        target=f"/api/agents/{KNOWN}/logs?stream=../../etc/passwd",
    ),
    Case(
        "query-limit-superscript",
        400,
        "invalid_request",
        target=f"/api/agents/{KNOWN}?include_matches=true&limit=%C2%B2",
    ),
    Case(
        "query-limit-above",
        400,
        "invalid_request",
        target=f"/api/agents/{KNOWN}?include_matches=true&limit=10001",
    ),
    Case(
        "query-include-matches-word",
        400,
        "invalid_request",
        target=f"/api/agents/{KNOWN}?include_matches=maybe",
    ),
    # -- traversal in paths
    Case("path-dotdot-agent", 404, "agent_not_found", target="/api/agents/%2e%2e/logs"),
    Case("path-encoded-slash", 404, "not_found", target="/api/agents/..%2f..%2fetc%2fpasswd/logs"),
    Case("path-dotdot-raw", 404, "not_found", target="/api/agents/../../etc/passwd"),
    Case(
        "path-docs-asset-traversal",
        404,
        "not_found",
        target="/docs/assets/..%2f..%2f..%2fetc%2fpasswd",
    ),
    Case("path-docs-asset-dotdot", 404, "agent_not_found", target="/api/agents/.."),
    Case("path-static", 404, "not_found", target="/static/../../etc/passwd"),
    Case("path-invalid-utf8", 404, "agent_not_found", target="/api/agents/%ff%fe"),
    Case("path-nul", 404, "agent_not_found", target="/api/agents/a%00b"),
    Case("path-unknown", 404, "not_found", target="/api/nothing"),
    Case("path-trailing-slash", 404, "not_found", target="/api/agents/"),
    # -- methods
    Case("method-put-no-token", 401, "unauthorized", "PUT", "/api/agents"),
    Case("method-put", 405, "method_not_allowed", "PUT", "/api/agents", auth=True),
    Case("method-patch", 405, "method_not_allowed", "PATCH", f"/api/agents/{KNOWN}", auth=True),
    Case("method-post-events", 405, "method_not_allowed", "POST", "/api/events", auth=True),
    Case("method-delete-health", 405, "method_not_allowed", "DELETE", "/api/health", auth=True),
    Case("method-trace", 405, "method_not_allowed", "TRACE", "/api/health", auth=True),
    Case("method-invented", 405, "method_not_allowed", "BREW", "/api/agents", auth=True),
    # -- content types
    post(
        "type-text-plain",
        415,
        "unsupported_media_type",
        agent(),
        json=False,
        headers=(("Content-Type", "text/plain"),),
    ),
    post(
        "type-form",
        415,
        "unsupported_media_type",
        "name=h",
        json=False,
        headers=(("Content-Type", "application/x-www-form-urlencoded"),),
    ),
    post(
        "type-multipart",
        415,
        "unsupported_media_type",
        agent(),
        json=False,
        headers=(("Content-Type", "multipart/form-data; boundary=x"),),
    ),
    post("type-missing", 415, "unsupported_media_type", agent(), json=False),
    post(
        "type-json-lookalike",
        415,
        "unsupported_media_type",
        agent(),
        json=False,
        headers=(("Content-Type", "application/jsonx"),),
    ),
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    workdir: Path = tmp_path_factory.mktemp("hostile")
    with running_daemon(workdir, env={"TRIO_WRAPPER_AUTH_TOKEN": TOKEN}) as started:
        with started.client() as http:
            created = http.post(
                "/api/agents",
                json={"name": KNOWN, "command": ["cat"], "stdin": True},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert created.status_code == 201, created.text
        yield started


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """Send ``request`` on a new connection and read one answer: its head, then its body
    by ``Content-Length`` or chunks (quart-trio does not close a connection after
    ``Connection: close``, so reading to the end would wait for the keep-alive timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            # Answered and closed before taking it all: the answer is still there to read.
            sock.sendall(request)
        data = b""

        def more() -> bool:
            nonlocal data
            with contextlib.suppress(ConnectionResetError):
                chunk = sock.recv(65536)
                data += chunk
                return bool(chunk)
            return False

        while b"\r\n\r\n" not in data and more():
            pass
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        fields = {k.lower(): v for k, v in (ln.split(": ", 1) for ln in lines if ": " in ln)}
        if "content-length" in fields:
            while len(data) - len(head) - 4 < int(fields["content-length"]) and more():
                pass
            body = data[len(head) + 4 :]
        elif fields.get("transfer-encoding") == "chunked":
            while not data.endswith(b"0\r\n\r\n") and more():
                pass
            body = dechunk(data[len(head) + 4 :])
    return int(status_line.split()[1]), fields, body, head


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


def test_the_catalogue_is_large_and_unique() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_hostile_request(daemon: Daemon, case: Case) -> None:
    status, fields, body, head = exchange(
        daemon.port, case.request(f"127.0.0.1:{daemon.port}".encode())
    )
    assert status == case.status, (status, body[:300])
    assert fields.get("content-type", "").startswith("application/json"), (fields, body[:300])
    error = json.loads(body)["error"]
    assert error["code"] == case.code, error
    assert isinstance(error["message"], str) and error["message"]
    for needle in case.absent:
        assert needle not in head.lower()
    with daemon.client() as http:
        assert http.get("/api/health").status_code == 200
    assert daemon.process.poll() is None
    log = daemon.log
    assert "Traceback" not in log and "Error in ASGI" not in log, log[-3000:]
