"""``run_job``: a whole job in one call (the recipe, the CLI, the benchmark).

Chunks of input are rendered in worker processes and written straight into the final
output files at their place, in input order, so the result is byte-identical to a
sequential run; the files are renamed into place only when every chunk succeeded.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.errors import OutputError
from alm_lhotse.execution.loop import (
    DURATIONS_PART,
    Counts,
    merge_counts,
    process_slices,
    read_durations,
)
from alm_lhotse.outputs.streams import FINAL_NAMES, Sinks, stream_names
from alm_lhotse.reading.reader import EntryHook
from alm_lhotse.storage import Piece, dir_lock, finish_publishing, publish_set, temp_name, write_pieces

# run_job renders chunks of about this much input in memory before writing them, and
# writes part of a chunk early once this much output is buffered (an unsplittable
# gzipped manifest is one chunk).
CHUNK_BYTES = 1 << 20


FLUSH_BYTES = 32 << 20


class OrderedFiles:
    """Final output files that chunks, rendered in any process, write at their place.

    Chunk ``k`` takes its offsets once chunk ``k-1`` has taken its own, then writes with
    ``pwrite``; so workers write in parallel, nothing is copied twice, and the result is
    byte-identical to a sequential run. Files are temporary until ``commit``; the last
    file, ``durations``, holds every entry's filtered duration in input order for the
    grand total and is never published.
    """

    def __init__(self, output_dir: Path, names: Sequence[str], processes: int) -> None:
        self.directory = output_dir
        self.finals = [output_dir / FINAL_NAMES[n] for n in names]
        self.durations = temp_name(output_dir / DURATIONS_PART)
        self.temps = [*(temp_name(f) for f in self.finals), self.durations]
        for t in self.temps:
            t.parent.mkdir(parents=True, exist_ok=True)
        self.fds = [os.open(t, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for t in self.temps]
        if processes > 1:
            import multiprocessing

            ctx = multiprocessing.get_context("fork")
            self.turn_changed = ctx.Condition()
            self.turn = ctx.RawValue("q", 0)
            self.offsets = ctx.RawArray("q", len(self.temps))
            self.stopped = ctx.RawValue("b", 0)
        else:
            self.turn_changed = None
            self.turn = _Cell(0)
            self.offsets = [0] * len(self.temps)
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
            write_pieces(fd, data.pieces, offset)

    def _claim(self, chunks: Sequence[PieceBuffer], last: bool) -> list[int]:
        places = list(self.offsets[: len(chunks)])
        for k, data in enumerate(chunks):
            self.offsets[k] += data.size
        self.turn.value += last
        return places

    def close(self, commit: bool) -> None:
        for fd in self.fds:
            os.close(fd)
        if commit:
            finish_publishing(self.directory)
            publish_set(self.directory, list(zip(self.temps, self.finals)))
        else:
            for temp in self.temps:
                temp.unlink(missing_ok=True)
        self.durations.unlink(missing_ok=True)


class _Stopped(Exception):
    """A worker's chunk given up because another chunk failed."""


class _Cell:
    """A ``.value`` holder standing in for shared memory in a single process."""

    def __init__(self, value: int) -> None:
        self.value = value


_FILES: Optional[OrderedFiles] = None


def _render_chunk(args: tuple) -> Counts:
    index, slices, wcfg, ocfg, on_error, lhotse, prepare = args
    names = stream_names(lhotse)
    buffers = [PieceBuffer() for _ in range(len(names) + 1)]  # the last one: durations
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

    counts = process_slices(slices, wcfg, ocfg, out, on_error, lhotse, write_when_large, prepare, buffers[-1])
    out.close()
    files.write_chunk(index, buffers)
    return counts


def _render_in_pool(files: OrderedFiles, args: Iterable[tuple], processes: int) -> Iterator[Counts]:
    """``_render_chunk`` of every chunk on a pool of forked workers, the counts in chunk
    order as they come. When a chunk fails, the others stop by themselves before the
    error is raised; only an interrupt terminates the workers."""
    import multiprocessing

    pool = multiprocessing.get_context("fork").Pool(processes)
    try:
        yield from pool.imap(_render_chunk, args)
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
    from alm_lhotse.execution.partitions import iter_partitions
    from alm_lhotse.reading.discovery import discover_manifests

    global _FILES
    output_dir = Path(output_dir)
    files = discover_manifests(paths, exclude=[output_dir])
    # Chunks are planned as workers take them: the pool's queue is a pipe, so planning
    # waits while it is full, and no list grows with the input.
    chunks = iter_partitions(files, partition_bytes or CHUNK_BYTES)
    first = list(itertools.islice(chunks, max(jobs, 1)))
    names = stream_names(lhotse)
    args = ((i, c, wcfg, ocfg, on_error, lhotse, prepare) for i, c in enumerate(itertools.chain(first, chunks)))
    processes = min(jobs, len(first))
    started = time.perf_counter()
    try:
        _FILES = OrderedFiles(output_dir, names, processes)
        committed = False
        try:
            rendered = _render_in_pool(_FILES, args, processes) if processes > 1 else (_render_chunk(a) for a in args)
            with contextlib.closing(rendered):
                summary = merge_counts(rendered, read_durations([_FILES.durations]))
            committed = True
        finally:
            with dir_lock(output_dir) if committed else contextlib.nullcontext():
                _FILES.close(commit=committed)
            _FILES = None
    except OSError as exc:  # inputs were checked up front and read errors are ManifestErrors
        reason = exc.strerror or str(exc)
        raise OutputError(exc.errno, f"cannot write the outputs into {output_dir}: {reason}; no output was kept") from exc
    summary["wall_s"] = time.perf_counter() - started
    return summary
