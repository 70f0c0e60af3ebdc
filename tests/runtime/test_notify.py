"""``[notify] webhook``: a JSON POST per agent that starts waiting, fails or completes, to a
receiver on 127.0.0.1; bounded queue, bounded tries, never blocking the status change."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import trio

from trio_wrapper.config import NotifyConfig
from trio_wrapper.core.status import Status
from trio_wrapper.runtime.notify import Notifier, Target, status_code


@dataclass
class Files:
    stamp: str = "2026-12-06-10-00-00"


@dataclass
class FakeAgent:
    name: str = "a1"
    status_detail: str = ""
    exit_code: int | None = None
    waiting_since: datetime | None = None
    files: Files = field(default_factory=Files)


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that keeps each POST's JSON body and answers with
    the next of ``statuses`` (200 once they run out)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.changed = trio.Event()
        self.port = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(fields["content-length"])
        while len(body) < length:
            body += await stream.receive_some(4096)
        self.paths.append(lines[0].split()[1])
        self.bodies.append(json.loads(body))
        status = self.statuses.pop(0) if self.statuses else 200
        await stream.send_all(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        self.changed.set()
        self.changed = trio.Event()

    async def start(self, nursery: trio.Nursery) -> str:
        serve = functools.partial(trio.serve_tcp, self.handle, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        self.port = listeners[0].socket.getsockname()[1]
        return f"http://127.0.0.1:{self.port}/hook?x=1"

    async def wait_bodies(self, count: int) -> None:
        with trio.fail_after(30):
            while len(self.bodies) < count:
                await self.changed.wait()


def config(url: str, **extra: Any) -> NotifyConfig:
    return NotifyConfig(webhook=url, retry_delay_seconds=0.0, **extra)


async def test_waiting_failed_completed_are_posted_in_order() -> None:
    async with trio.open_nursery() as nursery:
        receiver = Receiver()
        notifier = Notifier(config(await receiver.start(nursery)))
        await nursery.start(notifier.run)
        agent: Any = FakeAgent(status_detail="prompt: >", waiting_since=datetime(2026, 12, 6))
        notifier.on_status(agent, Status.RUNNING, Status.WAITING)
        notifier.on_status(agent, Status.WAITING, Status.RUNNING)  # not worth a POST
        notifier.on_status(agent, Status.STARTING, Status.RUNNING)
        agent.status_detail, agent.exit_code = "exit code 0", 0
        notifier.on_status(agent, Status.RUNNING, Status.COMPLETED)
        agent.status_detail, agent.exit_code = "exit code 3", 3
        notifier.on_status(agent, Status.RUNNING, Status.FAILED)
        await receiver.wait_bodies(3)
        await notifier.close()
        nursery.cancel_scope.cancel()
    assert [b["event"] for b in receiver.bodies] == ["waiting", "completed", "failed"]
    first = receiver.bodies[0]
    assert first["agent"] == "a1" and first["run_id"] == "a1/2026-12-06-10-00-00"
    assert first["detail"] == "prompt: >" and first["waiting_since"].startswith("2026-12-06")
    assert receiver.bodies[2]["exit_code"] == 3
    assert receiver.paths == ["/hook?x=1"] * 3
    assert notifier.sent_total == 3 and notifier.failed_total == 0


async def test_a_refused_post_is_tried_again_then_given_up() -> None:
    async with trio.open_nursery() as nursery:
        receiver = Receiver([500, 200, 503, 503])
        notifier = Notifier(config(await receiver.start(nursery), attempts=2))
        await nursery.start(notifier.run)
        agent: Any = FakeAgent()
        notifier.on_status(agent, Status.RUNNING, Status.COMPLETED)  # 500, then 200
        notifier.on_status(agent, Status.RUNNING, Status.FAILED)  # 503, 503: given up
        await receiver.wait_bodies(4)
        await notifier.close()
        nursery.cancel_scope.cancel()
    assert [b["event"] for b in receiver.bodies] == ["completed"] * 2 + ["failed"] * 2
    assert notifier.sent_total == 1 and notifier.failed_total == 1


async def test_nothing_listening_is_a_failed_notification() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now: connections are refused
    notifier = Notifier(config(f"http://127.0.0.1:{port}/", attempts=2))
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        notifier.on_status(FakeAgent(), Status.RUNNING, Status.WAITING)  # type: ignore[arg-type]
        await notifier.close(grace=30)
    assert notifier.failed_total == 1 and notifier.sent_total == 0


def test_a_full_queue_drops_the_newest_and_never_blocks() -> None:
    notifier = Notifier(config("http://127.0.0.1:9/", queue_size=2))
    agent: Any = FakeAgent()
    for _ in range(5):
        notifier.on_status(agent, Status.RUNNING, Status.WAITING)
    assert notifier.dropped_total == 3


def test_targets_and_answers() -> None:
    target = Target.parse("https://hooks.example:8443/a/b?c=d")
    assert (target.https, target.host, target.port, target.path) == (
        True,
        "hooks.example",
        8443,
        "/a/b?c=d",
    )
    assert Target.parse("http://[::1]/").port == 80
    assert status_code(b"HTTP/1.1 204 No Content\r\n\r\n") == 204
    with pytest.raises(ValueError, match="not an HTTP answer"):
        status_code(b"SSH-2.0-OpenSSH\r\n")
