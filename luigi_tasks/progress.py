"""Progress: one job-level tqdm bar with ETA in local runs, scheduler updates always.

Partition tasks run in processes luigi forks (``--workers N``), so the bar cannot live in
them: the scheduling process plans it (``plan_job``) before luigi forks, each
partition writes its entries done into its own slot of shared memory (no lock needed),
and a thread of the scheduling process draws their sum.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
import threading
import time
from typing import Any, Callable, Optional, Sequence

import luigi

_REPORT_EVERY_S = 1.0
_DRAW_EVERY_S = 0.25
_CLOSE_WAIT_S = 2.0


def local_run() -> bool:
    try:
        return bool(luigi.interface.core().local_scheduler)
    except Exception:  # noqa: BLE001 - no command line (e.g. luigi.build): no bar
        return False


class JobProgress:
    """The job's bar: entries done over entries planned, summed over partitions."""

    def __init__(self, totals: Sequence[Optional[int]]) -> None:
        # Slots: [closing, closed, done of partition 0, 1, ...]
        self.slots = multiprocessing.get_context("fork").RawArray("q", 2 + len(totals))
        self.total = None if None in totals else sum(t or 0 for t in totals)
        threading.Thread(target=self._draw, name="alm-progress", daemon=True).start()

    def add(self, index: int, n: int) -> None:
        self.slots[2 + index] += n

    def _draw(self) -> None:
        from tqdm import tqdm

        with tqdm(total=self.total, desc="windows", unit=" entries", file=sys.stderr, mininterval=0.5) as bar:
            while not self.slots[0]:
                done = sum(self.slots[2:])
                bar.update(done - bar.n)
                if self.total is not None and done >= self.total:
                    break
                time.sleep(_DRAW_EVERY_S)
            bar.update(sum(self.slots[2:]) - bar.n)
        self.slots[1] = 1

    def close(self) -> None:
        """Stop drawing (from any process) and wait briefly until the bar is gone, so
        what is printed next does not share a line with it."""
        self.slots[0] = 1
        deadline = time.monotonic() + _CLOSE_WAIT_S
        while not self.slots[1] and time.monotonic() < deadline:
            time.sleep(0.01)


_JOB: Optional[JobProgress] = None


def plan_job(outstanding: Callable[[], dict[int, Optional[int]]]) -> None:
    """Plan the job's bar, once and only in local runs, for the partitions still to run:
    ``outstanding()`` maps their indices to their entries (None when unknown)."""
    global _JOB
    if _JOB is None and local_run():
        totals = outstanding()
        if totals:
            _JOB = JobProgress([totals.get(i, 0) for i in range(max(totals) + 1)])


def close_job() -> None:
    if _JOB is not None:
        _JOB.close()


class TaskStatus:
    """Throttled status messages and percentage of one task for the scheduler (luigid's
    page shows them): ``done`` of ``total`` ``unit``, at most once a second."""

    def __init__(self, task: Any, total: Optional[int], unit: str, approximate: bool = False) -> None:
        self.task = task
        self.total = total
        self.unit = unit
        self.approximate = approximate
        self.done = 0
        self.last = 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= _REPORT_EVERY_S:
            self.last = now
            self.report()

    def report(self) -> None:
        of = f" of {'about ' if self.approximate else ''}{self.total}" if self.total else ""
        self.task.set_status_message(f"{self.done}{of} {self.unit}")
        if self.total:
            self.task.set_progress_percentage(min(100, math.floor(100 * self.done / self.total)))


class Progress(TaskStatus):
    """Per-entry callback of a partition: its share of the job's bar, and its status."""

    def __init__(self, task: Any, total: Optional[int]) -> None:
        super().__init__(task, total, "entries", approximate=True)

    def __call__(self, n: int) -> None:
        if _JOB is not None:
            _JOB.add(self.task.index, n)
        self.add(n)

    def close(self) -> None:
        self.report()
