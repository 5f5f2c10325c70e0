"""Split the input into partitions of about equal size, on line boundaries.

A partition is a list of file slices. Large plain-text manifests are cut into several
slices so one big file keeps every worker busy; many small files are grouped so that
100,000 inputs still make only a few hundred partitions. Gzipped files cannot be
entered mid-stream and always form one slice.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from alm_lhotse.errors import ManifestError
from alm_lhotse.fs import is_url, open_url
from alm_lhotse.native import kernel
from alm_lhotse.reading.reader import (
    _GZIP_MAGIC,
    ManifestLine,
    iter_file_lines,
    manifest_line,
)

DEFAULT_PARTITION_BYTES = 64 * 1024 * 1024
# One luigi task per partition: 200 keeps a run to about 200 tasks (scheduler cost is quadratic).
MAX_PARTITIONS = 200


@dataclass(frozen=True)
class FileSlice:
    """Bytes ``start .. stop`` of ``path`` (``stop`` None: to the end), whose first line is
    line number ``first_line``; ``origin`` names the file for ids and error messages."""

    path: str
    start: int
    stop: Optional[int]
    first_line: int
    origin: str


def _is_gzip(path: Path) -> bool:
    with open_url(path) as f:
        return f.read(2) == _GZIP_MAGIC


# Mapped files are scanned this much at a time; the pages behind are handed back, since
# pages of a mapped file count in the process's resident memory as long as they stay mapped.
SCAN_BYTES = 4 << 20
_PAGE = mmap.PAGESIZE


def _count_newlines(view: memoryview) -> int:
    native = kernel()
    return native.count_newlines(view) if native is not None else view.tobytes().count(b"\n")


# A page fault maps the cached pages around it too (Linux "fault-around", at most a
# page table's span: 2 MiB), so pages just before a released range can come back.
_FAULT_AROUND = 2 << 20


def _release(mapped: mmap.mmap, start: int, stop: int) -> None:
    """Drop bytes ``start .. stop`` of a read-only mapping from this process's memory,
    and what fault-around may have mapped again before them (they stay in the page
    cache; touching them again maps them again)."""
    start = max(0, start - _FAULT_AROUND)
    start -= start % _PAGE
    if stop > start and hasattr(mapped, "madvise"):
        mapped.madvise(mmap.MADV_DONTNEED, start, stop - start)


def _scan_newlines(mapped: mmap.mmap, view: memoryview, start: int, stop: int) -> int:
    """Newlines in bytes ``start .. stop``, counted ``SCAN_BYTES`` at a time, so at most
    that much of the file is resident however large the range."""
    count = 0
    for block in range(start, stop, SCAN_BYTES):
        end = min(stop, block + SCAN_BYTES)
        count += _count_newlines(view[block:end])
        _release(mapped, block, end)
    return count


def _line_starts(path: Path, step: int) -> Iterator[tuple[int, int]]:
    """Offsets (and their 1-based line numbers) of line starts about every ``step`` bytes.

    The file is mapped, not read: counting the newlines before each cut is the only
    pass over the data, and it runs while the pipeline builds its task graph. Pages are
    handed back as the scan passes them, so a large file is never resident at once."""
    yield 0, 1
    line = 1
    pos = 0
    target = step
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
        size = len(mapped)
        while target < size:
            line += _scan_newlines(mapped, view, pos, target)
            newline = mapped.find(b"\n", target)
            _release(mapped, target, size if newline < 0 else newline + 1)
            if newline < 0:
                break
            line += 1
            pos = newline + 1
            if pos < size:
                yield pos, line
            target = pos + step


def _line_starts_streamed(path: str, step: int) -> list[tuple[int, int]]:
    """``_line_starts`` for an object, read once as a stream (bounded memory): the same
    cuts, so a plan does not depend on where the manifest is stored."""
    cuts = [(0, 1)]
    line = 0
    end = 0
    target = step
    cut_pending = False
    with open_url(path) as f:
        for raw in f:
            if cut_pending:
                cuts.append((end, line + 1))
                cut_pending = False
            line += 1
            end += len(raw)
            if end - 1 >= target and raw.endswith(b"\n"):
                cut_pending = True
                target = end + step
    return cuts


def slice_lines(sl: FileSlice) -> Optional[int]:
    """Lines in a slice (blank ones included), for progress totals; None for a gzipped
    file, whose lines are known only by decompressing it, or an object, which is
    streamed only once)."""
    if is_url(sl.path):
        return None
    path = Path(sl.path)
    size = path.stat().st_size
    if size == 0:
        return 0
    if _is_gzip(path):
        return None
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
        return _scan_newlines(mapped, view, sl.start, len(mapped) if sl.stop is None else sl.stop)


def file_slices(path: Path, origin: str, step: int) -> list[FileSlice]:
    """One file as slices of about ``step`` bytes."""
    return list(iter_file_slices(path, origin, step))


def iter_file_slices(path: Path, origin: str, step: int) -> Iterator[FileSlice]:
    """``file_slices`` one at a time, each found when asked for."""
    try:
        size = path.stat().st_size
        gz = _is_gzip(path)
    except OSError as exc:
        raise ManifestError(str(path), None, None, f"cannot open manifest: {exc.strerror or exc}") from exc
    if gz or size <= step:
        yield FileSlice(str(path), 0, None, 1, origin)
        return
    cuts = iter(_line_starts_streamed(path, step)) if is_url(path) else _line_starts(path, step)
    start, line = next(cuts)
    for stop, next_line in cuts:
        yield FileSlice(str(path), start, stop, line, origin)
        start, line = stop, next_line
    yield FileSlice(str(path), start, None, line, origin)


def origins(files: list[Path]) -> list[str]:
    """A name per discovered file; a repeated path gets ``#k`` so ids stay unique."""
    seen: dict[str, int] = {}
    names = []
    for f in files:
        key = os.path.abspath(f)
        k = seen.get(key, 0)
        seen[key] = k + 1
        names.append(f"{f.name}#{k}" if k else f.name)
    return names


def plan_partitions(
    files: list[Path], target_bytes: int = DEFAULT_PARTITION_BYTES, max_partitions: Optional[int] = MAX_PARTITIONS
) -> list[list[FileSlice]]:
    """Group file slices into partitions of about ``target_bytes``; with ``max_partitions``
    (the pipeline's bound on its task count) larger ones where there would be more."""
    total = sum(f.stat().st_size for f in files)
    step = max(target_bytes, -(-total // max_partitions) if max_partitions else 1, 1)
    return list(iter_partitions(files, step))


def iter_partitions(files: list[Path], step: int) -> Iterator[list[FileSlice]]:
    """Partitions of about ``step`` bytes, each planned when asked for, so a consumer
    that runs them as they come (``run_job``) never holds the plan of a whole input."""
    current: list[FileSlice] = []
    filled = 0
    for path, origin in zip(files, origins(files)):
        for sl in iter_file_slices(path, origin, step):
            size = (sl.stop if sl.stop is not None else path.stat().st_size) - sl.start
            if current and filled + size > step:
                yield current
                current, filled = [], 0
            current.append(sl)
            filled += size
    if current:
        yield current


def iter_slice_lines(sl: FileSlice) -> Iterator[ManifestLine]:
    """The non-blank lines of one slice, numbered as in the whole file."""
    if sl.start == 0 and sl.stop is None:
        yield from iter_file_lines(sl.path if is_url(sl.path) else Path(sl.path))
        return
    number = sl.first_line
    try:
        with open_url(sl.path) as f:
            f.seek(sl.start)
            pos = sl.start
            for line in f:
                if sl.stop is not None and pos >= sl.stop:
                    break
                pos += len(line)
                item = manifest_line(sl.path, number, line)
                if item is not None:
                    yield item
                number += 1
    except OSError as exc:
        raise ManifestError(sl.path, number, None, f"cannot read manifest: {exc.strerror or exc}") from exc
