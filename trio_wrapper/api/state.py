"""What the routes share: the config, the supervisor, the run index, and when the app
started."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from trio_wrapper.config import Config
from trio_wrapper.core.timefmt import now_local
from trio_wrapper.runtime.runindex import IndexService
from trio_wrapper.runtime.supervisor import Supervisor


@dataclass
class AppState:
    config: Config
    supervisor: Supervisor
    index: IndexService | None = None
    started_at: datetime = field(default_factory=now_local)
    started_mono: float = field(default_factory=time.monotonic)
