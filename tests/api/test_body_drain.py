"""``RequestBody``: the end of a request's body, awaited whoever reads it (memory channels
stand in for hypercorn's queue)."""

from __future__ import annotations

import trio
import trio.testing

from trio_wrapper.api.body_drain import RequestBody


def chunk(data: bytes, more: bool = True) -> dict[str, object]:
    return {"type": "http.request", "body": data, "more_body": more}


async def test_the_rest_of_the_body_is_read_and_dropped() -> None:
    send, receive = trio.open_memory_channel[dict[str, object]](10)
    body = RequestBody(receive.receive)  # type: ignore[arg-type]
    for message in (chunk(b"a" * 10), chunk(b"b" * 10), chunk(b"", more=False)):
        await send.send(message)
    assert not body.ended
    assert await body.wait_end(1000)
    assert body.ended and receive.statistics().current_buffer_used == 0


async def test_an_end_read_by_the_app_itself_is_seen() -> None:
    send, receive = trio.open_memory_channel[dict[str, object]](10)
    body = RequestBody(receive.receive)  # type: ignore[arg-type]
    result: list[bool] = []

    async def waiter() -> None:
        result.append(await body.wait_end(1000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert result == []  # nothing has come yet
        await send.send(chunk(b"x"))
        await send.send(chunk(b"", more=False))
    assert result == [True]


async def test_a_disconnect_ends_it() -> None:
    send, receive = trio.open_memory_channel[dict[str, object]](10)
    body = RequestBody(receive.receive)  # type: ignore[arg-type]
    await send.send(chunk(b"x"))
    await send.send({"type": "http.disconnect"})
    assert await body.wait_end(1000)


async def test_too_much_after_the_answer_gives_up() -> None:
    send, receive = trio.open_memory_channel[dict[str, object]](100)
    body = RequestBody(receive.receive)  # type: ignore[arg-type]
    for _ in range(20):
        await send.send(chunk(b"z" * 100))
    assert not await body.wait_end(1000)  # 1,100 bytes read, no end in sight
    assert not body.ended
