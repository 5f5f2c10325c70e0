"""The task chain: discovery -> per partition, conversion (read, validate, Lhotse
recordings and supervisions) -> windows (windows, overlap filter, part export) -> merge
into the final outputs. Conversion and windows are separate checkpoints; a first run
writes both in one pass of the conversion task.

Layout of an output directory DIR::

    DIR/alm_output.jsonl, rejects.jsonl, summary.json, lhotse/*.jsonl.gz   final outputs
    DIR/.alm_state.json      which job (inputs + parameters) the final outputs belong to
    DIR/.alm.lock            fcntl lock held while final outputs are written
    DIR/.work/discovery/     partition plans, keyed by input listing
    DIR/.work/convert/       one directory per partition's conversion, keyed by its slices,
                             file stats, on_error and sort_segments; kept after the merge
    DIR/.work/parts/         one directory per partition's windows, keyed by its slices +
                             every parameter; removed after the merge
    DIR/.work/staging/       per job, the compatible JSONL assembled from the partitions
                             as they finish (luigi_tasks.staging); renamed into place by
                             the merge

Every path under ``.work`` carries a hash of what determines its content, so a changed
input or parameter never reuses stale work, while unchanged work (the plan, and the
conversion when only window or overlap parameters change) is reused.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import luigi
import orjson

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.errors import ManifestError
from alm_lhotse.execution.loop import merge_parts, run_partition
from alm_lhotse.execution.partitions import (
    DEFAULT_PARTITION_BYTES,
    FileSlice,
    plan_partitions,
    slice_lines,
)
from alm_lhotse.outputs.streams import (
    COMPAT_PART,
    CONVERT_STREAMS,
    FINAL_NAMES,
    WINDOW_STREAMS,
)
from alm_lhotse.reading.discovery import discover_manifests, listing_fingerprint
from alm_lhotse.sample import materialize_sample
from alm_lhotse.storage import dir_lock, key_of, remove_tree, write_atomic
from luigi_tasks.parameters import FORMAT_VERSION, AlmParameters
from luigi_tasks.progress import Progress
from luigi_tasks.report import build_summary, end_of_run_block
from luigi_tasks.staging import Staging

logger = logging.getLogger("luigi-interface")

WORK_DIR = ".work"
MARKER = ".alm_state.json"
LOCK = ".alm.lock"
SUMMARY = "summary.json"
SAMPLE_DIR = "sample_data"
PART_WALL = "task.json"
STAGING = "staging"
# Auto partition size: about this many partitions for mid-sized inputs, so two or more
# workers stay busy on one large file, within these bounds (the plan makes at most
# MAX_PARTITIONS partitions, two tasks each). Fewer would leave a worker idle at the end;
# more cost a process per task (16 measured 0.2 s slower than 8 on 10,000 entries).
AUTO_PARTITIONS = 8
AUTO_MIN_BYTES = 1 << 20


class PipelineError(RuntimeError):
    """A problem with the run itself (output directory, concurrent runs), not the data."""


def _ensure_writable(directory: Path) -> None:
    """Fail at scheduling time, with the reason, when DIR cannot hold outputs."""
    probe = directory / WORK_DIR / f".probe-{socket.gethostname()}-{os.getpid()}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PipelineError(f"output directory {directory} is not writable: {exc.strerror or exc}") from exc


class AlmDiscover(luigi.Task):
    """Find the manifest files and plan the partitions.

    The plan decides how many partition tasks exist, so the scheduler needs it while
    building the graph: ``plan()`` computes it then (once per process) and checkpoints it
    as this task's output, keyed by the input listing, so a run with other window
    parameters, or a no-op re-run, reuses it.
    """

    manifest_path = luigi.Parameter(description="Absolute manifest file or directory.")
    work_dir = luigi.Parameter()
    listing_key = luigi.Parameter(description="Hash of the input paths and the listing fingerprint.")
    partition_bytes = luigi.IntParameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(Path(self.work_dir) / "discovery" / f"{self.listing_key}-{self.partition_bytes}.json"))

    def run(self) -> None:
        self.plan()

    @cached_property
    def _plan(self) -> dict[str, Any]:
        path = Path(self.output().path)
        try:
            return orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):  # not planned yet, or emptied by a power loss
            pass
        started = time.perf_counter()
        files = discover_manifests(self.manifest_path)
        partitions = plan_partitions(files, self.partition_bytes)
        stats = {}
        for f in files:
            st = f.stat()
            stats[str(f)] = [st.st_size, st.st_mtime_ns]
        plan = {
            "version": FORMAT_VERSION,
            "inputs": [self.manifest_path],
            "files": [str(f) for f in files],
            "fingerprint": listing_fingerprint(files),
            "stats": stats,
            "partitions": [[asdict(sl) for sl in part] for part in partitions],
            "discovery_s": time.perf_counter() - started,
        }
        write_atomic(path, orjson.dumps(plan))
        return plan

    def plan(self) -> dict[str, Any]:
        return self._plan


class _PartitionTask(luigi.Task):
    """What both halves of a partition share: where its slices come from, and running
    ``run_partition`` into temp directories that appear by atomic renames."""

    manifest_path = luigi.Parameter()
    work_dir = luigi.Parameter()
    listing_key = luigi.Parameter()
    partition_bytes = luigi.IntParameter()
    index = luigi.IntParameter(description="Partition number in the plan.")
    count = luigi.IntParameter(significant=False, default=0, description="Number of partitions (for progress).")
    convert_key = luigi.Parameter(description="Hash of this partition's slices, file stats, on_error and sort_segments.")
    part_key = luigi.Parameter(description="Hash of this partition's slices, file stats and parameters.")
    staging_key = luigi.Parameter(description="The job whose compatible JSONL this partition's windows go into.")

    on_error: str  # a parameter of AlmParameters

    @property
    def priority(self) -> int:
        """Partitions run in order, so each tends to find the earlier ones placed in the
        staging file when it finishes (luigi runs higher priorities first)."""
        return 1_000_000 - self.index

    def discovery(self) -> AlmDiscover:
        return self.clone(AlmDiscover)

    def slices(self) -> list[FileSlice]:
        plan = self.discovery().plan()
        return [FileSlice(**sl) for sl in plan["partitions"][self.index]]

    def convert_dir(self) -> Path:
        return Path(self.work_dir) / "convert" / self.convert_key

    def part_dir(self) -> Path:
        return Path(self.work_dir) / "parts" / self.part_key

    def staging(self) -> Staging:
        return staging_of(self.work_dir, self.staging_key)

    def windows_done(self) -> bool:
        """Part files exist, the compatible JSONL in its part file or in the job's staging
        file; or they were merged into the current final outputs (and then removed): a
        concurrent run of the same job must not see its parts vanish."""
        part = self.part_dir()
        if (part / PART_WALL).exists() and ((part / COMPAT_PART).exists() or self.staging().holds(self.index, self.part_key)):
            return True
        return self.part_key in merged_parts(Path(self.work_dir).parent)

    def _run_into(self, stage: str, outputs: dict[Path, tuple[str, ...]], wcfg: WindowConfig, ocfg: OverlapConfig) -> None:
        """One pass over the slices writing each final directory's streams, published in
        the order given (a conversion before the windows made from it)."""
        temps = {final: final.with_name(f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}") for final in outputs}
        for tmp in temps.values():
            remove_tree(tmp)
        started = time.perf_counter()
        slices = self.slices()
        progress = Progress(self, stage, _estimate_entries(slices))
        try:
            run_partition(
                slices, wcfg, ocfg, {temps[final]: streams for final, streams in outputs.items()},
                on_error=self.on_error, progress=progress,
            )
            # Each checkpoint records its share of the pass, so the summary's total is its wall time.
            wall = orjson.dumps({"wall_s": (time.perf_counter() - started) / len(temps)})
            for tmp in temps.values():
                (tmp / PART_WALL).write_bytes(wall)
            progress.close()
            part = self.part_dir()
            if part not in outputs:
                for final, tmp in temps.items():
                    _publish_dir(tmp, final)
                return
            with self.staging().settle(self.index, self.part_key, temps[part] / COMPAT_PART, part / COMPAT_PART):
                for final, tmp in temps.items():
                    _publish_dir(tmp, final, replace=final == part)
        except BaseException:
            progress.close()
            for tmp in temps.values():
                remove_tree(tmp)
            raise


class AlmConvert(AlmParameters, _PartitionTask):
    """One partition's conversion: read, validate, and write its Lhotse recordings and
    supervisions and its rejected lines. Its output is keyed by the input and the two
    parameters that change these files, so other window or overlap parameters reuse it;
    kept after the merge.

    The same pass also builds the partition's windows (the ``AlmPart`` checkpoint) when
    they are not there yet, so a first run reads and parses every line once."""

    def requires(self) -> AlmDiscover:
        return self.discovery()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.convert_dir()))

    def complete(self) -> bool:
        return (self.convert_dir() / PART_WALL).exists()

    def run(self) -> None:
        if self.windows_done():
            # Windows are not written, so default values serve (the loop builds none).
            wcfg = WindowConfig(sort_segments=self.sort_segments)
            self._run_into("conversion", {self.convert_dir(): CONVERT_STREAMS}, wcfg, OverlapConfig())
        else:
            outputs = {self.convert_dir(): CONVERT_STREAMS, self.part_dir(): WINDOW_STREAMS}
            self._run_into("partition", outputs, self.window_config(), self.overlap_config())


class AlmPart(AlmParameters, _PartitionTask):
    """One partition's windows: build windows, filter overlaps and write the compatible
    JSONL and the window cuts (recording ids as in its ``AlmConvert``). Scheduled when
    the conversion exists (another window or overlap parameter); nothing to do when the
    conversion task made the windows in the same pass meanwhile."""

    def requires(self) -> AlmConvert:
        """The same partition's conversion: every parameter it has is passed from here."""
        return self.clone(AlmConvert)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.part_dir()))

    def complete(self) -> bool:
        return self.windows_done()

    def run(self) -> None:
        if not self.windows_done():
            self._run_into("windows", {self.part_dir(): WINDOW_STREAMS}, self.window_config(), self.overlap_config())


def read_marker(final_dir: Path) -> dict[str, Any]:
    try:
        return orjson.loads((final_dir / MARKER).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}


def merged_parts(final_dir: Path) -> frozenset[str]:
    """Keys of the partitions the final outputs in ``final_dir`` were merged from."""
    if not all((final_dir / name).exists() for name in [*FINAL_NAMES.values(), SUMMARY]):
        return frozenset()
    return frozenset(read_marker(final_dir).get("parts", ()))


def staging_of(work_dir: str, job_key: str) -> Staging:
    return Staging(Path(work_dir) / STAGING / job_key)


def _publish_dir(tmp: Path, final: Path, replace: bool = False) -> None:
    """Rename a finished temp directory into place; a concurrent run may have won, or,
    with ``replace`` (the caller holds the staging lock), an invalid one is there."""
    if replace:
        remove_tree(final)
    try:
        os.rename(tmp, final)
    except OSError:
        if not (final / PART_WALL).exists():
            raise
        remove_tree(tmp)


def _estimate_entries(slices: list[FileSlice]) -> Optional[int]:
    """Lines in the slices (plain files only; a gzip slice's count is unknown)."""
    counts = [slice_lines(sl) for sl in slices]
    return None if None in counts else sum(counts)


def _auto_partition_bytes(files: list[Path]) -> int:
    total = sum(f.stat().st_size for f in files)
    return min(DEFAULT_PARTITION_BYTES, max(AUTO_MIN_BYTES, -(-total // AUTO_PARTITIONS)))


class AlmWindows(AlmParameters, luigi.Task):
    """The main job: every final output in ``--output-dir``, in input order.

    Downstream tasks (e.g. Shar export) use ``final_dir``, ``cuts_path`` and ``job_key``
    (which identifies the inputs and parameters the outputs were made from).
    """

    manifest_path = luigi.Parameter(
        default="", description="Manifest file or directory (default: the bundled sample conversations)."
    )
    output_dir = luigi.Parameter(default="alm_output", description="Where the outputs go.")
    partition_bytes = luigi.IntParameter(
        default=0, significant=False, description="Target input bytes per partition task (0: automatic)."
    )

    @property
    def final_dir(self) -> Path:
        return Path(os.path.abspath(self.output_dir))

    @property
    def cuts_path(self) -> Path:
        return self.final_dir / FINAL_NAMES["cuts_windows.jsonl.gz"]

    @cached_property
    def _inputs(self) -> tuple[str, list[Path], str]:
        """(manifest path, files, listing key), computed once per process."""
        if self.manifest_path:
            manifest = os.path.abspath(self.manifest_path)
        else:
            _ensure_writable(self.final_dir)
            manifest = str(materialize_sample(self.final_dir / SAMPLE_DIR))
        files = discover_manifests(manifest)
        return manifest, files, key_of([manifest, [str(f) for f in files], listing_fingerprint(files)])

    @property
    def job_key(self) -> str:
        _, _, listing_key = self._inputs
        return key_of([listing_key, self.results_digest()])

    def discovery(self) -> AlmDiscover:
        manifest, files, listing_key = self._inputs
        return AlmDiscover(
            manifest_path=manifest,
            work_dir=str(self.final_dir / WORK_DIR),
            listing_key=listing_key,
            partition_bytes=self.partition_bytes or _auto_partition_bytes(files),
        )

    @cached_property
    def _parts(self) -> list[AlmPart]:
        _ensure_writable(self.final_dir)
        discovery = self.discovery()
        plan = discovery.plan()
        wcfg, ocfg = self.window_config(), self.overlap_config()
        base = [FORMAT_VERSION, wcfg.to_dict(), ocfg.to_dict(), self.on_error]
        convert_base = [FORMAT_VERSION, "convert", self.on_error, self.sort_segments]
        parts = []
        for index, slices in enumerate(plan["partitions"]):
            stats = [plan["stats"][p] for p in sorted({sl["path"] for sl in slices})]
            parts.append(
                AlmPart(
                    manifest_path=discovery.manifest_path,
                    work_dir=discovery.work_dir,
                    listing_key=discovery.listing_key,
                    partition_bytes=discovery.partition_bytes,
                    index=index,
                    part_key=key_of(base + [slices, stats]),
                    convert_key=key_of(convert_base + [slices, stats]),
                    staging_key=self.job_key,
                    count=len(plan["partitions"]),
                    **self.processing_params(),
                )
            )
        return parts

    def requires(self) -> dict[str, Any]:
        """Per partition, its windows; where its conversion is missing too, the conversion
        task alone, which builds both in one pass (no window task to schedule and fork)."""
        parts = [part if part.requires().complete() else part.requires() for part in self._parts]
        return {"discovery": self.discovery(), "parts": parts}

    def output(self) -> dict[str, luigi.LocalTarget]:
        targets = {name.split(".")[0]: luigi.LocalTarget(str(self.final_dir / final)) for name, final in FINAL_NAMES.items()}
        targets["summary"] = luigi.LocalTarget(str(self.final_dir / SUMMARY))
        return targets

    def complete(self) -> bool:
        """Outputs exist and were made from these inputs and parameters."""
        try:
            key = self.job_key
        except (ValueError, PipelineError) as exc:  # bad input path or parameter: say it plainly
            print(f"ERROR: {exc}", file=sys.stderr)
            raise
        if read_marker(self.final_dir).get("job_key") != key:
            return False
        return all(os.path.exists(t.path) for t in self.output().values())

    def run(self) -> None:
        out = self.final_dir
        with dir_lock(out / LOCK):
            if self.complete():
                logger.info("outputs in %s were completed by a concurrent run", out)
                return
            self._merge(out)

    def _merge(self, out: Path) -> None:
        discovery = self.discovery()
        plan = discovery.plan()
        dirs = [Path(p.output().path) for p in self._parts]
        converted = [Path(p.requires().output().path) for p in self._parts]
        missing = [d for d in dirs + converted if not (d / PART_WALL).exists()]
        if missing:
            raise PipelineError(f"partition outputs vanished (a concurrent run into {out}?): {missing[0]}; run again")
        (out / MARKER).unlink(missing_ok=True)
        _remove_stale_temps(out)
        started = time.perf_counter()
        try:
            staged = [(p.part_key, d / COMPAT_PART) for p, d in zip(self._parts, dirs)]
            staging_of(discovery.work_dir, self.job_key).merge(staged, out / FINAL_NAMES[COMPAT_PART])
            names = [name for name in FINAL_NAMES if name != COMPAT_PART]
            totals = merge_parts(dirs, out, names, convert_dirs=converted)
            walls = [orjson.loads((d / PART_WALL).read_bytes())["wall_s"] for d in dirs + converted]
            summary = build_summary(totals, plan, self.parameters_record(), walls, time.perf_counter() - started)
            write_atomic(out / SUMMARY, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
            marker = {"job_key": self.job_key, "parameters": self.parameters_record(), "parts": [p.part_key for p in self._parts]}
            write_atomic(out / MARKER, orjson.dumps(marker))
        except OSError as exc:
            _remove_final_outputs(out)
            raise PipelineError(f"writing the final outputs into {out} failed, none were kept: {exc}") from exc
        for d in dirs:
            remove_tree(d)
        _remove_unused_conversions(converted)
        for stage in ("parts", "convert"):
            _remove_dead_temps(Path(discovery.work_dir) / stage)
        remove_tree(Path(discovery.work_dir) / STAGING)
        print(end_of_run_block(summary, out), flush=True)


def _remove_final_outputs(out: Path) -> None:
    for name in [*FINAL_NAMES.values(), SUMMARY, MARKER]:
        (out / name).unlink(missing_ok=True)
    _remove_stale_temps(out)


def _remove_stale_temps(out: Path) -> None:
    """Temp files of final outputs left by a killed merge (only merges hold the lock)."""
    for directory in (out, out / "lhotse"):
        if directory.is_dir():
            for tmp in directory.glob(".*.tmp-*"):
                tmp.unlink(missing_ok=True)


def _remove_unused_conversions(kept: list[Path]) -> None:
    """Conversion parts of other inputs or parameters (stale ones are never reused, their
    keys differ); only the current outputs' conversions stay, to be reused."""
    if not kept:
        return
    keep = {d.name for d in kept}
    for d in kept[0].parent.iterdir():
        if not d.name.startswith(".") and d.name not in keep:
            remove_tree(d)


def _pid_alive(pid: int) -> bool:
    """Whether a process still runs; a zombie (killed, not yet reaped, which happens when
    an init process does not reap orphans) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _remove_dead_temps(parts: Path) -> None:
    """Partition temp directories of killed processes on this host."""
    host = socket.gethostname()
    if not parts.is_dir():
        return
    for tmp in parts.glob(f".*.tmp-{host}-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            remove_tree(tmp)


@_PartitionTask.event_handler(luigi.Event.FAILURE)
def _report_failure(task: _PartitionTask, exc: BaseException) -> None:
    """One plain line naming file, line, field and reason, besides luigi's traceback."""
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


__all__ = ["AlmConvert", "AlmDiscover", "AlmPart", "AlmWindows", "PipelineError"]
