"""Failures said in one plain line each; luigi's own report of them (a traceback) is
dropped for errors the user caused, which the line explains completely."""

from __future__ import annotations

import logging
import sys

import luigi

from alm_lhotse.errors import ManifestError, OutputError
from alm_lhotse.params import ParamError
from alm_lhotse.shar import SharDirError
from alm_lhotse.shar_write import SharExportError
from luigi_tasks.layout import PipelineError
from luigi_tasks.merge import AlmWindows
from luigi_tasks.partition import AlmPart
from luigi_tasks.progress import close_job
from luigi_tasks.staging import StagingError

USER_ERRORS = (ManifestError, OutputError, ParamError, PipelineError, StagingError, SharDirError, SharExportError)


class _WithoutUserErrorTracebacks(logging.Filter):
    """Drops luigi's reports of user errors: a task's failure (its exception attached) and
    a failed ``complete()`` (its traceback formatted into the message)."""

    names = tuple(f"{cls.__module__}.{cls.__qualname__}: " for cls in USER_ERRORS)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            return not isinstance(record.exc_info[1], USER_ERRORS)
        return not (str(record.msg).startswith("Will not run") and any(n in record.getMessage() for n in self.names))


logging.getLogger("luigi-interface").addFilter(_WithoutUserErrorTracebacks())


@AlmPart.event_handler(luigi.Event.FAILURE)
def _report_failure(task: AlmPart, exc: BaseException) -> None:
    """A bad line: file, line, field and reason, and how to skip such lines."""
    close_job()
    if isinstance(exc, ManifestError):
        print(f"ERROR: bad manifest line: {exc} (use --on-error skip to write such lines to rejects.jsonl)", file=sys.stderr)
    else:
        print(f"ERROR: {task.task_family} {task.index} failed: {exc}", file=sys.stderr)


@AlmWindows.event_handler(luigi.Event.FAILURE)
def _report_merge_failure(task: AlmWindows, exc: BaseException) -> None:
    close_job()
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
