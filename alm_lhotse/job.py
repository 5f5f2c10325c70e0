"""Run partitions of input through the core and write every output of the product.

``run_job`` does a whole job in one call (the recipe, the CLI, the benchmark) and writes
the final outputs directly. ``run_partition`` is the Luigi tasks' checkpointed unit of
work: it streams its slices entry by entry (memory does not grow with input size) and
writes part files that ``merge_parts`` concatenates, in partition order, into the final
outputs. Part files are deterministic (gzip members carry no timestamp), so a resumed
run produces byte-identical results.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import orjson

try:
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    import zlib as _zlib

from alm_lhotse.compat import Piece, render_pieces
from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.errors import InvalidEntry, ManifestError, OutputError
from alm_lhotse.manifests import lhotse_lines, recording_dict, recording_id
from alm_lhotse.native import kernel
from alm_lhotse.partitions import FileSlice, iter_slice_lines
from alm_lhotse.process import process_entry
from alm_lhotse.reader import EntryHook, ManifestLine, parse_entry
from alm_lhotse.windows import ordered_segments

ON_ERROR_CHOICES = ("fail", "skip")
COMPAT_PART = "alm_output.jsonl"
RECORDINGS_PART = "recordings.jsonl.gz"
SUPERVISIONS_PART = "supervisions.jsonl.gz"
CUTS_PART = "cuts_windows.jsonl.gz"
REJECTS_PART = "rejects.jsonl"
SUMMARY_PART = "summary.json"
GZIP_LEVEL = _zlib.Z_DEFAULT_COMPRESSION  # isal accepts 0-3 only, zlib 0-9
# run_job renders chunks of about this much input in memory before writing them, and
# writes part of a chunk early once this much output is buffered (an unsplittable
# gzipped manifest is one chunk).
CHUNK_BYTES = 1 << 20
FLUSH_BYTES = 32 << 20
COMMIT_LOCK = ".alm.lock"


class GzipWriter:
    """One gzip member with a zero timestamp, so equal content gives equal bytes.

    Writes are gathered and compressed about ``batch_bytes`` at a time: the compressor
    costs noticeably more per byte on the few kilobytes one entry writes."""

    def __init__(self, target: IO[bytes], batch_bytes: int = 1 << 20) -> None:
        self._f = target
        self._z = _zlib.compressobj(GZIP_LEVEL, _zlib.DEFLATED, 31)
        self._pending: list[bytes] = []
        self._size = 0
        self._batch = batch_bytes

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)
        if self._size >= self._batch:
            self._compress()

    def _compress(self) -> None:
        self._f.write(self._z.compress(b"".join(self._pending)))
        self._pending = []
        self._size = 0

    def close(self) -> None:
        self._compress()
        self._f.write(self._z.flush())
        self._f.close()


@dataclass
class Counts:
    """Totals of a partition; ``filtered_durs`` keeps per-entry values so the grand total
    can be summed in input order with ``sum()``, exactly as the reference does."""

    entries: int = 0
    windows: int = 0
    filtered_windows: int = 0
    truncation_events: int = 0
    rejected: int = 0
    low_sample_rate_entries: int = 0
    unsorted_entries: int = 0
    overlapping_segment_entries: int = 0
    duplicate_window_entries: int = 0
    filtered_durs: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _odd_data(segments: list[dict[str, Any]]) -> tuple[bool, bool]:
    """(unsorted, overlapping) of the input segments, whatever ``sort_segments`` does:
    odd but valid shapes the reference processes as they are. Overlap is judged in start
    order, where any overlapping pair implies an overlapping neighbour pair."""
    native = kernel()
    found = native.segment_order(segments) if native is not None else None
    if found is not None:
        return found
    starts = [s["start"] for s in segments]
    unsorted = any(a > b for a, b in zip(starts, starts[1:]))
    ordered = sorted(segments, key=lambda s: s["start"]) if unsorted else segments
    overlapping = any(b["start"] < a["end"] for a, b in zip(ordered, ordered[1:]))
    return unsorted, overlapping


def reject_record(line: ManifestLine, error: InvalidEntry) -> dict[str, Any]:
    """What ``rejects.jsonl`` keeps of a bad line: where, why, and the line itself."""
    record: dict[str, Any] = {
        "source": line.source,
        "line": line.line,
        "field": error.field,
        "reason": error.reason,
    }
    try:
        record["raw"] = line.raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(line.raw).decode("ascii")
    return record


STREAMS = (COMPAT_PART, REJECTS_PART, RECORDINGS_PART, SUPERVISIONS_PART, CUTS_PART)
# The pipeline splits a partition in two checkpointed halves: conversion (depends on the
# input, ``on_error`` and ``sort_segments`` only, so it is reused when window parameters
# change) and windows (everything else).
CONVERT_STREAMS = (REJECTS_PART, RECORDINGS_PART, SUPERVISIONS_PART)
WINDOW_STREAMS = (COMPAT_PART, CUTS_PART)


class Sinks:
    """Where one run of the loop writes: a binary target per stream (gzip streams are
    compressed here); a stream absent from ``targets`` is not written."""

    def __init__(self, targets: dict[str, IO[bytes]]) -> None:
        self.compat = targets.get(COMPAT_PART)
        self.rejects = targets.get(REJECTS_PART)
        self.recordings = _gzip(targets.get(RECORDINGS_PART))
        self.supervisions = _gzip(targets.get(SUPERVISIONS_PART))
        self.cuts = _gzip(targets.get(CUTS_PART))

    def close(self) -> None:
        for w in (self.compat, self.rejects, self.recordings, self.supervisions, self.cuts):
            if w is not None:
                w.close()


def _gzip(target: Optional[IO[bytes]]) -> Optional[GzipWriter]:
    return None if target is None else GzipWriter(target)


def _line(item: dict[str, Any]) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE)


def process_slices(
    slices: Sequence[FileSlice],
    wcfg: WindowConfig,
    ocfg: OverlapConfig,
    out: Sinks,
    on_error: str = "fail",
    lhotse: bool = True,
    progress: Optional[Callable[[int], Any]] = None,
    prepare: Optional[EntryHook] = None,
) -> Counts:
    """The per-entry loop: read, validate, build, filter, write to ``out``.

    With ``on_error="fail"`` the first bad line raises ManifestError (naming file, line
    and field); with ``"skip"`` it is written to the rejects stream and counted.
    ``progress`` is called with 1 per entry; ``prepare`` is the reader's entry hook.
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    counts = Counts()
    t_parse = t_core = t_write = 0.0
    clock = time.perf_counter
    # A conversion-only pass (no compatible JSONL, no cuts) never builds windows.
    windows_wanted = out.compat is not None or out.cuts is not None
    for sl in slices:
        for line in iter_slice_lines(sl):
            t0 = clock()
            try:
                entry = parse_entry(line.raw, prepare)
            except InvalidEntry as exc:
                if on_error == "fail":
                    raise ManifestError(line.source, line.line, exc.field, exc.reason) from None
                counts.rejected += 1
                if out.rejects is not None:
                    out.rejects.write(orjson.dumps(reject_record(line, exc)) + b"\n")
                continue
            t1 = clock()
            if windows_wanted:
                result = process_entry(entry, wcfg, ocfg, validate=False)
                built = result.built
                segments = built.segments
                kept = result.kept_windows
            else:
                segments = ordered_segments(entry, wcfg)
                kept = []
            t2 = clock()
            if windows_wanted:
                if out.compat is not None:
                    out.compat.writelines(render_pieces(result, wcfg))
                    out.compat.write(b"\n")
                counts.windows += len(built.windows)
                counts.filtered_windows += len(kept)
                counts.truncation_events += built.truncation_events
                counts.filtered_durs.append(result.filtered_dur)
                counts.low_sample_rate_entries += built.low_sample_rate
                counts.duplicate_window_entries += len(set(result.spans)) < len(result.spans)
            counts.entries += 1
            unsorted, overlapping = _odd_data(entry["segments"])
            counts.unsorted_entries += unsorted
            counts.overlapping_segment_entries += overlapping
            if lhotse:
                _write_lhotse(out, entry, segments, kept, f"{sl.origin}:{line.line}")
            t3 = clock()
            t_parse += t1 - t0
            t_core += t2 - t1
            t_write += t3 - t2
            if progress is not None:
                progress(1)
    counts.timings = {"read_parse_s": t_parse, "windows_overlap_s": t_core, "write_s": t_write}
    return counts


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
    gets the part files of its streams and the partition's counts (``summary.json``).
    The pipeline's checkpointed unit of work: its conversion and its windows are separate
    checkpoints, which one pass can write together."""
    targets: dict[str, IO[bytes]] = {}
    for directory, names in directories.items():
        directory.mkdir(parents=True, exist_ok=True)
        targets.update((name, open(directory / name, "wb", buffering=1 << 20)) for name in names)
    out = Sinks(targets)
    lhotse = any(name in targets for name in (RECORDINGS_PART, SUPERVISIONS_PART, CUTS_PART))
    try:
        counts = process_slices(slices, wcfg, ocfg, out, on_error, lhotse, progress, prepare)
    finally:
        out.close()
    summary = orjson.dumps(counts.to_dict())
    for directory in directories:
        (directory / SUMMARY_PART).write_bytes(summary)
    return counts


def _write_lhotse(out: Sinks, entry: dict[str, Any], segments: list, kept: list, origin: str) -> None:
    """The entry's recording and supervisions, and its kept windows as cuts, into
    whichever of those streams ``out`` has."""
    rec_id = recording_id(entry["audio_filepath"], origin)
    rec = recording_dict(entry, rec_id)
    if out.recordings is not None:
        out.recordings.write(_line(rec))
    windows = kept if out.cuts is not None else []
    if out.supervisions is None and not windows:
        return
    sups, cuts = lhotse_lines(segments, rec, entry["audio_filepath"], windows, out.supervisions is not None)
    if out.supervisions is not None:
        out.supervisions.write(sups)
    if out.cuts is not None and cuts:
        out.cuts.write(cuts)


def concatenate(parts: Iterable[Path], target: IO[bytes]) -> None:
    """Append files to an open binary target (gzip members concatenate into valid gzip)."""
    target.flush()
    offset = target.seek(0, os.SEEK_END)
    for part in parts:
        offset += copy_file_at(part, target.fileno(), offset)
    target.seek(offset)


def copy_file_at(source: Path, fd: int, offset: int) -> int:
    """Copy a whole file into ``fd`` at ``offset``; returns its size. The kernel copies
    (``copy_file_range``) where it can, saving a trip through user space."""
    with open(source, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        copied = 0
        if hasattr(os, "copy_file_range"):
            try:
                while copied < size:
                    step = os.copy_file_range(src.fileno(), fd, size - copied, copied, offset + copied)
                    if step == 0:
                        break
                    copied += step
            except OSError:
                pass
        while copied < size:
            block = os.pread(src.fileno(), min(1 << 22, size - copied), copied)
            if not block:
                raise OSError(f"{source} shrank while being copied")
            _write_pieces(fd, [block], offset + copied)
            copied += len(block)
    return size


def publish(tmp: Path, final: Path) -> None:
    """Rename a written output into place, removing the old one first: renaming over an
    existing file makes ext4 write the new file's data to disk at once (its
    ``auto_da_alloc`` safeguard), which costs about a second per 600 MB, and the next
    fsync waits for it too. A killed process loses no page-cache data either way."""
    final.unlink(missing_ok=True)
    os.rename(tmp, final)


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file + rename: a killed process never leaves a file that looks complete. Not
    fsynced, as luigi's own targets: checkpoints survive killed processes, not a power
    loss (which can leave a renamed file empty; readers of small checkpoints redo them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def merge_counts(parts: Iterable[Counts]) -> dict[str, Any]:
    """Grand totals, ``filtered_dur`` summed over entries in input order."""
    total: dict[str, Any] = {}
    durs: list = []
    timings: dict[str, float] = {}
    for c in parts:
        for k, v in c.to_dict().items():
            if k == "filtered_durs":
                durs.extend(v)
            elif k == "timings":
                for tk, tv in v.items():
                    timings[tk] = timings.get(tk, 0.0) + tv
            else:
                total[k] = total.get(k, 0) + v
    total["filtered_dur"] = sum(durs)
    total["timings"] = timings
    return total


def load_counts(directory: Path) -> Counts:
    data = orjson.loads((directory / SUMMARY_PART).read_bytes())
    return Counts(**data)


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


FINAL_NAMES = {
    COMPAT_PART: "alm_output.jsonl",
    REJECTS_PART: "rejects.jsonl",
    RECORDINGS_PART: "lhotse/alm_recordings_all.jsonl.gz",
    SUPERVISIONS_PART: "lhotse/alm_supervisions_all.jsonl.gz",
    CUTS_PART: "lhotse/alm_cuts_windows_all.jsonl.gz",
}


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
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        sources = convert_dirs if convert_dirs is not None and name in CONVERT_STREAMS else part_dirs
        with open(tmp, "wb") as target:
            concatenate([d / name for d in sources], target)
        publish(tmp, final)
    return merge_counts(load_counts(d) for d in part_dirs)


class OrderedFiles:
    """Final output files that chunks, rendered in any process, write at their place.

    Chunk ``k`` takes its offsets once chunk ``k-1`` has taken its own, then writes with
    ``pwrite``; so workers write in parallel, nothing is copied twice, and the result is
    byte-identical to a sequential run. Files are temporary until ``commit``.
    """

    def __init__(self, output_dir: Path, names: Sequence[str], processes: int) -> None:
        self.finals = [output_dir / FINAL_NAMES[n] for n in names]
        self.temps = [f.with_name(f".{f.name}.tmp-{os.getpid()}") for f in self.finals]
        for t in self.temps:
            t.parent.mkdir(parents=True, exist_ok=True)
        self.fds = [os.open(t, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for t in self.temps]
        if processes > 1:
            import multiprocessing

            ctx = multiprocessing.get_context("fork")
            self.turn_changed = ctx.Condition()
            self.turn = ctx.RawValue("q", 0)
            self.offsets = ctx.RawArray("q", len(names))
            self.stopped = ctx.RawValue("b", 0)
        else:
            self.turn_changed = None
            self.turn = _Cell(0)
            self.offsets = [0] * len(names)
            self.stopped = _Cell(0)

    def stop(self) -> None:
        """Make every worker give up its chunk (one failed): the chunks after it would
        wait for a turn that never comes. Workers stop on their own, so none is killed
        while it holds a lock of the pool's queues (which can hang the pool)."""
        if self.turn_changed is not None:
            with self.turn_changed:
                self.stopped.value = 1
                self.turn_changed.notify_all()

    def check(self) -> None:
        if self.stopped.value:
            raise _Stopped()

    def write_chunk(self, index: int, chunks: Sequence[PieceBuffer], last: bool = True) -> None:
        """Write what chunk ``index`` rendered; a chunk may write in several parts (its
        turn passes to the next chunk with the ``last`` one), so a large chunk, such as
        a gzipped manifest that cannot be split, never holds all its output."""
        if self.turn_changed is not None:
            with self.turn_changed:
                self.turn_changed.wait_for(lambda: self.turn.value == index or self.stopped.value)
                self.check()
                places = self._claim(chunks, last)
                self.turn_changed.notify_all()
        else:
            places = self._claim(chunks, last)
        for fd, data, offset in zip(self.fds, chunks, places):
            _write_pieces(fd, data.pieces, offset)

    def _claim(self, chunks: Sequence[PieceBuffer], last: bool) -> list[int]:
        places = list(self.offsets[: len(chunks)])
        for k, data in enumerate(chunks):
            self.offsets[k] += data.size
        self.turn.value += last
        return places

    def close(self, commit: bool) -> None:
        for fd in self.fds:
            os.close(fd)
        for temp, final in zip(self.temps, self.finals):
            if commit:
                publish(temp, final)
            else:
                temp.unlink(missing_ok=True)


class _Stopped(Exception):
    """A worker's chunk given up because another chunk failed."""


class _Cell:
    """A ``.value`` holder standing in for shared memory in a single process."""

    def __init__(self, value: int) -> None:
        self.value = value


_FILES: Optional[OrderedFiles] = None


def _render_chunk(args: tuple) -> Counts:
    index, slices, wcfg, ocfg, on_error, lhotse, prepare = args
    names = STREAMS if lhotse else STREAMS[:2]
    buffers = [PieceBuffer() for _ in names]
    out = Sinks(dict(zip(names, buffers)))
    assert _FILES is not None
    files = _FILES
    files.check()

    def write_when_large(_: int) -> None:
        """After each entry: give up if another chunk failed; hand over what is buffered
        once it passes FLUSH_BYTES."""
        files.check()
        if sum(b.size for b in buffers) >= FLUSH_BYTES:
            files.write_chunk(index, buffers, last=False)
            for b in buffers:
                b.clear()

    counts = process_slices(slices, wcfg, ocfg, out, on_error, lhotse, write_when_large, prepare)
    out.close()
    files.write_chunk(index, buffers)
    return counts


def _render_in_pool(files: OrderedFiles, args: list[tuple], processes: int) -> list[Counts]:
    """``_render_chunk`` of every chunk on a pool of forked workers. When a chunk fails,
    the others stop by themselves before the error is raised; only an interrupt
    terminates the workers."""
    import multiprocessing

    pool = multiprocessing.get_context("fork").Pool(processes)
    try:
        return list(pool.imap(_render_chunk, args))
    except KeyboardInterrupt:
        pool.terminate()
        raise
    except BaseException:
        files.stop()
        raise
    finally:
        pool.close()  # nothing to do after terminate()
        pool.join()


class PieceBuffer:
    """A write target that keeps what it is given, uncopied, for one vectored write:
    rendered output arrives as many pieces (slices of per-entry buffers)."""

    def __init__(self) -> None:
        self.pieces: list[Piece] = []
        self.size = 0

    def write(self, data: Piece) -> None:
        self.pieces.append(data)
        self.size += len(data)

    def writelines(self, pieces: Sequence[Piece]) -> None:
        self.pieces.extend(pieces)
        self.size += sum(map(len, pieces))

    def clear(self) -> None:
        self.pieces = []
        self.size = 0

    def close(self) -> None:
        """Kept for the sinks' protocol; the pieces stay until written."""


_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024


def _write_pieces(fd: int, pieces: list[Piece], offset: int) -> None:
    """Write ``pieces`` contiguously at ``offset`` with as few syscalls as the system
    allows, resuming after short writes."""
    pending = list(pieces)
    start = 0
    while start < len(pending):
        batch = pending[start : start + _IOV_MAX]
        written = os.pwritev(fd, batch, offset)
        offset += written
        if written == sum(map(len, batch)):
            start += len(batch)
            continue
        for piece in batch:
            if written < len(piece):
                pending[start] = memoryview(piece)[written:]
                break
            written -= len(piece)
            start += 1


@contextlib.contextmanager
def _commit_lock(output_dir: Path) -> Iterator[None]:
    """Exclusive lock while renaming temporaries into place, so two runs into one
    directory leave one run's complete outputs, never a mix (the pipeline's lock file)."""
    fd = os.open(output_dir / COMMIT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def run_job(
    paths: Any,
    output_dir: Path,
    wcfg: WindowConfig,
    ocfg: OverlapConfig,
    jobs: int = 1,
    on_error: str = "fail",
    lhotse: bool = True,
    partition_bytes: Optional[int] = None,
    prepare: Optional[EntryHook] = None,
) -> dict[str, Any]:
    """Whole job in one call: discover, split into chunks, process them (``jobs``
    processes) and write every final output in input order, atomically.

    ``prepare`` is the reader's entry hook; it must pickle when ``jobs > 1``."""
    from alm_lhotse.discovery import discover_manifests
    from alm_lhotse.partitions import plan_partitions

    global _FILES
    output_dir = Path(output_dir)
    files = discover_manifests(paths)
    chunks = plan_partitions(files, partition_bytes or CHUNK_BYTES, max_partitions=None)
    names = STREAMS if lhotse else STREAMS[:2]
    args = [(i, c, wcfg, ocfg, on_error, lhotse, prepare) for i, c in enumerate(chunks)]
    processes = min(jobs, len(args))
    started = time.perf_counter()
    try:
        _FILES = OrderedFiles(output_dir, names, processes)
        committed = False
        try:
            if processes > 1:
                counts = _render_in_pool(_FILES, args, processes)
            else:
                counts = [_render_chunk(a) for a in args]
            committed = True
        finally:
            with _commit_lock(output_dir) if committed else contextlib.nullcontext():
                _FILES.close(commit=committed)
            _FILES = None
    except OSError as exc:  # inputs were checked up front and read errors are ManifestErrors
        reason = exc.strerror or str(exc)
        raise OutputError(exc.errno, f"cannot write the outputs into {output_dir}: {reason}; no output was kept") from exc
    summary = merge_counts(counts)
    summary["wall_s"] = time.perf_counter() - started
    return summary
