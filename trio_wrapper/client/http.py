"""The daemon's HTTP API, from the client's side (standard library only).

Every failure becomes a ``ClientError`` whose message is one line for the user: the
daemon is not reachable, or it answered an error (its JSON ``code`` and ``message``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from trio_wrapper.client.sse import SseEvent, SseParser

REQUEST_TIMEOUT = 60.0  # a DELETE waits out the agent's stop grace (10 s by default)
# The daemon pings a quiet stream every 15 s: a stream silent for this long is dead.
STREAM_TIMEOUT = 60.0


class ClientError(Exception):
    """A request that did not get the answer wanted; the message is one line."""


class DaemonUnreachable(ClientError):
    """No connection to the daemon (down, wrong URL, network)."""


class ApiError(ClientError):
    """The daemon (or a proxy in front of it) answered an error status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})" if code else message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Endpoint:
    """Where the daemon answers: scheme, host, port and the path prefix (``root_path``)."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https"):
            raise ClientError(f"bad --url {url!r}: only http:// and https:// are supported")
        try:
            port = parts.port
        except ValueError:
            raise ClientError(f"bad --url {url!r}: the port is not a number") from None
        if not parts.hostname:
            raise ClientError(f"bad --url {url!r}: no host")
        default = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, parts.hostname, port or default, parts.path.rstrip("/"))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.prefix}"


def agent_path(name: str, *rest: str) -> str:
    """``/api/agents/<name>/<rest…>`` with the name quoted (a bad name then gets the
    daemon's 404, never another route)."""
    return "/".join(["/api/agents", quote(name, safe=""), *rest])


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise ClientError(f"the daemon answered HTTP {self.status} with no JSON") from None


class Http:
    """Requests to one daemon, each on a new connection (a CLI makes a handful)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = REQUEST_TIMEOUT):
        self.endpoint = Endpoint.parse(url)
        self.token = token
        self.timeout = timeout

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        ep = self.endpoint
        if ep.scheme == "https":
            context = ssl.create_default_context()
            return http.client.HTTPSConnection(ep.host, ep.port, timeout=timeout, context=context)
        return http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)

    def _target(self, path: str, query: Mapping[str, object] | None) -> str:
        target = self.endpoint.prefix + path
        if query:
            pairs = {k: _query_value(v) for k, v in query.items() if v is not None}
            if pairs:
                target += "?" + urlencode(pairs)
        return target

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, object] | None = None,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        sent = {"Accept": "application/json", **(headers or {})}
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        conn = self._connection(self.timeout if timeout is None else timeout)
        try:
            conn.request(method, self._target(path, query), body=payload, headers=sent)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise DaemonUnreachable(
                f"cannot reach the daemon at {self.endpoint}: {_reason(exc)} "
                "(is 'trio-wrapper serve' running? see --url)"
            ) from None
        return conn, response

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, object] | None = None,
        body: object = None,
    ) -> Answer:
        """The answer of a 2xx; ``ApiError`` for any other status."""
        conn, response = self._send(method, path, query=query, body=body)
        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise DaemonUnreachable(
                f"the connection to {self.endpoint} broke: {_reason(exc)}"
            ) from None
        finally:
            conn.close()
        answer = Answer(response.status, response.getheader("Content-Type", ""), data)
        if not 200 <= response.status < 300:
            raise _api_error(answer, response.reason)
        return answer

    def json(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, object] | None = None,
        body: object = None,
    ) -> Any:
        return self.request(method, path, query=query, body=body).json()

    def get(self, path: str, **query: object) -> Any:
        return self.json("GET", path, query=query)

    def stream(
        self,
        path: str,
        *,
        query: Mapping[str, object] | None = None,
        last_event_id: int | None = None,
    ) -> Iterator[SseEvent]:
        """The events of an SSE route as they arrive, until the daemon ends the stream
        (a 204, a finished agent's stream, shutdown). A dropped connection ends it too:
        the caller decides whether to resume with the last id it saw."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        conn, response = self._send(
            "GET", path, query=query, headers=headers, timeout=STREAM_TIMEOUT
        )
        try:
            if response.status == 204:
                return
            if response.status != 200:
                answer = Answer(response.status, response.getheader("Content-Type", ""), b"")
                with contextlib.suppress(OSError, http.client.HTTPException):
                    answer = Answer(answer.status, answer.content_type, response.read())
                raise _api_error(answer, response.reason)
            parser = SseParser()
            while True:
                try:
                    raw = response.readline()
                except (OSError, http.client.HTTPException):
                    return  # cut: the caller may resume
                if not raw:
                    return
                event = parser.feed(raw.decode("utf-8", "replace").rstrip("\r\n"))
                if event is not None:
                    yield event
        finally:
            conn.close()


def _query_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})" if exc.strerror else "unknown host"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _api_error(answer: Answer, reason: str) -> ApiError:
    """The daemon's ``{"error": {"code", "message"}}``, else the status line (a proxy's
    HTML page, say)."""
    try:
        error = json.loads(answer.body)["error"]
        return ApiError(answer.status, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(answer.status, "", f"the server answered HTTP {answer.status} {reason}")
