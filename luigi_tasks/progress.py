"""Progress of a partition task: a tqdm bar in local runs, throttled scheduler updates always."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Optional

import luigi

_REPORT_EVERY_S = 1.0


def _local_run() -> bool:
    try:
        return bool(luigi.interface.core().local_scheduler)
    except Exception:  # noqa: BLE001 - no command line (e.g. luigi.build): no bar
        return False


class Progress:
    """Per-entry callback: a tqdm bar in local runs, throttled scheduler updates always."""

    def __init__(self, task: Any, stage: str, total: Optional[int]) -> None:
        self.task = task
        self.total = total
        self.done = 0
        self.last = 0.0
        self.bar = None
        if _local_run():
            from tqdm import tqdm

            label = f"{stage} {task.index + 1}" + (f"/{task.count}" if task.count else "")
            self.bar = tqdm(total=total, desc=label, unit=" entries", leave=False, mininterval=0.5, file=sys.stderr)

    def __call__(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        now = time.monotonic()
        if now - self.last >= _REPORT_EVERY_S:
            self.last = now
            self.report()

    def report(self) -> None:
        msg = f"{self.done} entries" + (f" of about {self.total}" if self.total else "")
        self.task.set_status_message(msg)
        if self.total:
            self.task.set_progress_percentage(min(100, math.floor(100 * self.done / self.total)))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.report()
