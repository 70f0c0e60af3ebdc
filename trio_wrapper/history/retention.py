"""Which past runs retention removes. Pure: a list of runs in, the ones to remove out.

Three rules, each off at 0, applied in this order:

- ``keep_runs``: of each name, the newest ``keep_runs`` runs are kept;
- ``keep_days``: runs started longer ago than that are removed;
- ``max_total_bytes``: while the runs left take more than that on disk, the oldest go.

A protected run (a live one, one not ended, or the run an agent is listed with) is never
removed, and still counts: as one of its name's ``keep_runs`` and in the total size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DAY_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    keep_runs: int = 0
    keep_days: float = 0.0
    max_total_bytes: int = 0

    @property
    def active(self) -> bool:
        return bool(self.keep_runs or self.keep_days or self.max_total_bytes)


@dataclass(frozen=True, slots=True)
class RunOnDisk:
    id: str
    name: str
    size: int
    started: float | None  # epoch seconds; None when unknown (never removed for age)
    protected: bool = False


@dataclass(frozen=True, slots=True)
class Removal:
    run: RunOnDisk
    reason: str  # "keep_runs", "keep_days" or "max_total_bytes"


def _age_key(run: RunOnDisk) -> tuple[float, str]:
    """Oldest first: by start time (unknown ones first), then by id (stamps sort by time)."""
    return (run.started if run.started is not None else float("-inf"), run.id)


def choose_removals(
    runs: Sequence[RunOnDisk], policy: RetentionPolicy, now: float
) -> list[Removal]:
    """The runs to remove and why, oldest first. Protected runs are never among them."""
    removed: dict[str, Removal] = {}
    if policy.keep_runs > 0:
        by_name: dict[str, list[RunOnDisk]] = {}
        for run in runs:
            by_name.setdefault(run.name, []).append(run)
        for same_name in by_name.values():
            same_name.sort(key=_age_key, reverse=True)
            for run in same_name[policy.keep_runs :]:
                if not run.protected:
                    removed[run.id] = Removal(run, "keep_runs")
    if policy.keep_days > 0:
        cutoff = now - policy.keep_days * DAY_SECONDS
        for run in runs:
            if (
                not run.protected
                and run.id not in removed
                and run.started is not None
                and run.started < cutoff
            ):
                removed[run.id] = Removal(run, "keep_days")
    if policy.max_total_bytes > 0:
        left = sorted((r for r in runs if r.id not in removed), key=_age_key)
        total = sum(run.size for run in left)
        for run in left:
            if total <= policy.max_total_bytes:
                break
            if not run.protected:
                removed[run.id] = Removal(run, "max_total_bytes")
                total -= run.size
    return sorted(removed.values(), key=lambda removal: _age_key(removal.run))
