"""The per-entry loop and the pipeline's partition unit: read -> validate -> windows ->
overlap -> write, entry by entry, so memory does not grow with input size.

``run_partition`` writes part files that ``merge_parts`` concatenates, in partition order,
into the final outputs. Part files are deterministic (gzip members carry no timestamp),
so a resumed run produces byte-identical results.

Nothing per entry is kept: each entry's filtered duration, which the grand total sums in
input order, is written out a block at a time (``Durations``) and read back lazily.
"""

from __future__ import annotations

import sys
import time
from array import array
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import orjson

from alm_lhotse.config import ON_ERROR, OverlapConfig, WindowConfig
from alm_lhotse.core.entry import EntryResult, process_entry, segment_order
from alm_lhotse.core.windows import ordered_segments
from alm_lhotse.errors import InvalidEntry, ManifestError
from alm_lhotse.execution.partitions import FileSlice, iter_slice_lines
from alm_lhotse.outputs.registry import WINDOWS, ProcessedEntry
from alm_lhotse.outputs.streams import (
    CONVERT_STREAMS,
    FINAL_NAMES,
    SUMMARY_PART,
    WINDOW_STREAMS,
    Sinks,
)
from alm_lhotse.reading.reader import EntryHook, ManifestLine, parse_entry
from alm_lhotse.report.tally import add_entry, merge_breakdowns, new_breakdown
from alm_lhotse.storage import concatenate, publish, temp_name

# A partition's filtered durations, one little-endian double per entry, next to its counts.
DURATIONS_PART = "filtered_durs.f64"


class Durations:
    """Each entry's filtered duration, in input order, handed to ``target`` as
    little-endian doubles ``BLOCK`` at a time. The grand total must be ``sum()`` over
    every entry in input order, as the reference sums (adding partition totals would
    round differently), so the values are needed at the end; held in a list they made
    memory grow with the input."""

    BLOCK = 8192

    def __init__(self, target: Optional[IO[bytes]]) -> None:
        self.target = target
        self.values = array("d")

    def add(self, value: float) -> None:
        self.values.append(value)
        if len(self.values) >= self.BLOCK:
            self.flush()

    def flush(self) -> None:
        if self.target is not None and self.values:
            if sys.byteorder == "big":
                self.values.byteswap()
            self.target.write(self.values.tobytes())
        self.values = array("d")


def decode_durations(block: bytes) -> array:
    """Values as ``Durations`` wrote them (little-endian doubles)."""
    values = array("d", block)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def read_durations(paths: Iterable[Path]) -> Iterator[float]:
    """The values ``Durations`` wrote into ``paths``, in order, read a block at a time."""
    for path in paths:
        with open(path, "rb") as f:
            while block := f.read(Durations.BLOCK * 8):
                yield from decode_durations(block)


@dataclass
class Counts:
    """Totals of a partition (the filtered durations go to a ``Durations``)."""

    entries: int = 0
    windows: int = 0
    filtered_windows: int = 0
    truncation_events: int = 0
    rejected: int = 0
    low_sample_rate_entries: int = 0
    unsorted_entries: int = 0
    overlapping_segment_entries: int = 0
    duplicate_window_entries: int = 0
    breakdown: dict = field(default_factory=new_breakdown)
    timings: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def process_slices(
    slices: Sequence[FileSlice],
    wcfg: WindowConfig,
    ocfg: OverlapConfig,
    out: Sinks,
    on_error: str = "fail",
    lhotse: bool = True,
    progress: Optional[Callable[[int], Any]] = None,
    prepare: Optional[EntryHook] = None,
    durations: Optional[IO[bytes]] = None,
) -> Counts:
    """The per-entry loop: read, validate, build, filter, hand each entry to the outputs
    in ``out`` (without ``lhotse``, not to the Lhotse manifests) and its filtered
    duration to ``durations`` (see ``Durations``).

    With ``on_error="fail"`` the first bad line raises ManifestError (naming file, line
    and field); with ``"skip"`` it is handed to the outputs that keep rejects and counted.
    ``progress`` is called with 1 per entry; ``prepare`` is the reader's entry hook.
    """
    ON_ERROR.check(on_error)
    # A pass without outputs of the windows stage (conversion only) never builds windows.
    windows_wanted = any(o.stage == WINDOWS for o, _ in out.targets)
    active = [(o, target) for o, target in out.targets if lhotse or not o.lhotse]
    writers = [(o.write, target) for o, target in active if o.write is not None]
    wanted = frozenset(o.name for o, _ in active)
    counts = Counts()
    durs = Durations(durations)
    t_parse = t_core = t_write = 0.0
    clock = time.perf_counter
    for sl in slices:
        for line in iter_slice_lines(sl):
            t0 = clock()
            try:
                entry = parse_entry(line.raw, prepare)
            except InvalidEntry as exc:
                _reject(line, exc, on_error, active)
                counts.rejected += 1
                continue
            t1 = clock()
            if windows_wanted:
                result: Optional[EntryResult] = process_entry(entry, wcfg, ocfg, validate=False)
                segments = result.built.segments
            else:
                result = None
                segments = ordered_segments(entry, wcfg)
            t2 = clock()
            processed = ProcessedEntry(entry, f"{sl.origin}:{line.line}", segments, result, wcfg, wanted)
            for write, target in writers:
                write(target, processed)
            _count(counts, entry, result)
            if result is not None:
                durs.add(result.filtered_dur)
            t3 = clock()
            t_parse += t1 - t0
            t_core += t2 - t1
            t_write += t3 - t2
            if progress is not None:
                progress(1)
    durs.flush()
    counts.timings = {"read_parse_s": t_parse, "windows_overlap_s": t_core, "write_s": t_write}
    return counts


def _reject(line: ManifestLine, error: InvalidEntry, on_error: str, active: list) -> None:
    """Raise for ``on_error="fail"``, else hand the bad line to the outputs that keep rejects."""
    if on_error == "fail":
        raise ManifestError(line.source, line.line, error.field, error.reason) from None
    for o, target in active:
        if o.reject is not None:
            o.reject(target, line, error)


def _count(counts: Counts, entry: dict[str, Any], result: Optional[EntryResult]) -> None:
    """Add an entry to the totals (its windows only where they were built)."""
    if result is not None:
        built = result.built
        counts.windows += len(built.windows)
        counts.filtered_windows += sum(result.kept)
        counts.truncation_events += built.truncation_events
        counts.low_sample_rate_entries += built.low_sample_rate
        counts.duplicate_window_entries += len(set(result.spans)) < len(result.spans)
        add_entry(counts.breakdown, entry, result)
    counts.entries += 1
    unsorted, overlapping = segment_order(entry["segments"])
    counts.unsorted_entries += unsorted
    counts.overlapping_segment_entries += overlapping


def run_partition(
    slices: Sequence[FileSlice],
    wcfg: WindowConfig,
    ocfg: OverlapConfig,
    directories: Mapping[Path, Sequence[str]],
    on_error: str = "fail",
    progress: Optional[Callable[[int], Any]] = None,
    prepare: Optional[EntryHook] = None,
) -> Counts:
    """Process ``slices`` in one pass into part files for ``merge_parts``: each directory
    gets the part files of its streams and the partition's counts (``summary.json``), a
    directory of window streams also the filtered durations (``DURATIONS_PART``).
    The pipeline's checkpointed unit of work: its conversion and its windows are separate
    checkpoints, which one pass can write together."""
    targets: dict[str, IO[bytes]] = {}
    for directory, names in directories.items():
        directory.mkdir(parents=True, exist_ok=True)
        targets.update((name, open(directory / name, "wb", buffering=1 << 20)) for name in names)
    out = Sinks(targets)
    windows_dir = next((d for d, names in directories.items() if set(names) & set(WINDOW_STREAMS)), None)
    try:
        with open(windows_dir / DURATIONS_PART, "wb") if windows_dir else nullcontext() as durations:
            counts = process_slices(slices, wcfg, ocfg, out, on_error, True, progress, prepare, durations)
    finally:
        out.close()
    summary = orjson.dumps(counts.to_dict())
    for directory in directories:
        (directory / SUMMARY_PART).write_bytes(summary)
    return counts


def merge_counts(parts: Iterable[Counts], durations: Iterable[float]) -> dict[str, Any]:
    """Grand totals, ``filtered_dur`` summed over every entry's ``durations`` in input
    order. ``parts`` and ``durations`` are consumed one item at a time."""
    total: dict[str, Any] = {}
    timings: dict[str, float] = {}
    breakdowns = []
    for c in parts:
        for k, v in c.to_dict().items():
            if k == "breakdown":
                breakdowns.append(v)
            elif k == "timings":
                for tk, tv in v.items():
                    timings[tk] = timings.get(tk, 0.0) + tv
            else:
                total[k] = total.get(k, 0) + v
    total["filtered_dur"] = sum(durations)
    total["breakdown"] = merge_breakdowns(breakdowns)
    total["timings"] = timings
    return total


def load_counts(directory: Path) -> Counts:
    data = orjson.loads((directory / SUMMARY_PART).read_bytes())
    return Counts(**data)


def merge_parts(
    part_dirs: Sequence[Path], output_dir: Path, names: Sequence[str], convert_dirs: Optional[Sequence[Path]] = None
) -> dict[str, Any]:
    """Concatenate the part files of streams ``names`` into the final outputs, each
    written to a temp name and renamed, so a killed merge never leaves a final file that
    looks complete; returns the grand totals.

    With ``convert_dirs`` the ``CONVERT_STREAMS`` come from there (the pipeline's
    conversion parts, one per partition), everything else and the counts from ``part_dirs``."""
    for name in names:
        final = output_dir / FINAL_NAMES[name]
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(final)
        sources = convert_dirs if convert_dirs is not None and name in CONVERT_STREAMS else part_dirs
        with open(tmp, "wb") as target:
            concatenate([d / name for d in sources], target)
        publish(tmp, final)
    return merge_counts((load_counts(d) for d in part_dirs), read_durations(d / DURATIONS_PART for d in part_dirs))
