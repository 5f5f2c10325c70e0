"""The pipeline with an object-storage output directory (``--output-dir s3://...``).

Workers may share nothing but the scheduler and the bucket, so every checkpoint is in
the bucket, written the way object stores allow (``alm_lhotse.objects``):

- a partition task writes its part files into a local temp directory (the same fast
  loop as a local run), then uploads them as write-once objects, its ``task.json``
  last: the checkpoint is complete exactly when that object exists;
- there is no staging (appending in place needs a shared file): the merge streams
  each partition's part objects, in order, into one multipart upload per final output,
  which the store completes only when the whole object is written;
- the merge holds a lock object created by a conditional put, removes the marker
  first and writes it last, as a local merge does.

Storage options (fsspec keyword arguments) come from the ``[storage]`` cfg section,
overridden key by key by ``--storage-options JSON``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import luigi
import luigi.configuration
import orjson
from luigi.parameter import ParameterVisibility

from alm_lhotse import fs, objects
from alm_lhotse.execution.loop import DURATIONS_PART, Counts, decode_durations, merge_counts
from alm_lhotse.object_lock import object_lock
from alm_lhotse.outputs.streams import CONVERT_STREAMS, CUTS_PART, FINAL_NAMES, STREAMS, SUMMARY_PART, TRANSCRIPTS_FINAL
from alm_lhotse.storage import LOCK_NAME
from luigi_tasks.layout import CONVERT, MARKER, PART_WALL, PARTS, STAGING, SUMMARY, PipelineError, work_dir, written_by_the_job

if TYPE_CHECKING:
    from luigi_tasks.merge import AlmWindows

logger = logging.getLogger("luigi-interface")
SECTION = "storage"


def config_options() -> dict[str, Any]:
    """The ``[storage]`` section: each key an fsspec option, its value JSON where it
    parses as JSON (``anon = true``, ``client_kwargs = {...}``), else text."""
    conf = luigi.configuration.get_config()
    if not conf.has_section(SECTION):
        return {}
    options: dict[str, Any] = {}
    for key, text in conf.items(SECTION):
        try:
            options[key] = orjson.loads(text)
        except orjson.JSONDecodeError:
            options[key] = text
    return options


class StorageOptions:
    """The ``storage_options`` parameter; constructing a task configures this process's
    storage layer with them. Not significant (never in task ids) and private (never
    sent to the scheduler), since it may hold credentials."""

    storage_options = luigi.Parameter(
        default="",
        significant=False,
        visibility=ParameterVisibility.PRIVATE,
        description="fsspec storage options as a JSON object, over the [storage] cfg section.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from luigi_tasks.parameters import reported

        with reported("storage_options (--storage-options)"):
            fs.configure({**config_options(), **fs.parse_options(self.storage_options)})


class LocationTarget(luigi.Target):
    """A file or an object; exists when it is there (each is written whole)."""

    def __init__(self, loc: fs.Location) -> None:
        self.location = loc
        self.path = str(loc)

    def exists(self) -> bool:
        return objects.exists(self.location)

    def __str__(self) -> str:
        return self.path


def location_target(loc: fs.Location) -> luigi.Target:
    """A task's target: a ``LocalTarget`` for a file, a ``LocationTarget`` for an object."""
    return LocationTarget(loc) if fs.is_url(loc) else luigi.LocalTarget(str(loc))


def merge_into_bucket(task: "AlmWindows") -> dict[str, Any]:
    """``AlmWindows.run`` for a URL output directory: under the lock object, the final
    objects streamed from the part objects, ``summary.json`` after them, the marker
    last; then the checkpoints of other jobs go. Returns the summary."""
    out = str(task.final_dir)
    lock = fs.join(out, LOCK_NAME)
    waiting = lambda held: logger.warning("waiting for another run writing into %s (lock %s)", out, held)  # noqa: E731
    from luigi_tasks.cleanup import pid_alive

    with object_lock(lock, pid_alive, on_wait=waiting):
        if task.complete():
            logger.info("outputs in %s were completed by a concurrent run", out)
            return orjson.loads(objects.read_bytes(fs.join(out, SUMMARY)))
        summary = _merge(task, out)
        objects.abort_uploads(out, written_by_the_job)  # a killed run's, unseen but stored
    _collect_garbage(task)
    return summary


def _merge(task: "AlmWindows", out: str) -> dict[str, Any]:
    started = time.perf_counter()
    windows = [str(part.output()["windows"].path) for part in task._parts]
    conversions = [str(part.output()["conversion"].path) for part in task._parts]
    objects.remove(fs.join(out, MARKER))
    try:
        for name in STREAMS:
            sources = conversions if name in CONVERT_STREAMS else windows
            objects.concatenate_into([fs.join(d, name) for d in sources], fs.join(out, FINAL_NAMES[name]))
        _transcript_view(task, out)
        counts = [Counts(**orjson.loads(objects.read_bytes(fs.join(d, SUMMARY_PART)))) for d in windows]
        walls = [orjson.loads(objects.read_bytes(fs.join(d, PART_WALL)))["wall_s"] for d in windows + conversions]
    except (OSError, fs.StorageError) as exc:
        raise PipelineError(f"writing the final outputs into {out} failed: {exc}") from exc
    from alm_lhotse.report.page import report_into
    from luigi_tasks.report import build_summary

    plan = task.discovery().plan()
    merge_s = time.perf_counter() - started
    durations = (x for d in windows for x in decode_durations(objects.read_bytes(fs.join(d, DURATIONS_PART))))
    summary = build_summary(merge_counts(counts, durations), plan, task.parameters_record(), walls, merge_s, task.reused)
    report_into(out, summary)
    objects.write_bytes(fs.join(out, SUMMARY), orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    marker = {"job_key": task.job_key, "parameters": task.parameters_record(), "parts": [fs.name_of(w) for w in windows]}
    objects.write_bytes(fs.join(out, MARKER), orjson.dumps(marker))
    return summary


def _transcript_view(task: "AlmWindows", out: str) -> None:
    """The transcript view streamed from the merged cuts object into its own, when asked
    for; an earlier job's goes (the marker is already gone, so nothing counts it)."""
    target = fs.join(out, TRANSCRIPTS_FINAL)
    config = task.transcript_config()
    if not config.transcript_view:
        objects.remove(target)
        return
    from alm_lhotse.lhotse_io import write_transcript_view  # imports lhotse: only when asked for

    write_transcript_view(fs.join(out, FINAL_NAMES[CUTS_PART]), target, config.speaker_tag)


def _collect_garbage(task: "AlmWindows") -> None:
    """Checkpoints of other jobs go; this job's stay, so a re-run finds them complete."""
    work = work_dir(task.final_dir)
    outputs = [part.output() for part in task._parts]
    with contextlib.suppress(fs.StorageError):
        objects.remove_all_but(fs.join(work, CONVERT), (fs.name_of(o["conversion"].path) for o in outputs))
        objects.remove_all_but(fs.join(work, PARTS), (fs.name_of(o["windows"].path) for o in outputs))
        objects.remove(fs.join(work, STAGING))
