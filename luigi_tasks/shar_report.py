"""What the Shar export tasks say: a progress bar per group task in local runs (and
progress for luigid's page), and failures in one line, without a traceback, where the
cause is the input or the user's choice (missing audio, a directory holding another
export)."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Optional

import luigi

from alm_lhotse.shar import state_dir_for
from alm_lhotse.shar_write import SharExportError
from luigi_tasks.progress import local_run

_REPORT_EVERY_S = 1.0


class ShardProgress:
    """Windows written by one group task: a tqdm bar in local runs, throttled scheduler
    updates always (luigid shows them per task)."""

    def __init__(self, task: Any, total: int) -> None:
        self.task, self.total, self.done, self.last = task, total, 0, 0.0
        self.bar: Optional[Any] = None
        if local_run() and total:
            from tqdm import tqdm

            label = f"Shar group {task.group + 1}/{task.shar_groups}"
            self.bar = tqdm(total=total, desc=label, unit=" windows", leave=False, mininterval=0.5, file=sys.stderr)

    def __enter__(self) -> "ShardProgress":
        return self

    def __call__(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        now = time.monotonic()
        if now - self.last >= _REPORT_EVERY_S:
            self.last = now
            self._report()

    def _report(self) -> None:
        self.task.set_status_message(f"{self.done} of {self.total} windows")
        if self.total:
            self.task.set_progress_percentage(min(100, math.floor(100 * self.done / self.total)))

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()
        self._report()


def report_failures(task_class: type) -> None:
    """One ``ERROR:`` line per failed export task; for missing or unreadable audio, how to
    go on (luigi's own report of these is dropped by ``luigi_tasks.events``)."""

    @task_class.event_handler(luigi.Event.FAILURE)
    def _report(task: Any, exc: BaseException) -> None:
        if isinstance(exc, SharExportError):
            rejects = state_dir_for(task.shar_path) / "rejects.jsonl"
            hint = f"use --audio-on-error skip to leave such windows out; they are then listed in {rejects}"
            print(f"ERROR: {exc} ({hint})", file=sys.stderr, flush=True)
        else:
            print(f"ERROR: {task.task_family} failed: {exc}", file=sys.stderr, flush=True)
