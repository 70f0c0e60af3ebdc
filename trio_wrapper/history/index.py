"""The run index: every run found in the logs dir, its usage by model and the files it
touched, in one SQLite file (``<logs_dir>/index.sqlite3``, standard library ``sqlite3``).

The run's files stay the source of truth; the index is a cache of them that answers
``GET /api/runs`` and ``GET /api/usage`` without reading thousands of files. It is
brought up to date by ``sync()``:

- a directory whose modification time is the one recorded at the last sync is skipped
  without listing it (a run's files are made there, and each meta rewrite is a rename
  into it, so any new or changed run changes the directory's time);
- in a changed directory, each ``*-meta.json`` whose (mtime, size) differs from its row is
  read again; rows of runs whose meta is gone are dropped;
- a run's events file is read only once, the first time its meta is seen with a terminal
  status, for its usage and files (``history.usage``); a run recorded live by the daemon
  (``record_run`` with its tally) never needs it.

A missing, damaged or older-schema file is rebuilt from the runs on disk.

Blocking, and not thread-safe on its own: the caller serialises every call (the daemon
uses one lock and worker threads, ``runtime.runindex``, and holds the file open only
during a call: ``connect`` … ``close``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import msgspec

from trio_wrapper.core.models import (
    ModelUsageEntry,
    RunEntry,
    RunFile,
    RunMeta,
    TokenCounts,
    UsageGroup,
)
from trio_wrapper.core.status import Status
from trio_wrapper.core.timefmt import parse_rfc3339
from trio_wrapper.history.runfiles import STREAMS, RunFiles, read_meta
from trio_wrapper.history.usage import (
    TOKEN_TYPES,
    UsageTally,
    model_from_command,
    tally_events,
)

INDEX_FILE: Final = "index.sqlite3"
SCHEMA_VERSION: Final = 2
GROUP_BY: Final[tuple[str, ...]] = ("day", "name", "model", "profile")
_TERMINAL: Final = frozenset(s.value for s in Status if s.is_terminal)
_META_SUFFIX: Final = "-meta.json"
_TOKEN_COLUMNS: Final = ", ".join(TOKEN_TYPES)

_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dirs (name TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    stamp TEXT NOT NULL,
    status TEXT NOT NULL,
    format TEXT NOT NULL,
    profile TEXT,
    model TEXT,
    command TEXT NOT NULL,
    started_at TEXT,
    started_ts REAL,
    completed_at TEXT,
    duration_seconds REAL,
    exit_code INTEGER,
    bytes INTEGER NOT NULL,
    disk_bytes INTEGER NOT NULL,
    deleted_at TEXT,
    meta_mtime_ns INTEGER NOT NULL,
    meta_size INTEGER NOT NULL,
    usage_done INTEGER NOT NULL DEFAULT 0,
    -- The run's usage summed over its models (the usage table's rows), kept here too so
    -- that totals by day, name or profile read one table.
    {", ".join(f"{kind} INTEGER NOT NULL DEFAULT 0" for kind in TOKEN_TYPES)},
    cost_usd REAL
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started_ts);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name, started_ts);
-- Covers the totals by day, name and profile: a scan of it reads no run's other columns.
CREATE INDEX IF NOT EXISTS runs_usage ON runs (
    started_ts, started_at, name, profile, {_TOKEN_COLUMNS}, cost_usd
);
CREATE TABLE IF NOT EXISTS usage (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    started_ts REAL,  -- the run's, kept here too: totals by model read one table
    {", ".join(f"{kind} INTEGER NOT NULL" for kind in TOKEN_TYPES)},
    cost_usd REAL,
    PRIMARY KEY (run_id, model)
);
CREATE INDEX IF NOT EXISTS usage_by_model ON usage (
    started_ts, model, run_id, {_TOKEN_COLUMNS}, cost_usd
);
CREATE TABLE IF NOT EXISTS files (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    ops TEXT NOT NULL,
    PRIMARY KEY (run_id, path)
);
"""

_RUN_COLUMNS: Final = (
    "id, name, stamp, status, format, profile, model, command, started_at, started_ts, "
    "completed_at, duration_seconds, exit_code, bytes, disk_bytes, deleted_at, "
    "meta_mtime_ns, meta_size"
)
_UPSERT_RUN: Final = (
    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * 18)}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}"
        for c in (c.strip() for c in _RUN_COLUMNS.split(","))
        if c not in ("id", "model")  # the model is the usage's, set with it
    )
)
_GROUP_KEYS: Final[dict[str, str]] = {
    "day": "substr(started_at, 1, 10)",  # the local date: stamps are local time
    "name": "name",
    "model": "model",
    "profile": "profile",
}
_encode_command = msgspec.json.Encoder().encode
_decode_command = msgspec.json.Decoder(list[str]).decode


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one ``sync()`` did: runs read (meta files), events files read, rows dropped,
    directories skipped unchanged."""

    metas_read: int = 0
    events_read: int = 0
    removed: int = 0
    dirs_skipped: int = 0


@dataclass(frozen=True, slots=True)
class StoredRun:
    """What retention needs of an indexed run."""

    id: str
    name: str
    stamp: str
    disk_bytes: int
    started_ts: float | None
    ended: bool  # a terminal status (else starting, running or stopping)


def run_id(name: str, stamp: str) -> str:
    return f"{name}/{stamp}"


def parse_moment(value: str) -> float | None:
    """A query's ``since``/``until``: RFC 3339 (a naive one is local time) or a date
    ``YYYY-MM-DD`` (local midnight); epoch seconds, or None if unreadable."""
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.astimezone()
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):  # also dates the local zone cannot take
        return None


def _started_ts(meta: RunMeta) -> float | None:
    moment = parse_rfc3339(meta.started_at)
    return moment.timestamp() if moment is not None else None


def _disk_bytes(files: RunFiles) -> int:
    total = 0
    for path in (files.meta, files.events, *(files.log(s) for s in STREAMS)):
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


class RunIndex:
    """One connection to the index file. Every method blocks; serialise the calls."""

    def __init__(self, logs_dir: Path, path: Path | None = None) -> None:
        self.logs_dir = logs_dir
        self.path = path if path is not None else logs_dir / INDEX_FILE
        self._db: sqlite3.Connection | None = None
        self.rebuilt = False  # the file was made anew at open (missing, damaged, old)

    # ---- open / close ---------------------------------------------------------------

    def open(self) -> None:
        """Open the file, or make it anew when it is missing, damaged or of another
        schema (it only caches what the run files hold)."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
            version = self._version()
        except sqlite3.DatabaseError:
            version = None
        if version != SCHEMA_VERSION:
            self.close()
            self._remove_files()
            self._db = self._connect()
            self.rebuilt = True
        db = self._checked()
        db.executescript(_SCHEMA)
        db.execute(
            "INSERT OR REPLACE INTO info (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
        )
        db.commit()

    def connect(self) -> None:
        """Open the connection again after ``close`` (the file was checked by ``open``)."""
        if self._db is None:
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # A rollback journal, not WAL: between transactions nothing but the database file
        # exists, and once closed nothing is held open (a held file would keep the logs
        # dir's filesystem from being remounted, e.g. read-only).
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        return db

    def _version(self) -> int | None:
        db = self._checked()
        exists = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'info'"
        ).fetchone()
        if exists is None:
            return None
        row = db.execute("SELECT value FROM info WHERE key = 'schema'").fetchone()
        return int(row[0]) if row is not None and str(row[0]).isdigit() else None

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _checked(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the run index is not open")
        return self._db

    # ---- keeping up with the disk ---------------------------------------------------

    def sync(self) -> SyncReport:
        """Bring the index up to date with ``<logs_dir>/agents`` (see the module doc)."""
        db = self._checked()
        agents_dir = self.logs_dir / "agents"
        known_dirs = dict(db.execute("SELECT name, mtime_ns FROM dirs").fetchall())
        unsettled = {
            name
            for (name,) in db.execute(
                "SELECT DISTINCT name FROM runs WHERE status NOT IN "
                f"({', '.join('?' * len(_TERMINAL))}) OR "
                "(usage_done = 0 AND status IN "
                f"({', '.join('?' * len(_TERMINAL))}))",
                (*_TERMINAL, *_TERMINAL),
            )
        }
        metas = events = removed = skipped = 0
        seen: set[str] = set()
        try:
            entries = list(os.scandir(agents_dir))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            name = entry.name
            seen.add(name)
            try:
                mtime_ns = entry.stat(follow_symlinks=False).st_mtime_ns
            except OSError:
                continue
            if known_dirs.get(name) == mtime_ns and name not in unsettled:
                skipped += 1
                continue
            read, got_events, dropped = self._sync_dir(Path(entry.path), name)
            metas += read
            events += got_events
            removed += dropped
            db.execute(
                "INSERT OR REPLACE INTO dirs (name, mtime_ns) VALUES (?, ?)", (name, mtime_ns)
            )
        for name in set(known_dirs) - seen:
            removed += db.execute("DELETE FROM runs WHERE name = ?", (name,)).rowcount
            db.execute("DELETE FROM dirs WHERE name = ?", (name,))
        return SyncReport(metas, events, removed, skipped)

    def _sync_dir(self, directory: Path, name: str) -> tuple[int, int, int]:
        db = self._checked()
        rows = {
            stamp: (mtime_ns, size, done, status)
            for stamp, mtime_ns, size, done, status in db.execute(
                "SELECT stamp, meta_mtime_ns, meta_size, usage_done, status FROM runs "
                "WHERE name = ?",
                (name,),
            )
        }
        on_disk: dict[str, tuple[int, int]] = {}
        try:
            with os.scandir(directory) as listing:
                for entry in listing:
                    if entry.name.endswith(_META_SUFFIX):
                        with contextlib.suppress(OSError):
                            st = entry.stat(follow_symlinks=False)
                            on_disk[entry.name.removesuffix(_META_SUFFIX)] = (
                                st.st_mtime_ns,
                                st.st_size,
                            )
        except OSError:
            pass
        metas = events = removed = 0
        db.execute("BEGIN")
        try:
            for stamp, (mtime_ns, size) in on_disk.items():
                row = rows.get(stamp)
                if (
                    row is not None
                    and row[:2] == (mtime_ns, size)
                    and (row[2] or row[3] not in _TERMINAL)
                ):
                    continue
                files = RunFiles(directory, stamp)
                meta = read_meta(files.meta)
                metas += 1
                if meta is None or meta.status is msgspec.UNSET or meta.status is None:
                    if row is not None:
                        removed += self._delete(run_id(name, stamp))
                    continue  # a reservation, or a damaged file: not a run
                self._put_run(name, files, meta, mtime_ns, size)
                if meta.status in _TERMINAL and not (row is not None and row[2]):
                    tally = self._tally_from_events(files, meta)
                    events += 1
                    self._put_usage(run_id(name, stamp), tally)
            for stamp in set(rows) - set(on_disk):
                removed += self._delete(run_id(name, stamp))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return metas, events, removed

    @staticmethod
    def _tally_from_events(files: RunFiles, meta: RunMeta) -> UsageTally:
        try:
            data = files.events.read_bytes()
        except OSError:
            data = b""
        return tally_events(data, model_from_command(meta.command))

    def _delete(self, rid: str) -> int:
        return self._checked().execute("DELETE FROM runs WHERE id = ?", (rid,)).rowcount

    def _put_run(self, name: str, files: RunFiles, meta: RunMeta, mtime_ns: int, size: int) -> None:
        status = meta.status if isinstance(meta.status, str) else Status.INTERRUPTED.value
        deleted_at = meta.deleted_at if isinstance(meta.deleted_at, str) else None
        self._checked().execute(
            _UPSERT_RUN,
            (
                run_id(name, files.stamp),
                name,
                files.stamp,
                status,
                meta.extraction.format if meta.extraction.format != "none" else meta.format,
                meta.profile,
                None,
                _encode_command(meta.command).decode(),
                meta.started_at,
                _started_ts(meta),
                meta.completed_at,
                meta.duration_seconds,
                meta.exit_code,
                sum(meta.bytes.values()),
                _disk_bytes(files),
                deleted_at,
                mtime_ns,
                size,
            ),
        )

    def _put_usage(self, rid: str, tally: UsageTally) -> None:
        db = self._checked()
        db.execute("DELETE FROM usage WHERE run_id = ?", (rid,))
        db.execute("DELETE FROM files WHERE run_id = ?", (rid,))
        totals = tally.totals()
        db.executemany(
            f"INSERT INTO usage (run_id, model, started_ts, {_TOKEN_COLUMNS}, cost_usd) "
            f"SELECT ?, ?, started_ts, {', '.join('?' * len(TOKEN_TYPES))}, ? "
            "FROM runs WHERE id = ?",
            [
                (rid, model, *(usage.tokens[k] for k in TOKEN_TYPES), usage.cost_usd, rid)
                for model, usage in totals.items()
            ],
        )
        summed = [sum(usage.tokens[k] for usage in totals.values()) for k in TOKEN_TYPES]
        costs = [usage.cost_usd for usage in totals.values() if usage.cost_usd is not None]
        db.executemany(
            "INSERT INTO files (run_id, path, ops) VALUES (?, ?, ?)",
            [(rid, path, ",".join(sorted(ops))) for path, ops in tally.files.items()],
        )
        model = tally.model if totals or tally.model != "unknown" else None
        db.execute(
            f"UPDATE runs SET usage_done = 1, model = ?, "
            f"{', '.join(f'{k} = ?' for k in TOKEN_TYPES)}, cost_usd = ? WHERE id = ?",
            (model, *summed, sum(costs) if costs else None, rid),
        )

    def record_run(self, files: RunFiles, meta: RunMeta, tally: UsageTally | None) -> None:
        """A run as the daemon sees it now (started, ended, DELETEd); with ``tally`` (at
        its end) its usage and files too, so its events file need not be read."""
        db = self._checked()
        name = files.directory.name
        try:
            st = files.meta.stat()
            mtime_ns, size = st.st_mtime_ns, st.st_size
        except OSError:
            mtime_ns, size = 0, 0  # read again at the next sync
        db.execute("BEGIN")
        try:
            self._put_run(name, files, meta, mtime_ns, size)
            if tally is not None:
                self._put_usage(run_id(name, files.stamp), tally)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def forget(self, ids: Iterable[str]) -> int:
        """Drop rows (their runs' files were removed)."""
        db = self._checked()
        return sum(db.execute("DELETE FROM runs WHERE id = ?", (rid,)).rowcount for rid in ids)

    # ---- queries --------------------------------------------------------------------

    def count(self) -> int:
        (total,) = self._checked().execute("SELECT count(*) FROM runs").fetchone()
        return int(total)

    def stored_runs(self) -> list[StoredRun]:
        query = "SELECT id, name, stamp, disk_bytes, started_ts, status FROM runs"
        rows = self._checked().execute(query).fetchall()
        return [
            StoredRun(rid, name, stamp, size, started, status in _TERMINAL)
            for rid, name, stamp, size, started, status in rows
        ]

    def runs(
        self,
        *,
        name: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[RunEntry]:
        """Runs, newest first (by ``started_at``)."""
        where, args = _time_filter("started_ts", since, until)
        if name is not None:
            where.append("name = ?")
            args.append(name)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        db = self._checked()
        rows = db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs {clause} ORDER BY started_ts DESC, id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        ids = [row[0] for row in rows]
        usage: dict[str, list[ModelUsageEntry]] = {rid: [] for rid in ids}
        files: dict[str, list[RunFile]] = {rid: [] for rid in ids}
        for chunk in _chunks(ids, 500):
            marks = ", ".join("?" * len(chunk))
            for rid, model, *figures in db.execute(
                f"SELECT run_id, model, {_TOKEN_COLUMNS}, cost_usd FROM usage "
                f"WHERE run_id IN ({marks}) ORDER BY run_id, model",
                chunk,
            ):
                usage[rid].append(ModelUsageEntry(model, TokenCounts(*figures[:-1]), figures[-1]))
            for rid, path, ops in db.execute(
                f"SELECT run_id, path, ops FROM files WHERE run_id IN ({marks}) "
                "ORDER BY run_id, path",
                chunk,
            ):
                files[rid].append(RunFile(path, ops.split(",") if ops else []))
        return [_entry(row, usage[row[0]], files[row[0]]) for row in rows]

    def usage(
        self, *, group_by: str, since: float | None = None, until: float | None = None
    ) -> tuple[list[UsageGroup], UsageGroup]:
        """Totals by ``group_by`` (one of ``GROUP_BY``), and the grand total. By model,
        ``runs`` counts the runs with figures for that model; otherwise every run."""
        where, args = _time_filter("started_ts", since, until)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sums = ", ".join(f"sum({kind})" for kind in TOKEN_TYPES)
        if group_by == "model":
            source, runs = "usage", "count(DISTINCT run_id)"
        else:
            source, runs = "runs", "count(*)"
        db = self._checked()
        groups = [
            _group(row[0], row[1:])
            for row in db.execute(
                f"SELECT {_GROUP_KEYS[group_by]} AS k, {runs}, {sums}, sum(cost_usd) "
                f"FROM {source} {clause} GROUP BY k ORDER BY k",
                args,
            )
        ]
        if source == "runs":  # every run is in one group: the total is their sum
            total = _sum_groups(groups)
        else:
            query = f"SELECT count(*), {sums}, sum(cost_usd) FROM runs {clause}"
            total = _group(None, db.execute(query, args).fetchone())
        return groups, total


def _time_filter(
    column: str, since: float | None, until: float | None
) -> tuple[list[str], list[object]]:
    where: list[str] = []
    args: list[object] = []
    if since is not None:
        where.append(f"{column} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{column} < ?")
        args.append(until)
    return where, args


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sum_groups(groups: Sequence[UsageGroup]) -> UsageGroup:
    tokens = TokenCounts()
    for group in groups:
        for kind in TOKEN_TYPES:
            setattr(tokens, kind, getattr(tokens, kind) + getattr(group.tokens, kind))
    costs = [group.cost_usd for group in groups if group.cost_usd is not None]
    return UsageGroup(None, sum(g.runs for g in groups), tokens, sum(costs) if costs else None)


def _group(key: str | None, row: Sequence[object]) -> UsageGroup:
    runs, *figures = row
    cost = figures[-1]
    return UsageGroup(
        key=key,
        runs=int(runs or 0),  # type: ignore[call-overload]
        tokens=TokenCounts(*(int(v or 0) for v in figures[:-1])),  # type: ignore[call-overload]
        cost_usd=float(cost) if cost is not None else None,  # type: ignore[arg-type]
    )


def _entry(row: Sequence[object], usage: list[ModelUsageEntry], files: list[RunFile]) -> RunEntry:
    (rid, name, stamp, status, fmt, profile, model, command, started_at, _ts,
     completed_at, duration, exit_code, size, disk, deleted_at, _mtime, _size) = row  # fmt: skip
    tokens = TokenCounts()
    cost: float | None = None
    for entry in usage:
        for kind in TOKEN_TYPES:
            setattr(tokens, kind, getattr(tokens, kind) + getattr(entry.tokens, kind))
        if entry.cost_usd is not None:
            cost = entry.cost_usd if cost is None else cost + entry.cost_usd
    return RunEntry(
        id=str(rid),
        name=str(name),
        stamp=str(stamp),
        status=str(status),
        format=str(fmt),
        profile=profile,  # type: ignore[arg-type]
        model=model,  # type: ignore[arg-type]
        command=_decode_command(str(command)),
        started_at=started_at,  # type: ignore[arg-type]
        completed_at=completed_at,  # type: ignore[arg-type]
        duration_seconds=duration,  # type: ignore[arg-type]
        exit_code=exit_code,  # type: ignore[arg-type]
        bytes=int(size),  # type: ignore[call-overload]
        disk_bytes=int(disk),  # type: ignore[call-overload]
        deleted_at=deleted_at,  # type: ignore[arg-type]
        tokens=tokens,
        cost_usd=cost,
        usage=usage,
        files=files,
    )
