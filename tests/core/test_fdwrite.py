"""Every byte to a descriptor, however little each write takes."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest

from trio_wrapper.core.fdwrite import write_all


def test_parts_go_in_order_through_short_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    received = bytearray()
    takes = iter([1, 4, 2, 1000, 3] * 100)
    calls: list[int] = []

    def short_writev(fd: int, buffers: Sequence[memoryview]) -> int:
        calls.append(len(buffers))
        piece = b"".join(buffers)[: next(takes)]
        received.extend(piece)
        return len(piece)

    monkeypatch.setattr(os, "writev", short_writev)
    parts = [b"header", b"", memoryview(b"records " * 50), b"k"]
    write_all(-1, *parts)
    assert bytes(received) == b"".join(parts)
    assert len(calls) > 3, "the writes were not short: the test would prove nothing"
    assert 0 not in calls  # no empty writev, not even for the empty part


def test_one_writev_when_the_descriptor_takes_it_all(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    calls = []
    real = os.writev

    def counted(fd: int, buffers: Sequence[memoryview]) -> int:
        calls.append(fd)
        return real(fd, buffers)

    monkeypatch.setattr(os, "writev", counted)
    try:
        write_all(write_end, b"a", b"bc", memoryview(b"def"))
        write_all(write_end)  # nothing: no call
        assert os.read(read_end, 100) == b"abcdef"
        assert calls == [write_end]
    finally:
        os.close(read_end)
        os.close(write_end)
