"""``AlmPart``: one partition, read once, with two outputs.

- **conversion**: the partition's Lhotse recordings and supervisions and its rejected
  lines. Keyed by its slices, file stats, ``on_error`` and ``sort_segments`` only, so a
  run with other window or overlap parameters finds it done and reuses it.
- **windows**: the partition's windows, filtered, as its slot in the job's staged
  compatible JSONL and window cuts (``luigi_tasks.staging``), and its counts. Keyed by
  everything, the job included.

``run`` writes whichever output is missing in one pass over the lines: both on a first
run, the windows alone after a window-parameter change. Each output is a directory
written under a temp name and renamed into place, so ``complete()`` (both outputs exist)
never sees half a checkpoint. With a URL output directory both are uploaded from a
local temp directory as objects, ``task.json`` last, and the windows stay in their
checkpoint (no staging: ``luigi_tasks.bucket``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import luigi
import orjson
from luigi.util import inherits

from alm_lhotse import objects
from alm_lhotse.execution.loop import run_partition
from alm_lhotse.execution.partitions import FileSlice, slice_lines
from alm_lhotse.fs import Location, is_url, join, location
from alm_lhotse.outputs.streams import CONVERT_STREAMS, WINDOW_STREAMS
from alm_lhotse.storage import key_of, publish_dir, remove_tree, temp_name
from luigi_tasks.discovery import AlmDiscover
from luigi_tasks.layout import CONVERT, PART_WALL, PARTS, STAGING, work_dir
from luigi_tasks.parameters import FORMAT_VERSION, AlmParameters
from luigi_tasks.progress import Progress
from luigi_tasks.staging import Staging

STREAMS_OF = {"conversion": CONVERT_STREAMS, "windows": WINDOW_STREAMS}


def job_key_of(listing_key: str, params: AlmParameters) -> str:
    """The inputs and the parameters that change results: what final outputs are made from."""
    return key_of([listing_key, params.results_digest()])


class Checkpoint(luigi.Target):
    """A directory renamed into place whole, or a prefix of objects uploaded one by one;
    ``task.json`` is its last file."""

    def __init__(self, path: Location) -> None:
        self.path = path

    def exists(self) -> bool:
        return objects.exists(join(self.path, PART_WALL))

    def __str__(self) -> str:
        return str(self.path)


class StagedWindows(Checkpoint):
    """A partition's windows: its directory (counts; part files until placed) and its slot
    in the job's staging, which holds the part files once they are placed."""

    def __init__(self, path: Location, staging: Staging, position: int, key: str) -> None:
        super().__init__(path)
        self.staging = staging
        self.position = position
        self.key = key

    def exists(self) -> bool:
        if not super().exists():
            return False
        if is_url(self.path):  # part objects stay in their checkpoint
            return True
        waiting = all((self.path / name).exists() for name in self.staging.streams)
        return waiting or self.staging.holds(self.position, self.key)


@inherits(AlmDiscover)
class AlmPart(AlmParameters, luigi.Task):
    """One partition's conversion and windows (see the module docstring)."""

    index = luigi.IntParameter(description="Partition number in the plan.")
    count = luigi.IntParameter(significant=False, default=0, description="Number of partitions (for progress).")

    @property
    def priority(self) -> int:
        """Partitions run in order, so each tends to find the earlier ones placed in the
        staging when it finishes (luigi runs higher priorities first)."""
        return 1_000_000 - self.index

    def requires(self) -> AlmDiscover:
        return self.clone(AlmDiscover)

    def slices(self) -> list[FileSlice]:
        return [FileSlice(**sl) for sl in self._plan["partitions"][self.index]]

    @cached_property
    def _plan(self) -> dict[str, Any]:
        return self.requires().plan()

    @cached_property
    def _keys(self) -> dict[str, str]:
        """Content keys of the two outputs and of the job's staging."""
        slices = self._plan["partitions"][self.index]
        stats = [self._plan["stats"][p] for p in sorted({sl["path"] for sl in slices})]
        discovery = self.requires()
        staging = key_of([job_key_of(discovery.listing_key, self), discovery.resolved_bytes])
        wcfg, ocfg = self.window_config(), self.overlap_config()
        return {
            "conversion": key_of([FORMAT_VERSION, "convert", self.on_error, self.sort_segments, slices, stats]),
            "windows": key_of([FORMAT_VERSION, wcfg.to_dict(), ocfg.to_dict(), self.on_error, slices, stats, staging]),
            "staging": staging,
        }

    def staging(self) -> Staging:
        return Staging(Path(join(work_dir(location(self.output_dir)), STAGING, self._keys["staging"])))

    def output(self) -> dict[str, Checkpoint]:
        work = work_dir(location(self.output_dir))
        key = self._keys["windows"]
        return {
            "conversion": Checkpoint(join(work, CONVERT, self._keys["conversion"])),
            "windows": StagedWindows(join(work, PARTS, key), self.staging(), self.index, key),
        }

    def run(self) -> None:
        todo = {name: target for name, target in self.output().items() if not target.exists()}
        if todo:
            self._write(todo)

    def _write(self, todo: dict[str, Checkpoint]) -> None:
        """One pass over the slices into a temp directory per missing output; the
        conversion is published, the windows are settled in the staging."""
        remote = is_url(self.output_dir)
        scratch = Path(tempfile.mkdtemp(prefix="alm-part-")) if remote else None
        temps = {name: scratch / name if scratch else temp_name(target.path) for name, target in todo.items()}
        for tmp in temps.values():
            remove_tree(tmp)
        started = time.perf_counter()
        slices = self.slices()
        progress = Progress(self, estimate_entries(slices))
        try:
            run_partition(
                slices, self.window_config(), self.overlap_config(),
                {temps[name]: STREAMS_OF[name] for name in todo},
                on_error=self.on_error, progress=progress,
            )
            # Each checkpoint records its share of the pass, so the summary's total is its wall time.
            wall = orjson.dumps({"wall_s": (time.perf_counter() - started) / len(temps)})
            for tmp in temps.values():
                (tmp / PART_WALL).write_bytes(wall)
            progress.close()
            if remote:
                for name, tmp in temps.items():
                    objects.upload_checkpoint(tmp, str(todo[name].path), PART_WALL)
                return
            if "conversion" in todo:
                publish_dir(temps["conversion"], todo["conversion"].path)
            if "windows" in todo:
                self._settle(temps["windows"], todo["windows"])
        except BaseException:
            progress.close()
            for tmp in temps.values():
                remove_tree(tmp)
            raise
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    def _settle(self, tmp: Path, target: Checkpoint) -> None:
        """Place the part files in the staging (or leave them waiting for their turn) and
        publish the directory, under the staging lock. A valid directory of a concurrent
        run wins; an invalid one (its part files gone unplaced) is replaced."""
        staging = self.staging()
        with staging.settle(self.index, self._keys["windows"], tmp, target.path):
            publish_dir(tmp, target.path, replace=not target.exists())


def estimate_entries(slices: list[FileSlice]) -> Optional[int]:
    """Lines in the slices (plain files only; a gzip slice's count is unknown)."""
    counts = [slice_lines(sl) for sl in slices]
    return None if None in counts else sum(counts)
