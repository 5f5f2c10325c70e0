"""Which windows go into which shard, and which shards into which group task.

Shard assignment is a pure function of the windows in output order: consecutive windows
go into one shard until their audio reaches ``shard_duration`` seconds (or ``shard_size``
windows, when set). So the same windows always give the same shards, however many
workers write them and however often the export is interrupted. Shard ``k`` belongs to
group ``k mod groups``; the group count only decides how the work is spread over
luigi tasks, never the bytes.

Planning streams the windows once (a local file, or an object through
``alm_lhotse.fs.open_url`` in bounded blocks) and writes each shard's cut lines to its own
input file in the export's state directory (a file, or an object beside the shards), so a
shard writer (any process, any machine that reaches the directory or the bucket) reads
just its own windows; memory stays flat at any input size.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, Optional, Union

import orjson

from alm_lhotse import objects
from alm_lhotse.fs import Location, join, open_url
from alm_lhotse.reading.reader import open_manifest
from alm_lhotse.shar_options import SharOptions

PLAN = "plan.json"
INPUT_DIR = "input"
Pathlike = Union[str, os.PathLike]


def tuples_as_lists(value: Any) -> Any:
    """orjson default: Lhotse's ``to_dict`` leaves alignment items as named tuples."""
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def cut_lines(cuts: Union[Pathlike, Iterable[Any]]) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """(JSON line, parsed cut) of each window: a manifest path or URL (plain or gzipped
    JSON lines), a CutSet or cut dicts."""
    if isinstance(cuts, (str, os.PathLike)):
        with open_manifest(cuts) as lines:
            for line in lines:
                if line.strip():
                    yield line.rstrip(b"\r\n"), orjson.loads(line)
        return
    for cut in cuts:
        data = cut if isinstance(cut, dict) else cut.to_dict()
        yield orjson.dumps(data, default=tuples_as_lists), data


def input_path(state: Location, index: int) -> Location:
    return join(state, INPUT_DIR, f"{index:06d}.jsonl")


class _ShardBuilder:
    """Consecutive windows into shards by duration (and count), each to its input file."""

    def __init__(self, state: Location, options: SharOptions) -> None:
        self.state = state
        self.options = options
        self.shards: list[list[float]] = []  # [windows, seconds] per shard
        self.pending: list[bytes] = []
        self.seconds = 0.0

    def add(self, line: bytes, duration: float) -> None:
        self.pending.append(line)
        self.seconds += duration
        full = self.options.shard_size and len(self.pending) >= self.options.shard_size
        if self.seconds >= self.options.shard_duration or full:
            self.close()

    def close(self) -> None:
        if not self.pending:
            return
        index = len(self.shards)
        objects.write_bytes(input_path(self.state, index), b"\n".join(self.pending) + b"\n")
        self.shards.append([len(self.pending), self.seconds])
        self.pending, self.seconds = [], 0.0


def plan_shards(cuts: Union[Pathlike, Iterable[Any]], state: Location, options: SharOptions) -> dict[str, Any]:
    """Write every shard's input file, then the plan (last: it marks planning as done)."""
    builder = _ShardBuilder(state, options)
    for line, cut in cut_lines(cuts):
        builder.add(line, float(cut["duration"]))
    builder.close()
    plan = {
        "shards": builder.shards,
        "windows": sum(count for count, _ in builder.shards),
        "seconds": sum(seconds for _, seconds in builder.shards),
    }
    objects.write_bytes(join(state, PLAN), orjson.dumps(plan))
    return plan


def read_plan(state: Location) -> Optional[dict[str, Any]]:
    try:
        return orjson.loads(objects.read_bytes(join(state, PLAN)))
    except FileNotFoundError:
        return None


def shards_of_group(plan: dict[str, Any], group: int, groups: int) -> range:
    return range(group, len(plan["shards"]), groups)


def read_inputs(state: Location, index: int) -> Iterator[dict[str, Any]]:
    """The windows of shard ``index``, in order."""
    with open_url(input_path(state, index)) as lines:
        for line in lines:
            yield orjson.loads(line)
