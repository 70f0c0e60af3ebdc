"""How many trio tasks the daemon has alive, for ``/metrics`` (``trio_wrapper_tasks``).

Every request, stream, agent and timer of the daemon is a task with an owner; one that
never ends (a stream whose client is gone, a reader nobody cancels) is a leak that
neither the descriptors nor the memory show at once. The count is kept by a trio
instrument as tasks start and end, so reading it costs nothing, and a long soak can
check that the daemon, quiet again, holds as many tasks as before.
"""

from __future__ import annotations

import trio


def _tree_size(task: trio.lowlevel.Task) -> int:
    return 1 + sum(
        _tree_size(child) for nursery in task.child_nurseries for child in nursery.child_tasks
    )


class TaskCount(trio.abc.Instrument):
    """The number of tasks alive in the trio run it was installed in."""

    def __init__(self) -> None:
        self.alive = 0

    def install(self) -> None:
        """Count the tasks alive now, then follow every start and end (to be called from
        inside the run; nothing can start between the count and the hook)."""
        root = trio.lowlevel.current_root_task()
        self.alive = 0 if root is None else _tree_size(root)
        trio.lowlevel.add_instrument(self)

    def uninstall(self) -> None:
        trio.lowlevel.remove_instrument(self)

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.alive += 1

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.alive -= 1

    def count(self) -> int:
        return self.alive
