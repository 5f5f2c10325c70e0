"""Storage: the only module that knows how outputs reach files.

Atomic writes and publishing (temp name + rename, for files and whole directories),
whole-file copies and links into place, the one lock that keeps two runs from writing
one directory at once, and the content keys that name checkpoints. Every other module
asks this one; the object-storage backends extend it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import threading
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import orjson

Piece = Union[bytes, memoryview]
LOCK_NAME = ".alm.lock"
TEMP_MARK = ".tmp-"


def key_of(value: Any, length: int = 16) -> str:
    """Short stable hash of a JSON-serialisable value: names checkpoints by what made them."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:length]


def temp_name(path: Path, keep_suffix: bool = False) -> Path:
    """A hidden sibling of ``path`` unique to this host and process
    (``.NAME.tmp-HOST-PID``; with ``keep_suffix`` the extension stays last, for writers
    that pick a format by it)."""
    owner = f"{TEMP_MARK}{socket.gethostname()}-{os.getpid()}"
    if keep_suffix:
        return path.with_name(f".{path.stem}{owner}{path.suffix}")
    return path.with_name(f".{path.name}{owner}")


def temp_owner(temp: Path) -> Optional[tuple[str, int]]:
    """(host, pid) of the process that made a plain ``temp_name``, None for other names."""
    head, mark, owner = temp.name.rpartition(TEMP_MARK)
    host, _, pid = owner.rpartition("-")
    return (host, int(pid)) if mark and head.startswith(".") and host and pid.isdigit() else None


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


JOURNAL_NAME = ".alm_publish.json"
_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def publish_set(directory: Path, moves: Sequence[tuple[Path, Path]]) -> None:
    """Rename finished files into place as one set: the old outputs or the new ones, never
    a mix. The moves are journaled first, so a process killed half-way is rolled forward
    by ``finish_publishing`` before anything else touches ``directory``; SIGINT, SIGTERM
    and SIGHUP wait until the renames are done, so only SIGKILL or a crash can split them.
    Everything slow (writing, copying) must be done before."""
    journal = [[os.path.relpath(t, directory), os.path.relpath(f, directory)] for t, f in moves]
    write_atomic(directory / JOURNAL_NAME, orjson.dumps(journal))
    with _signals_held():
        finish_publishing(directory)


def finish_publishing(directory: Path) -> bool:
    """Complete the renames of a journaled set (see ``publish_set``); whether there was one.
    Idempotent: a file already moved is no longer at its temp name and is skipped."""
    journal = directory / JOURNAL_NAME
    try:
        moves = orjson.loads(journal.read_bytes())
    except FileNotFoundError:
        return False
    except orjson.JSONDecodeError:  # written atomically, so unreadable only if mangled by hand
        journal.unlink()
        return False
    for tmp, final in moves:
        source = directory / tmp
        if os.path.lexists(source):
            (directory / final).parent.mkdir(parents=True, exist_ok=True)
            publish(source, directory / final)
    journal.unlink()
    return True


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Record termination signals instead of acting on them, and act on them at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda sig, _frame: caught.append(sig)) for sig in _HELD_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)


@contextlib.contextmanager
def atomic_path(path: Path, keep_suffix: bool = False) -> Iterator[Path]:
    """A temp path to write ``path`` through: published when the block succeeds, removed
    when it fails, so a killed or failed writer never leaves a file that looks complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path, keep_suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file + rename. Not fsynced, as luigi's own targets: checkpoints survive
    killed processes, not a power loss (which can leave a renamed file empty; readers of
    small checkpoints redo them)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def link_into(source: Path, final: Path) -> None:
    """Publish ``final`` as a second name of ``source`` (the data is not copied, so disk
    use does not double); a copy where the filesystem has no hard links."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        with open(tmp, "wb") as target:
            concatenate([source], target)
    publish(tmp, final)


def publish_dir(tmp: Path, final: Path, replace: bool = False) -> bool:
    """Rename a finished temp directory into place. Without ``replace`` a directory
    already there (a concurrent run's, equal by its key) wins and ``tmp`` goes; returns
    whether ``tmp`` was published."""
    if replace:
        remove_tree(final)
    try:
        os.rename(tmp, final)
        return True
    except OSError:
        if replace or not final.is_dir():
            raise
        remove_tree(tmp)
        return False


def remove_tree(path: Path) -> None:
    """Remove a directory (or file) that a concurrent run may be using: it is renamed
    away first, so nobody finds it half removed, and what another process adds
    meanwhile does not stop the removal."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        doomed = temp_name(path)
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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
def dir_lock(directory: Path, on_wait: Optional[Callable[[Path], None]] = None) -> Iterator[None]:
    """Hold the exclusive lock of ``directory`` (an ``flock`` on its ``.alm.lock``),
    waiting while another process holds it; ``on_wait`` is told the lock file first.

    The kernel drops the lock when its holder dies, so a killed run never blocks the next.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(lock)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
