"""``AlmDiscover``: find the manifest files and plan the partitions."""

from __future__ import annotations

import time
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

import luigi
import orjson

from alm_lhotse import objects
from alm_lhotse.execution.partitions import DEFAULT_PARTITION_BYTES, plan_partitions
from alm_lhotse.fs import join, location
from alm_lhotse.reading.discovery import discover_manifests, listing_fingerprint
from alm_lhotse.storage import key_of
from luigi_tasks.bucket import LocationTarget, StorageOptions
from luigi_tasks.layout import DISCOVERY, work_dir
from luigi_tasks.parameters import FORMAT_VERSION, PARTITION_BYTES, DeclaredParameter

# Auto partition size: about this many partitions for mid-sized inputs, so two or more
# workers stay busy on one large file, within these bounds (the plan makes at most
# MAX_PARTITIONS partitions). Fewer would leave a worker idle at the end; more cost a
# process per task (16 measured 0.2 s slower than 8 on 10,000 entries).
AUTO_PARTITIONS = 8
AUTO_MIN_BYTES = 1 << 20


def auto_partition_bytes(files: list[Path]) -> int:
    total = sum(f.stat().st_size for f in files)
    return min(DEFAULT_PARTITION_BYTES, max(AUTO_MIN_BYTES, -(-total // AUTO_PARTITIONS)))


def listing(manifest_path: str, output_dir: str) -> tuple[list[Path], str]:
    """The manifest files under an absolute path (never inside the output directory, so a
    run does not read its own outputs back), and a key of the path and the listing (names,
    sizes, mtimes): a changed or added file gives another key."""
    files = discover_manifests(manifest_path, exclude=[output_dir])
    return files, key_of([manifest_path, [str(f) for f in files], listing_fingerprint(files)])


class AlmDiscover(StorageOptions, luigi.Task):
    """The partition plan of the manifests under ``manifest_path``.

    The plan decides how many partition tasks exist, so the scheduler needs it while
    building the graph: ``plan()`` computes it then (once per process) and checkpoints it
    as this task's output, keyed by the input listing, so a run with other window
    parameters, or a no-op re-run, reuses it.
    """

    manifest_path = luigi.Parameter(description="Absolute manifest file or directory, or a URL.")
    output_dir = luigi.Parameter(description="Absolute output directory, or a URL.")
    partition_bytes = DeclaredParameter(PARTITION_BYTES)

    @cached_property
    def _listing(self) -> tuple[list[Path], str]:
        return listing(self.manifest_path, self.output_dir)

    @property
    def listing_key(self) -> str:
        return self._listing[1]

    @property
    def resolved_bytes(self) -> int:
        return self.partition_bytes or auto_partition_bytes(self._listing[0])

    def output(self) -> LocationTarget:
        name = f"{self.listing_key}-{self.resolved_bytes}.json"
        return LocationTarget(join(work_dir(location(self.output_dir)), DISCOVERY, name))

    def run(self) -> None:
        self.plan()

    @cached_property
    def _plan(self) -> dict[str, Any]:
        path = self.output().location
        try:
            return orjson.loads(objects.read_bytes(path))
        except (FileNotFoundError, orjson.JSONDecodeError):  # not planned yet, or emptied by a power loss
            pass
        started = time.perf_counter()
        files = self._listing[0]
        partitions = plan_partitions(files, self.resolved_bytes)
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
        objects.write_bytes(path, orjson.dumps(plan))
        return plan

    def plan(self) -> dict[str, Any]:
        return self._plan
