"""What the Shar export tasks say: a progress bar per group task in local runs (and
progress for luigid's page), and failures in one line, without a traceback, where the
cause is the input or the user's choice (missing audio, a directory holding another
export)."""

from __future__ import annotations

import sys
from typing import Any, Optional

import luigi

from alm_lhotse.fs import join
from alm_lhotse.shar import REJECTS, state_dir_for
from alm_lhotse.shar_write import SharExportError
from luigi_tasks.progress import TaskStatus, local_run


class ShardProgress(TaskStatus):
    """Windows written by one group task: a tqdm bar in local runs, and its status."""

    def __init__(self, task: Any, total: int) -> None:
        super().__init__(task, total, "windows")
        self.bar: Optional[Any] = None
        if local_run() and total:
            from tqdm import tqdm

            label = f"Shar group {task.group + 1}/{task.shar_groups}"
            self.bar = tqdm(total=total, desc=label, unit=" windows", leave=False, mininterval=0.5, file=sys.stderr)

    def __enter__(self) -> "ShardProgress":
        return self

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)
        self.add(n)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()
        self.report()


def report_failures(task_class: type) -> None:
    """One ``ERROR:`` line per failed export task; for missing or unreadable audio, how to
    go on (luigi's own report of these is dropped by ``luigi_tasks.events``)."""

    @task_class.event_handler(luigi.Event.FAILURE)
    def _report(task: Any, exc: BaseException) -> None:
        if isinstance(exc, SharExportError):
            rejects = join(state_dir_for(task.shar_path), REJECTS)
            hint = f"use --audio-on-error skip to leave such windows out; they are then listed in {rejects}"
            print(f"ERROR: {exc} ({hint})", file=sys.stderr, flush=True)
        else:
            print(f"ERROR: {task.task_family} failed: {exc}", file=sys.stderr, flush=True)
