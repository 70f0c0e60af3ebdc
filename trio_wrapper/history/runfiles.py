"""Where a run's files live, the atomic meta.json (a :class:`RunMeta`), and the history
found on start.

Layout (the seed's): ``<logs>/agents/<name>/<YYYY-MM-DD-HH-MM-SS>-{stdout,stderr}.log``,
``-events.jsonl`` and ``-meta.json``. Writes here are small or already chunked by the
reader, so they go straight to the OS from the event loop: a read's write (up to 1 MiB)
into the page cache costs less than a hop to a worker thread and back would.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import msgspec

from trio_wrapper.core.lines import count_newlines
from trio_wrapper.core.models import RunMeta
from trio_wrapper.core.status import Status
from trio_wrapper.core.timefmt import log_stamp, parse_rfc3339

STREAMS = ("stdout", "stderr")
COUNT_CHUNK = 1024 * 1024
# A run's stamp: its start time, and ``-N`` for the Nth run started in that second.
STAMP_RE = re.compile(r"(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})(?:-(\d{1,4}))?\Z")

_meta_encoder = msgspec.json.Encoder()
_meta_decoder = msgspec.json.Decoder(RunMeta, strict=False)  # "3" reads as 3


@dataclass(frozen=True, slots=True)
class RunFiles:
    directory: Path
    stamp: str

    def path(self, suffix: str) -> Path:
        return self.directory / f"{self.stamp}-{suffix}"

    @property
    def meta(self) -> Path:
        return self.path("meta.json")

    @property
    def events(self) -> Path:
        return self.path("events.jsonl")

    def log(self, stream: str) -> Path:
        return self.path(f"{stream}.log")

    @classmethod
    def create(cls, logs_dir: Path, name: str, started: datetime) -> RunFiles:
        """Reserve a new run's files; a second run in the same second gets ``-2``, ``-3``…

        ``OSError`` when they cannot be made (no space, a read-only or forbidden logs dir);
        then nothing is left behind, not even the agent's directory if this made it.
        """
        directory = logs_dir / "agents" / name
        made = not directory.is_dir()
        directory.mkdir(parents=True, exist_ok=True)
        try:
            return cls(directory, _reserve_stamp(directory, log_stamp(started)))
        except OSError:
            if made:
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise

    def open_log(self, stream: str) -> int:
        """An append-only raw descriptor: the reader writes whole chunks, so no buffering.
        Readable too: the line pipeline reads back through it, so a log deleted while the
        run writes it is still read whole."""
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        return os.open(self.log(stream), flags, 0o644)

    def write_meta(self, meta: RunMeta) -> None:
        """Replace the meta file at once: a reader sees the old file or the new, whole.

        ``OSError`` when it cannot (no space…): the old file is left as it was, and the
        temporary file is removed, never left half-written beside it."""
        tmp = self.meta.with_suffix(".json.tmp")
        try:
            tmp.write_bytes(_meta_encoder.encode(meta) + b"\n")
            os.replace(tmp, self.meta)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def discard(self) -> None:
        """Remove every file of a run that never started (its start was refused), and the
        agent's directory if that leaves it empty: a refused start leaves nothing."""
        paths = [self.meta, self.meta.with_suffix(".json.tmp"), self.events]
        paths += [self.log(stream) for stream in STREAMS]
        for path in paths:
            with contextlib.suppress(OSError):  # never made, or already gone
                path.unlink()
        with contextlib.suppress(OSError):  # not empty: other runs of the name live there
            self.directory.rmdir()

    def read_meta(self) -> RunMeta | None:
        """The meta file as written, or None: missing, empty (a reservation) or damaged."""
        return read_meta(self.meta)


def _reserve_stamp(directory: Path, base: str) -> str:
    for attempt in range(1, 10_000):
        stamp = base if attempt == 1 else f"{base}-{attempt}"
        try:
            # The meta file doubles as the reservation: O_EXCL makes it race-free.
            fd = os.open(directory / f"{stamp}-meta.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.close(fd)
        return stamp
    raise OSError(f"no free run stamp in {str(directory)!r} at {base}")


def read_meta(path: Path) -> RunMeta | None:
    try:
        return _meta_decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None  # (msgspec.ValidationError is a DecodeError)


def open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)


def write_prefix(fd: int, data: bytes | memoryview) -> tuple[int, OSError | None]:
    """Write as much of ``data`` as the file takes: how many bytes it holds now, and the
    error that stopped the rest (``None`` when all went). A full disk often takes the
    first part of a chunk and refuses the next write: that part is in the file."""
    view = memoryview(data)
    written = 0
    while written < len(view):
        try:
            step = os.write(fd, view[written:])
        except OSError as exc:
            return written, exc
        if step == 0:  # not seen on a regular file; never loop on it
            return written, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written += step
    return written, None


def count_log(path: Path) -> tuple[int, int, float | None]:
    """A log file's bytes, lines (as the reader counts them: an unterminated last line is
    one) and last modification time. Reads the file once, a chunk at a time."""
    try:
        with path.open("rb") as file:
            stat = os.fstat(file.fileno())
            lines = 0
            last = b""
            while chunk := file.read(COUNT_CHUNK):
                lines += count_newlines(chunk)
                last = chunk[-1:]
    except OSError:
        return 0, 0, None
    if last and last != b"\n":
        lines += 1
    return stat.st_size, lines, stat.st_mtime


def count_interrupted(files: RunFiles, meta: RunMeta) -> None:
    """An interrupted run's meta says what its files hold: the meta was last written at a
    status change (bytes 0 while it ran), the log files have everything that was read.
    Its duration runs to the logs' last modification (the last output read)."""
    newest: float | None = None
    for stream in STREAMS:
        size, lines, mtime = count_log(files.log(stream))
        meta.bytes[stream] = size
        meta.lines[stream] = lines
        if mtime is not None and (newest is None or mtime > newest):
            newest = mtime
    meta.total_lines = sum(meta.lines.values())
    started = parse_rfc3339(meta.started_at)
    if started is not None and newest is not None:
        meta.duration_seconds = round(max(0.0, newest - started.timestamp()), 3)


def load_history(logs_dir: Path) -> list[tuple[RunFiles, RunMeta]]:
    """The newest run of each agent name found on disk, skipping DELETEd ones.

    A run whose meta still says starting/running/stopping was cut short by the daemon's
    death: it becomes ``interrupted``, with the bytes, lines and duration its log files
    show, and the meta file is rewritten to say so. Blocking: run it in a worker thread.
    """
    found: list[tuple[RunFiles, RunMeta]] = []
    agents_dir = logs_dir / "agents"
    if not agents_dir.is_dir():
        return found
    for directory in sorted(p for p in agents_dir.iterdir() if p.is_dir()):
        newest: tuple[float, RunFiles, RunMeta] | None = None
        for meta_path in directory.glob("*-meta.json"):
            stamp = meta_path.name.removesuffix("-meta.json")
            files = RunFiles(directory, stamp)
            meta = read_meta(meta_path)
            if meta is None or meta.status is msgspec.UNSET:
                continue  # an empty reservation or a damaged file: not a run to list
            if not meta.deleted_at:
                key = meta_path.stat().st_mtime
                if newest is None or (meta.started_at or "", key) > (
                    newest[2].started_at or "",
                    newest[0],
                ):
                    newest = (key, files, meta)
            if meta.status in (Status.STARTING, Status.RUNNING, Status.WAITING, Status.STOPPING):
                meta.status = Status.INTERRUPTED.value
                count_interrupted(files, meta)
                with contextlib.suppress(OSError):
                    files.write_meta(meta)
        if newest is not None:
            found.append((newest[1], newest[2]))
    return found


def stamp_key(stamp: str) -> tuple[str, int]:
    """How runs of one name are ordered: by start second, then by ``-N``."""
    match = STAMP_RE.match(stamp)
    if match is None:
        return (stamp, 0)
    return (match.group(1), int(match.group(2) or 1))


def agent_directory(logs_dir: Path, name: str) -> Path:
    return logs_dir / "agents" / name


def _as_found(files: RunFiles, meta: RunMeta, live_stamp: str | None) -> RunMeta:
    """A run whose meta says it still runs, but that is not this daemon's live run, was
    cut short (its daemon died): shown as ``interrupted`` with what its logs hold. The
    file is not rewritten here (the daemon's start does that)."""
    if files.stamp != live_stamp and meta.status in (
        Status.STARTING,
        Status.RUNNING,
        Status.WAITING,
        Status.STOPPING,
    ):
        meta.status = Status.INTERRUPTED.value
        count_interrupted(files, meta)
    return meta


def read_run(
    logs_dir: Path, name: str, stamp: str, live_stamp: str | None = None
) -> tuple[RunFiles, RunMeta] | None:
    """One run of ``name`` from its meta file, or None (no such run, a reservation, a
    damaged file). DELETEd runs are found too. Blocking: run it in a worker thread."""
    if STAMP_RE.match(stamp) is None:
        return None
    files = RunFiles(agent_directory(logs_dir, name), stamp)
    meta = files.read_meta()
    if meta is None or meta.status is msgspec.UNSET:
        return None
    return files, _as_found(files, meta, live_stamp)


def list_runs(
    logs_dir: Path, name: str, live_stamp: str | None = None
) -> list[tuple[RunFiles, RunMeta]]:
    """Every run of ``name`` on disk, newest first, DELETEd ones included (DELETE unlists,
    it does not erase). ``live_stamp``: this daemon's live run of the name, whose meta may
    still say ``running``. Blocking: run it in a worker thread."""
    directory = agent_directory(logs_dir, name)
    try:
        paths = list(directory.glob("*-meta.json"))
    except OSError:
        return []
    stamps = [path.name.removesuffix("-meta.json") for path in paths]
    found = []
    for stamp in sorted((s for s in stamps if STAMP_RE.match(s)), key=stamp_key, reverse=True):
        run = read_run(logs_dir, name, stamp, live_stamp)
        if run is not None:
            found.append(run)
    return found
