"""The extraction worker: a child process that runs the extractors, off the daemon's core.

    python -m trio_wrapper.extract.worker      (started by the daemon, never by hand)

JSON decoding is most of what extraction costs, and Python runs it on one core at a
time: in the daemon it would share that core with capture, HTTP and SSE. Here it gets a
core of its own. The daemon sends each batch of lines (joined by ``\\n``) and gets back
what was found, already encoded (:class:`Found`); it never decodes a record.

Frames on stdin and stdout: a 4-byte big-endian length and one msgpack message (below);
a ``Feed`` is followed by its ``size`` bytes of lines and an ``Extracted`` by its
``data_size`` + ``kinds_size`` bytes, raw, so megabytes are never copied into or out of
msgpack. The daemon writes ``Hello`` once (the user rules), then any number of ``Open``,
``Feed`` and ``Finish`` for its agents' runs; the worker answers every ``Feed`` and
``Finish`` with one ``Extracted``, in order. It exits when stdin closes. Pure apart from
the two streams, so it is tested in-process with pipes.
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import signal
import struct
import sys
from collections.abc import Callable, Sequence
from typing import BinaryIO, Final, Protocol, TypeAlias

import msgspec

from trio_wrapper.core.fdwrite import write_all
from trio_wrapper.core.lines import Lines
from trio_wrapper.core.malloc import IdleTrim
from trio_wrapper.extract import Extractor, Rule, make_extractor
from trio_wrapper.extract.figures import UsageFigure
from trio_wrapper.extract.found import NOTHING, Found

HEADER: Final = struct.Struct(">I")
MAX_FRAME: Final = 256 * 1024 * 1024  # far above any batch: a larger length is corruption
GC_THRESHOLD: Final = 50_000


class Hello(msgspec.Struct, tag="hello", array_like=True):
    rules: bytes  # pickle of a list of Rule: the daemon's own, already validated


class Open(msgspec.Struct, tag="open", array_like=True):
    run: int
    format: str


class Feed(msgspec.Struct, tag="feed", array_like=True):
    run: int
    first_line_num: int
    stream: str
    count: int  # lines in the payload (they are joined by "\n")
    size: int  # bytes of payload that follow


class Finish(msgspec.Struct, tag="finish", array_like=True):
    run: int


class Extracted(msgspec.Struct, tag="extracted", array_like=True):
    run: int
    format: str  # what the extractor is now (``auto`` decides)
    in_code_block: bool
    finished: bool  # the answer to Finish: the run is closed
    data_size: int  # Found.data follows, then Found.kinds
    kinds_size: int
    # Event types the extractor did not know, counted since its previous answer.
    unknown: dict[str, int] = msgspec.field(default_factory=dict)
    # The batch's usage figures, condensed (Found.usage: a few records, decoded with the header).
    usage: list[UsageFigure] = msgspec.field(default_factory=list)


ToWorker: TypeAlias = Hello | Open | Feed | Finish

_to_worker = msgspec.msgpack.Decoder(ToWorker)
_from_worker = msgspec.msgpack.Decoder(Extracted)
_encoder = msgspec.msgpack.Encoder()


def frame(message: ToWorker | Extracted) -> bytes:
    body = _encoder.encode(message)
    return HEADER.pack(len(body)) + body


class FrameError(ValueError):
    """The byte stream is not a sequence of frames."""


class ReplyReader:
    """The daemon's side: bytes from the worker in (as they arrive), complete answers out
    (each with its payload, joined once)."""

    __slots__ = ("_have", "_header", "_parts", "_want")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._have = 0
        self._header: Extracted | None = None
        self._want = HEADER.size

    def feed(self, data: bytes | bytearray) -> list[tuple[Extracted, bytes, bytes]]:
        out: list[tuple[Extracted, bytes, bytes]] = []
        self._parts.append(data if type(data) is bytes else bytes(data))
        self._have += len(data)
        while self._have >= self._want:
            buffer = b"".join(self._parts)
            start = 0
            while len(buffer) - start >= self._want:
                start = self._take(buffer, start, out)
            self._parts = [buffer[start:]] if start < len(buffer) else []
            self._have = len(buffer) - start
        return out

    def _take(self, buffer: bytes, start: int, out: list[tuple[Extracted, bytes, bytes]]) -> int:
        header = self._header
        if header is None:
            length: int = HEADER.unpack_from(buffer, start)[0]
            if length > MAX_FRAME:
                raise FrameError(f"frame of {length} bytes")
            if len(buffer) - start < HEADER.size + length:
                self._want = HEADER.size + length
                return start
            end = start + HEADER.size + length
            self._header = _from_worker.decode(buffer[start + HEADER.size : end])
            self._want = self._header.data_size + self._header.kinds_size
            return end
        end = start + self._want
        middle = start + header.data_size
        out.append((header, buffer[start:middle], buffer[middle:end]))
        self._header = None
        self._want = HEADER.size
        return end


class Worker:
    """The worker's state: one extractor per open run."""

    def __init__(self) -> None:
        self.rules: Sequence[Rule] = ()
        self.extractors: dict[int, Extractor] = {}

    def feed(self, message: Feed, data: bytes) -> tuple[Extracted, Found]:
        extractor = self.extractors[message.run]
        found = NOTHING
        if message.count:
            lines = Lines(data, message.count)
            found = Found.of(extractor.feed(lines, message.first_line_num, message.stream))
        return self._reply(message.run, extractor, found, finished=False), found

    def handle(self, message: Hello | Open | Finish) -> tuple[Extracted, Found] | None:
        if isinstance(message, Open):
            self.extractors[message.run] = make_extractor(message.format, self.rules)
            return None
        if isinstance(message, Finish):
            extractor = self.extractors.pop(message.run, None)
            if extractor is None:
                return None  # never opened (or already finished): nothing to say
            found = Found.of(extractor.finish())
            return self._reply(message.run, extractor, found, finished=True), found
        self.rules = pickle.loads(message.rules)
        return None

    @staticmethod
    def _reply(run: int, extractor: Extractor, found: Found, *, finished: bool) -> Extracted:
        return Extracted(
            run,
            extractor.format,
            extractor.in_code_block,
            finished,
            len(found.data),
            len(found.kinds),
            extractor.take_unknown(),
            list(found.usage),
        )


def _read_exact(source: BinaryIO, size: int) -> bytes | None:
    """``size`` bytes, or None at the end of ``source`` (a frame cut short by it too).
    A read may give less than asked without the end having come; then it reads on."""
    data = source.read(size)
    if len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = source.read(size - got)
        if not more:
            return None
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class Sink(Protocol):
    """Where answers go: ``sys.stdout``'s pipe (``PipeSink``) or, in tests, a buffer."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


def serve(source: BinaryIO, sink: Sink, answered: Callable[[], None] | None = None) -> None:
    """Answer frames from ``source`` on ``sink`` until ``source`` ends; ``answered`` is
    called after each answer."""
    worker = Worker()
    while True:
        head = _read_exact(source, HEADER.size)
        if head is None:
            return
        (length,) = HEADER.unpack(head)
        if length > MAX_FRAME:
            raise FrameError(f"frame of {length} bytes")
        body = _read_exact(source, length)
        if body is None:
            return
        message = _to_worker.decode(body)
        if isinstance(message, Feed):
            data = _read_exact(source, message.size)
            if data is None:
                return
            answer: tuple[Extracted, Found] | None = worker.feed(message, data)
        else:
            answer = worker.handle(message)
        if answer is not None:
            reply, found = answer
            sink.write(frame(reply))
            sink.write(found.data)
            sink.write(found.kinds)
            sink.flush()
            if answered is not None:
                answered()


class PipeSink:
    """The worker's answers, written straight to a pipe: what ``write`` is given is sent
    at ``flush`` by ``core.fdwrite.write_all`` (one ``writev`` when the pipe takes it
    all, never copied; every byte, in order, however little each call takes).

    With py-spy attached to the worker and answers of megabytes, ``sys.stdout.buffer``
    (a ``BufferedWriter``) sent more record bytes than the header announced, once in
    each of 8 sessions of dense text; the daemon read records where the next header
    should be and gave the worker up (its runs went on in the daemon, slower). With
    this sink: none in 3 sessions."""

    __slots__ = ("_fd", "_parts")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        if data:
            self._parts.append(data)
        return len(data)

    def flush(self) -> None:
        parts, self._parts = self._parts, []
        write_all(self._fd, *parts)


def main() -> None:
    # Ctrl-C in a terminal, and a SIGTERM to the group (`kill -- -PGID`, a service manager,
    # `make run` stopped), reach the whole process group: the daemon decides when the worker
    # ends (it closes stdin once its agents are done; a daemon that dies closes it too),
    # not a signal meant for the daemon, which would end extraction under running agents.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # As in the daemon: what is built at start lives as long as the process, and batches
    # allocate many short-lived containers; a collection every 700 would cost a tenth.
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    # A flood's batches leave megabytes freed but resident: given back once quiet (in a
    # soak the worker's RSS measured quiet grew 10-12 % over 20 waves without it).
    trimmer = IdleTrim().start()
    # BrokenPipe: the daemon went away, nothing is left to answer.
    with contextlib.suppress(BrokenPipeError):
        serve(sys.stdin.buffer, PipeSink(sys.stdout.fileno()), trimmer.worked)


if __name__ == "__main__":
    main()
