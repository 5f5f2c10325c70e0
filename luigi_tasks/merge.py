"""``AlmWindows``: the main job, every final output in ``--output-dir``, in input order."""

from __future__ import annotations

import logging
import sys
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import luigi
import orjson

from alm_lhotse import objects
from alm_lhotse.execution.loop import merge_parts
from alm_lhotse.fs import Location, is_url, join, location
from alm_lhotse.outputs.streams import CONVERT_STREAMS, CUTS_PART, FINAL_NAMES, TRANSCRIPTS_FINAL
from alm_lhotse.sample import materialize_sample
from alm_lhotse.storage import JOURNAL_NAME, dir_lock, finish_publishing, link_into, publish_set, remove_tree, write_atomic
from luigi_tasks.bucket import StorageOptions, location_target, merge_into_bucket
from luigi_tasks.cleanup import keep_only, remove_dead_temps, remove_final_outputs, remove_stale_final_temps
from luigi_tasks.discovery import AlmDiscover
from luigi_tasks.layout import (
    CONVERT,
    MARKER,
    PART_WALL,
    PARTS,
    PUBLISHING,
    SAMPLE_DIR,
    STAGING,
    SUMMARY,
    PipelineError,
    ensure_writable,
    final_files,
    work_dir,
)
from luigi_tasks.parameters import PARTITION_BYTES, AlmParameters, DeclaredParameter
from luigi_tasks.partition import AlmPart, estimate_entries, job_key_of
from luigi_tasks.progress import close_job, plan_job
from luigi_tasks.report import build_summary, end_of_run_block

logger = logging.getLogger("luigi-interface")


def read_marker(final_dir: Location) -> dict[str, Any]:
    try:
        return orjson.loads(objects.read_bytes(join(final_dir, MARKER)))
    except (OSError, orjson.JSONDecodeError):
        return {}


class AlmWindows(StorageOptions, AlmParameters, luigi.Task):
    """The main job: every final output in ``--output-dir``, in input order.

    Downstream tasks (e.g. Shar export) use ``final_dir``, ``cuts_path`` and ``job_key``
    (which identifies the inputs and parameters the outputs were made from).
    """

    manifest_path = luigi.Parameter(
        default="", description="Manifest file or directory (default: the bundled sample conversations)."
    )
    output_dir = luigi.Parameter(default="alm_output", description="Where the outputs go.")
    partition_bytes = DeclaredParameter(PARTITION_BYTES, significant=False)

    @property
    def final_dir(self) -> Location:
        """An absolute ``Path``, or a URL (``str``) for object storage."""
        return location(self.output_dir)

    @property
    def cuts_path(self) -> Location:
        return join(self.final_dir, FINAL_NAMES[CUTS_PART])

    @cached_property
    def _manifest(self) -> str:
        """The absolute manifest path; the bundled sample, written out, when none is given."""
        if self.manifest_path:
            return str(location(self.manifest_path))
        ensure_writable(self.final_dir)
        return str(materialize_sample(join(self.final_dir, SAMPLE_DIR)))

    def discovery(self) -> AlmDiscover:
        return AlmDiscover(
            manifest_path=self._manifest, output_dir=str(self.final_dir), partition_bytes=self.partition_bytes,
            storage_options=self.storage_options,
        )

    @property
    def job_key(self) -> str:
        return job_key_of(self.discovery().listing_key, self)

    @cached_property
    def _parts(self) -> list[AlmPart]:
        ensure_writable(self.final_dir)
        count = len(self.discovery().plan()["partitions"])
        common = {"manifest_path": self._manifest, "output_dir": str(self.final_dir), "count": count}
        return [self.clone(AlmPart, index=index, **common) for index in range(count)]

    @cached_property
    def _found(self) -> tuple[bool, list[tuple[bool, bool]]]:
        """What earlier runs left, as found when this job was scheduled: the plan, and
        each partition's conversion and windows."""
        plan = self.discovery().complete()
        outputs = [part.output() for part in self._parts]
        return plan, [(o["conversion"].exists(), o["windows"].exists()) for o in outputs]

    @property
    def reused(self) -> dict[str, Any]:
        """The counts of ``_found`` the summary keeps under ``timings.reused``."""
        plan, found = self._found
        return {
            "plan": plan,
            "partitions": len(found),
            "conversions": sum(conversion for conversion, _ in found),
            "windows": sum(windows for _, windows in found),
        }

    def requires(self) -> dict[str, Any]:
        found = self._found[1]  # taken before any partition runs
        plan_job(lambda: {part.index: estimate_entries(part.slices()) for part in self._parts if not all(found[part.index])})
        return {"discovery": self.discovery(), "parts": self._parts}

    def output(self) -> dict[str, luigi.LocalTarget]:
        """The final outputs by stream name, and ``summary``."""
        names = [*(name.split(".")[0] for name in FINAL_NAMES), "summary"]
        targets = {name: location_target(path) for name, path in zip(names, final_files(self.final_dir))}
        if self.transcript_view:
            targets["transcripts"] = location_target(join(self.final_dir, TRANSCRIPTS_FINAL))
        return targets

    def complete(self) -> bool:
        """Outputs exist and were made from these inputs and parameters."""
        try:
            key = self.job_key
            marker = read_marker(self.final_dir)  # a URL's store may be unreachable
        except (ValueError, PipelineError) as exc:  # bad input path or parameter: say it plainly
            print(f"ERROR: {exc}", file=sys.stderr)
            raise
        if marker.get("job_key") != key or (not is_url(self.final_dir) and (self.final_dir / JOURNAL_NAME).exists()):
            return False
        return all(t.exists() for t in self.output().values())

    def run(self) -> None:
        out = self.final_dir
        if is_url(out):
            close_job()
            print(end_of_run_block(merge_into_bucket(self), out), flush=True)
            return
        with dir_lock(out, on_wait=lambda lock: logger.warning("waiting for another run writing into %s (lock %s)", out, lock)):
            if finish_publishing(out):
                logger.warning("finished publishing the outputs of an interrupted run in %s", out)
            if self.complete():
                print(f"outputs in {out} are up to date: another run completed them", flush=True)
                return
            close_job()
            summary = self._merge(out)
        self._collect_garbage()
        print(end_of_run_block(summary, out), flush=True)

    def _merge(self, out: Path) -> dict[str, Any]:
        """Write the new set of final outputs, the marker included (it names the job the
        outputs belong to), into the work directory, then publish them as one set."""
        windows = [part.output()["windows"] for part in self._parts]
        conversions = [part.output()["conversion"] for part in self._parts]
        remove_stale_final_temps(out)
        started = time.perf_counter()
        new = work_dir(out) / PUBLISHING
        remove_tree(new)
        try:
            staged = self._parts[0].staging().finish([(w.key, w.path) for w in windows])
            totals = merge_parts([w.path for w in windows], new, CONVERT_STREAMS, convert_dirs=[c.path for c in conversions])
            for name, path in staged.items():
                link_into(path, new / FINAL_NAMES[name])
            walls = [orjson.loads((c.path / PART_WALL).read_bytes())["wall_s"] for c in windows + conversions]
            plan = self.discovery().plan()
            merge_s = time.perf_counter() - started
            summary = build_summary(totals, plan, self.parameters_record(), walls, merge_s, self.reused)
            write_atomic(new / SUMMARY, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
            from alm_lhotse.report.page import write_report  # matplotlib: only when a merge runs

            report = [path.relative_to(new) for path in write_report(new, summary)]
            marker = {"job_key": self.job_key, "parameters": self.parameters_record(), "parts": [w.key for w in windows]}
            write_atomic(new / MARKER, orjson.dumps(marker))
            names = [*FINAL_NAMES.values(), *self._transcript_view(new), *report, SUMMARY, MARKER]
            publish_set(out, [(new / name, out / name) for name in names])
            if TRANSCRIPTS_FINAL not in names:
                (out / TRANSCRIPTS_FINAL).unlink(missing_ok=True)
        except OSError as exc:
            remove_final_outputs(out)
            raise PipelineError(f"writing the final outputs into {out} failed, none were kept: {exc}") from exc
        finally:
            remove_tree(new)
        return summary

    def _transcript_view(self, new: Path) -> list[str]:
        """The transcript view, made from the merged cuts, when asked for (one left by an
        earlier job goes once the new set is published: it does not belong to it)."""
        config = self.transcript_config()
        if not config.transcript_view:
            return []
        from alm_lhotse.lhotse_io import write_transcript_view  # imports lhotse: only when asked for

        write_transcript_view(new / FINAL_NAMES[CUTS_PART], new / TRANSCRIPTS_FINAL, config.speaker_tag)
        return [TRANSCRIPTS_FINAL]

    def _collect_garbage(self) -> None:
        """Checkpoints of other jobs go; this job's stay (they are the partitions' outputs,
        and the final outputs share the staged files' data)."""
        work = work_dir(self.final_dir)
        outputs = [part.output() for part in self._parts]
        keep_only(work / CONVERT, (o["conversion"].path.name for o in outputs))
        keep_only(work / PARTS, (o["windows"].path.name for o in outputs))
        keep_only(work / STAGING, [self._parts[0].staging().directory.name] if self._parts else [])
        remove_dead_temps(work)
