"""Storage: the only module that knows how outputs reach files.

Atomic writes and publishing (temp file + rename), whole-file copies into place, locks
that keep two runs from writing one directory at once, and the content keys that name
checkpoints. Every other module asks this one; the object-storage backends extend it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Union

import orjson

Piece = Union[bytes, memoryview]
LOCK_NAME = ".alm.lock"
logger = logging.getLogger("luigi-interface")


def key_of(value: Any, length: int = 16) -> str:
    """Short stable hash of a JSON-serialisable value: names checkpoints by what made them."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:length]


def temp_name(path: Path) -> Path:
    """A hidden sibling of ``path`` unique to this host and process (``.NAME.tmp-HOST-PID``)."""
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


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
            write_pieces(fd, [block], offset + copied)
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
    tmp = temp_name(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024


def write_pieces(fd: int, pieces: list[Piece], offset: int) -> None:
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
def commit_lock(output_dir: Path) -> Iterator[None]:
    """Exclusive lock while renaming temporaries into place, so two runs into one
    directory leave one run's complete outputs, never a mix (the pipeline's lock file)."""
    fd = os.open(output_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def dir_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``; wait (and say so) while another run holds it.

    The kernel drops the lock when its holder dies, so a killed run never blocks the next.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.warning("waiting for another run writing into %s (lock %s)", path.parent, path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
