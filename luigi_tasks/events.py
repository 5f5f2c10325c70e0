"""Failures said in one plain line each, besides luigi's own report."""

from __future__ import annotations

import sys

import luigi

from alm_lhotse.errors import ManifestError
from luigi_tasks.merge import AlmWindows
from luigi_tasks.partition import AlmPart


@AlmPart.event_handler(luigi.Event.FAILURE)
def _report_failure(task: AlmPart, exc: BaseException) -> None:
    """A bad line: file, line, field and reason, and how to skip such lines."""
    if isinstance(exc, ManifestError):
        print(f"ERROR: bad manifest line: {exc} (use --on-error skip to write such lines to rejects.jsonl)", file=sys.stderr)
    else:
        print(f"ERROR: {task.task_family} {task.index} failed: {exc}", file=sys.stderr)


@AlmWindows.event_handler(luigi.Event.FAILURE)
def _report_merge_failure(task: AlmWindows, exc: BaseException) -> None:
    print(f"ERROR: {exc}", file=sys.stderr)


@AlmWindows.event_handler(luigi.Event.BROKEN_TASK)
def _report_broken(task: AlmWindows, exc: BaseException) -> None:
    """Scheduling failures (missing input, bad parameter, unwritable DIR) in one line."""
    print(f"ERROR: {exc}", file=sys.stderr)


_UP_TO_DATE: set[str] = set()


@AlmWindows.event_handler(luigi.Event.DEPENDENCY_PRESENT)
def _report_up_to_date(task: AlmWindows) -> None:
    """Found complete while scheduling (a no-op re-run, or upstream of ``AlmShar``): say
    so once, since luigi's own report is off or easy to miss."""
    out = str(task.final_dir)
    if out not in _UP_TO_DATE:
        _UP_TO_DATE.add(out)
        print(f"outputs in {out} are up to date: nothing to do", flush=True)
