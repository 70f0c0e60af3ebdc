"""The agent status machine of the contract (section 2). Pure."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    WAITING = "waiting"  # running, and wants its user: input or an approval
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"  # found in the logs dir: the daemon died while it ran

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_active(self) -> bool:
        """Its process runs and no stop was asked for: ``running`` or ``waiting``."""
        return self in _ACTIVE


_TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.STOPPED, Status.INTERRUPTED})

# ``waiting`` is ``running`` with one more fact (the agent wants its user): every rule
# for a running agent (stop, timeout, exit) holds for a waiting one.
_ACTIVE = frozenset({Status.RUNNING, Status.WAITING})

_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.STARTING: frozenset({Status.RUNNING, Status.FAILED, Status.STOPPING}),
    Status.RUNNING: frozenset({Status.WAITING, Status.STOPPING, Status.COMPLETED, Status.FAILED}),
    Status.WAITING: frozenset({Status.RUNNING, Status.STOPPING, Status.COMPLETED, Status.FAILED}),
    Status.STOPPING: frozenset({Status.STOPPED, Status.FAILED}),
}


class InvalidTransition(Exception):
    pass


def check_transition(old: Status, new: Status) -> None:
    if new not in _ALLOWED.get(old, frozenset()):
        raise InvalidTransition(f"{old} -> {new}")


def status_after_exit(returncode: int, *, stop_requested: bool, timed_out: bool) -> Status:
    """What an exit means. ``returncode`` follows ``subprocess``: negative = killed by signal.

    A stop we asked for ends as ``stopped`` whatever the child did on its way out; a
    timeout is our doing too but the run did not finish its work, so it is ``failed``.
    """
    if timed_out:
        return Status.FAILED
    if stop_requested:
        return Status.STOPPED
    return Status.COMPLETED if returncode == 0 else Status.FAILED


def stopping_detail(reason: str) -> str:
    """Why a run is ``stopping``: ``api``, ``shutdown`` or ``timeout``."""
    return f"stop requested ({reason})"


def exit_detail(
    exit_code: int | None, exit_signal: str | None, *, timed_out: float | None = None
) -> str:
    """The one sentence that says how a run ended: the events file, the SSE ``state``
    event and the meta file all carry this text, so they cannot disagree.

    ``timed_out`` is the limit in seconds when the run was stopped for running past it.
    A signal is named whoever sent it: the status already says whether it was our stop.
    """
    if timed_out is not None:
        return f"timed out after {timed_out:g}s"
    if exit_signal:
        return f"killed by {exit_signal}"
    return f"exit code {exit_code}"
