"""Luigi tasks of the Shar export: the kept windows of ``AlmWindows`` with their audio.

    luigi --module luigi_tasks AlmShar --output-dir out --workers 2 --local-scheduler

``AlmSharPlan`` assigns the windows to shards of about ``--shard-duration`` seconds of
audio; ``AlmSharGroup`` tasks (``--shar-groups`` of them, shard ``k`` in group ``k mod
groups``) write the shards, so luigi spreads them over ``--workers`` and over the
workers of several machines sharing one luigid; ``AlmShar`` requires every group and
writes the rejects and the summary last. All of them are known when the run is
scheduled, so every worker that schedules ``AlmShar`` can take any group.

The shards go to ``OUTPUT_DIR/shar-<key>/`` (``key`` hashes the upstream job and the
export options, so a changed input or option never reuses stale shards) unless
``--shar-dir`` names a directory; the export's bookkeeping goes beside it in
``<shar dir>.export/``. Each shard is written under a temp name, renamed into place and
then marked done, so a killed export resumes shard by shard (see ``alm_lhotse.shar``).
With a URL shard directory (a URL ``--output-dir`` or ``--shar-dir``) every file of the
export, the tasks' targets included, is an object in the bucket: a shard is written in a
local temp directory and uploaded object by object before its done marker, so workers
need to share only luigid and the bucket. The audio sources may be URLs too.
"""

from __future__ import annotations

import sys
from functools import cached_property
from typing import Any

import luigi
import orjson
from luigi.util import inherits

from alm_lhotse import objects
from alm_lhotse.fs import Location, is_url, join, location
from alm_lhotse.params import INTEGER, Param
from alm_lhotse.shar import (
    SUMMARY,
    check_writable,
    end_of_export_block,
    finish_export,
    nothing_written_warning,
    prepare_export,
    state_dir_for,
)
from alm_lhotse.shar_options import SHAR_PARAMS, SharOptions
from alm_lhotse.shar_plan import PLAN, read_plan, shards_of_group
from alm_lhotse.shar_write import read_done, write_shard
from alm_lhotse.storage import key_of
from luigi_tasks.bucket import StorageOptions, location_target
from luigi_tasks.merge import AlmWindows
from luigi_tasks.parameters import AlmParameters, DeclaredParameter, reported
from luigi_tasks.shar_report import ShardProgress, report_failures

GROUPS_DIR = "groups"
SHAR_GROUPS = Param(
    INTEGER, 8, "Group tasks the shards are spread over (shard k in group k mod this); luigi runs "
    "groups in parallel on its workers. Does not change the shards.", low=1, name="shar_groups",
)  # fmt: skip


def _with_shar_parameters(cls: type) -> type:
    """One luigi parameter per declaration in ``alm_lhotse.shar_options`` (and the group count)."""
    for spec, extra in [*((p, {}) for p in SHAR_PARAMS), (SHAR_GROUPS, {"significant": False})]:
        parameter = DeclaredParameter(spec, **extra)
        parameter.__set_name__(cls, spec.name)
        setattr(cls, spec.name, parameter)
    return cls


@inherits(AlmWindows)
@_with_shar_parameters
class AlmSharBase(StorageOptions, AlmParameters, luigi.Task):
    """Every parameter of ``AlmWindows`` and of the export, checked when the task is made
    (before any work: one ``ERROR:`` line and exit 35 on the command line)."""

    shar_dir = luigi.Parameter(default="", description="Shard directory (default: OUTPUT_DIR/shar-<key>).")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        with reported():
            self.options = SharOptions(**{p.name: getattr(self, p.name) for p in SHAR_PARAMS})

    @cached_property
    def _windows(self) -> AlmWindows:
        return self.clone(AlmWindows)

    @cached_property
    def shar_path(self) -> Location:
        """An absolute ``Path``, or a URL (``str``) for object storage."""
        if self.shar_dir:
            return location(self.shar_dir)
        return join(self._windows.final_dir, f"shar-{key_of([self._windows.job_key, self.options.to_dict()], 12)}")

    @property
    def state_dir(self) -> Location:
        return state_dir_for(self.shar_path)


class AlmSharPlan(AlmSharBase):
    """The windows of ``AlmWindows`` assigned to shards, each shard's windows in its input file."""

    def requires(self) -> AlmWindows:
        return self._windows

    def output(self) -> luigi.Target:
        return location_target(join(self.state_dir, PLAN))

    def run(self) -> None:
        prepare_export(self._windows.cuts_path, self.shar_path, self.options, identity={"job": self._windows.job_key})


class AlmSharGroup(AlmSharBase):
    """The shards ``group``, ``group + shar_groups``, ... written one after the other;
    shards already marked done (by an interrupted run) are kept."""

    group = luigi.IntParameter(description="Which group of shards.")

    def requires(self) -> AlmSharPlan:
        return self.clone(AlmSharPlan)

    @property
    def record(self) -> Location:
        return join(self.state_dir, GROUPS_DIR, f"{self.shar_groups}-{self.group:06d}.json")

    def output(self) -> luigi.Target:
        return location_target(self.record)

    def run(self) -> None:
        plan = read_plan(self.state_dir)
        assert plan is not None, "AlmSharPlan is complete"
        shards = shards_of_group(plan, self.group, self.shar_groups)
        todo = [index for index in shards if read_done(self.state_dir, index) is None]
        with ShardProgress(self, sum(plan["shards"][index][0] for index in todo)) as progress:
            for index in todo:
                write_shard(self.state_dir, self.shar_path, index, self.options, progress=progress)
        objects.write_bytes(self.record, orjson.dumps({"shards": list(shards)}))


class AlmShar(AlmSharBase):
    """Export the windows of ``AlmWindows`` (same parameters) with their audio as Shar."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """A URL ``--shar-dir`` is probed here (``AlmWindows`` probes ``--output-dir``)."""
        super().__init__(*args, **kwargs)
        if is_url(self.shar_dir):
            with reported():
                check_writable(str(self.state_dir))

    def requires(self) -> list[AlmSharGroup]:
        return [self.clone(AlmSharGroup, group=group) for group in range(self.shar_groups)]

    def output(self) -> luigi.Target:
        return location_target(join(self.state_dir, SUMMARY))

    def run(self) -> None:
        summary = finish_export(self.shar_path)
        print(end_of_export_block(summary), flush=True)
        warning = nothing_written_warning(summary, no_windows="AlmWindows kept no windows")
        if warning:
            print(warning, file=sys.stderr, flush=True)


report_failures(AlmSharBase)
