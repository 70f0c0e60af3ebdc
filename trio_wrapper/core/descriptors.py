"""A budget of open file descriptors: refuse new work before the process runs out.

Running out is worse than refusing: at ``EMFILE`` the server cannot accept (clients wait
for nothing), an agent's start fails half-way, a log cannot be opened. So a new agent or
SSE client is refused with ``too_many_open_files`` while a reserve is still free for
plain requests, log files and the daemon's own work.

Counting the descriptors in use costs about 1.6 µs each (a read of ``/proc/self/fd``), too
much per request with thousands open; the count is sampled now and then and every
admission since the sample is added to it, pessimistically (what was closed since is not
subtracted until the next sample).
"""

from __future__ import annotations

from dataclasses import dataclass

from trio_wrapper.core.errors import Refusal

# What one agent holds at most: its stdout, stderr and stdin pipes (or one PTY), two log
# files, the events file, trio's pidfd for the child, and the read-back of a log.
AGENT_DESCRIPTORS = 8
# An SSE client's socket is open before its stream is asked for; the stream itself holds
# no other descriptor. Counted anyway: a thousand streams are a thousand sockets.
CLIENT_DESCRIPTORS = 1


@dataclass(slots=True)
class DescriptorBudget:
    limit: int  # RLIMIT_NOFILE (soft)
    reserve: int  # kept free for everything that is not a new agent or stream
    in_use: int = 0  # at the last sample
    added: int = 0  # admitted since the last sample

    @property
    def ceiling(self) -> int:
        return max(0, self.limit - self.reserve)

    @property
    def estimate(self) -> int:
        return self.in_use + self.added

    def sampled(self, in_use: int) -> None:
        self.in_use = in_use
        self.added = 0

    def is_tight(self) -> bool:
        """Past half the ceiling: worth sampling often."""
        return 2 * self.estimate >= self.ceiling

    def admit(self, what: str, cost: int) -> None:
        """Count ``cost`` descriptors for ``what``, or refuse it (``too_many_open_files``)."""
        if self.estimate + cost > self.ceiling:
            raise Refusal(
                "too_many_open_files",
                f"{what} refused: {self.estimate} of {self.limit} file descriptors in use "
                f"and {self.reserve} are kept free (limits.fd_reserve); "
                "stop agents or streams, or raise the daemon's open-file limit",
            )
        self.added += cost
