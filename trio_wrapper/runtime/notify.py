"""``[notify] webhook``: a JSON POST when an agent starts waiting, fails or completes.

An ``AgentObserver``: a status change puts a notification in a bounded queue (full: the
newest is dropped and counted), nothing more, so no agent ever waits for it. One task,
owned by the lifecycle, sends them in order: plain HTTP/1.1 over trio (TLS for
``https://``), each try within ``timeout_seconds``, at most ``attempts`` tries with
``retry_delay_seconds`` between them; then it is dropped and logged. A 2xx answer is a
delivery; anything else (or no answer) is a failed try.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
import trio

from trio_wrapper.config import NotifyConfig
from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.status import Status
from trio_wrapper.core.timefmt import now_local, rfc3339
from trio_wrapper.extract.found import Found

if TYPE_CHECKING:
    from trio_wrapper.runtime.agent import Agent

log = logging.getLogger(__name__)

# The statuses a notification is sent for, and the event name it carries.
EVENTS: dict[Status, str] = {
    Status.WAITING: "waiting",
    Status.FAILED: "failed",
    Status.COMPLETED: "completed",
}
MAX_ANSWER_BYTES = 64 * 1024
# At shutdown, how long what is queued gets to go out (the agents' ends among it).
FLUSH_SECONDS = 5.0


class Notification(msgspec.Struct, kw_only=True):
    """The JSON body of one POST."""

    event: str
    agent: str
    run_id: str
    status: str
    detail: str
    timestamp: str
    exit_code: int | None = None
    waiting_since: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    https: bool
    host: str
    port: int
    path: str
    host_header: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        https = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if https else 80)
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        return cls(https, host, port, path, parts.netloc)


class Notifier:
    """Queues a notification per status change worth one; ``run`` sends them."""

    def __init__(self, config: NotifyConfig) -> None:
        self.config = config
        self.target = Target.parse(config.webhook)
        self._send, self._receive = trio.open_memory_channel[bytes](config.queue_size)
        self.sent_total = 0
        self.dropped_total = 0  # queue full
        self.failed_total = 0  # every try failed
        self._encoder = msgspec.json.Encoder()
        self._scope = trio.CancelScope()
        self._done = trio.Event()

    # ---- AgentObserver --------------------------------------------------------------

    def on_lines(self, agent: Agent, stream: str, first_line_num: int, batch: LineBatch) -> None:
        return None

    def on_records(self, agent: Agent, found: Found, counts_by_type: Mapping[str, int]) -> None:
        return None

    def on_removed(self, agent: Agent) -> None:
        return None

    def on_status(self, agent: Agent, old: Status | None, new: Status) -> None:
        event = EVENTS.get(new)
        if event is None:
            return
        note = Notification(
            event=event,
            agent=agent.name,
            run_id=f"{agent.name}/{agent.files.stamp}",
            status=new.value,
            detail=agent.status_detail,
            timestamp=rfc3339(now_local()) or "",
            exit_code=agent.exit_code,
            waiting_since=rfc3339(agent.waiting_since),
        )
        try:
            self._send.send_nowait(self._encoder.encode(note))
        except trio.ClosedResourceError:
            return  # shutting down
        except trio.WouldBlock:
            self.dropped_total += 1
            if self.dropped_total == 1 or self.dropped_total % 100 == 0:
                log.warning(
                    "notify: queue full, %d notification(s) dropped so far",
                    self.dropped_total,
                    extra={"event": "notify_dropped", "dropped": self.dropped_total},
                )

    # ---- the sender -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send the queued notifications, one at a time, until ``close``."""
        with self._scope:
            task_status.started()
            async for body in self._receive:
                await self._deliver(body)
        self._done.set()

    async def close(self, grace: float = FLUSH_SECONDS) -> None:
        """No more notifications; those queued get ``grace`` seconds to go out."""
        self._send.close()
        with trio.move_on_after(grace):
            await self._done.wait()
        self._scope.cancel()

    async def _deliver(self, body: bytes) -> None:
        config = self.config
        problem = ""
        for attempt in range(config.attempts):
            if attempt:
                await trio.sleep(config.retry_delay_seconds)
            try:
                with trio.fail_after(config.timeout_seconds):
                    status = await self.post(body)
            except (OSError, trio.TooSlowError, trio.BrokenResourceError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if 200 <= status < 300:
                self.sent_total += 1
                return
            problem = f"HTTP {status}"
        self.failed_total += 1
        log.warning(
            "notify: could not deliver to the webhook after %d tries (%s)",
            config.attempts,
            problem,
            extra={"event": "notify_failed", "reason": problem},
        )

    async def post(self, body: bytes) -> int:
        """One POST of ``body``; the answer's status code."""
        target = self.target
        stream: trio.abc.Stream
        if target.https:
            stream = await trio.open_ssl_over_tcp_stream(
                target.host, target.port, ssl_context=ssl.create_default_context()
            )
        else:
            stream = await trio.open_tcp_stream(target.host, target.port)
        async with stream:
            head = (
                f"POST {target.path} HTTP/1.1\r\n"
                f"Host: {target.host_header}\r\n"
                "Content-Type: application/json\r\n"
                "User-Agent: trio-wrapper\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            await stream.send_all(head.encode("latin-1") + body)
            answer = b""
            while b"\r\n" not in answer and len(answer) < MAX_ANSWER_BYTES:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                answer += chunk
        return status_code(answer)


def status_code(answer: bytes) -> int:
    """The status of an HTTP/1.x answer's first line; ``ValueError`` if it is none."""
    first = answer.split(b"\r\n", 1)[0].split()
    if len(first) < 2 or not first[0].startswith(b"HTTP/") or not first[1].isdigit():
        raise ValueError(f"not an HTTP answer: {answer[:80]!r}")
    return int(first[1])


def describe(notifier: Notifier | None) -> dict[str, Any]:
    """The notifier's figures (for logs and tests)."""
    if notifier is None:
        return {}
    return {
        "sent": notifier.sent_total,
        "dropped": notifier.dropped_total,
        "failed": notifier.failed_total,
    }
