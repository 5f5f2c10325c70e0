"""The window streams of a job assembled while partitions finish, not all at the end.

The compatible JSONL is most of the pipeline's output (about 60 KB per entry), the window
cuts come next. Concatenating every partition's part files at the end would copy all of
it while the other cores idle. Instead, a partition task that finishes when every
earlier partition is placed appends its part files to the job's staged files (the
kernel copies, ``copy_file_range``), then the part files of later partitions that
finished before their turn came. Partitions run in order (their luigi priority), so the
copying happens on the workers, beside other partitions' work.

A partition's slot in the staged files is part of its output: its part files are removed
once placed. The merge links the complete staged files into place as final outputs (a
second name, no copy), so the slots stay valid after the merge and disk use does not
double.

(Keeping a partition's output in memory to write it once, at its place, was measured
slower: every new page of anonymous memory costs a fault, which here costs more than
writing the page cache twice.)

The index (which partitions are placed, the bytes they fill, which wait) is replaced
after the bytes it covers are written, under the staging lock: a killed writer leaves
at worst bytes past the indexed size, which the next append overwrites and ``finish``
cuts off. Everything is keyed by the job, so another job never reads this staging.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import orjson

from alm_lhotse.outputs.streams import WINDOW_STREAMS
from alm_lhotse.storage import copy_file_at, dir_lock, write_atomic

INDEX = "index.json"


class StagingError(RuntimeError):
    """The staging lacks a partition the merge needs, or holds another one's."""


class Staging:
    """The staged window streams of one job; ``positions`` count partitions from 0.

    A partition's part files (one per name in ``streams``) are in a directory of its own
    until placed."""

    def __init__(self, directory: Path, streams: Sequence[str] = WINDOW_STREAMS) -> None:
        self.directory = directory
        self.streams = tuple(streams)

    def read(self) -> dict[str, Any]:
        """The index: ``placed`` (part keys, in order), ``sizes`` (bytes per stream),
        ``waiting`` (position -> [part key, directory holding its part files]). Empty when
        a staged file is shorter than the index says: the final outputs share the staged
        files' data, so whoever wrote into a final file in place damaged them too."""
        try:
            index = orjson.loads((self.directory / INDEX).read_bytes())
        except FileNotFoundError:
            index = None
        if index is None or not self._intact(index):
            return {"placed": [], "sizes": {name: 0 for name in self.streams}, "waiting": {}}
        return index

    def _intact(self, index: dict[str, Any]) -> bool:
        for name in self.streams:
            size = index["sizes"][name]
            try:
                if size and self.staged(name).stat().st_size < size:
                    return False
            except FileNotFoundError:
                return False
        return True

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The lock and the index; staged files the index does not cover from the start
        (damaged, or left by a killed writer before any index) are started afresh, as new
        files, so a final output sharing their data is never written."""
        with dir_lock(self.directory):
            index = self.read()
            if not index["placed"]:
                for name in self.streams:
                    self.staged(name).unlink(missing_ok=True)
            yield index

    def holds(self, position: int, key: str) -> bool:
        placed = self.read()["placed"]
        return position < len(placed) and placed[position] == key

    def staged(self, name: str) -> Path:
        return self.directory / name

    @contextmanager
    def settle(self, position: int, key: str, part_dir: Path, left_at: Path) -> Iterator[None]:
        """Place a finished partition's part files (in ``part_dir``) if its turn has come
        (then those of later ones waiting), else leave them, to be found in ``left_at``
        once the partition's directory is published there: the body publishes it, still
        under the lock, so whoever fills the gap finds the files where the index says."""
        with self._locked() as index:
            placed = index["placed"]
            if self._placed(placed, position, key):
                self._remove_parts(part_dir)
            elif position == len(placed):
                index["waiting"][str(position)] = [key, str(part_dir)]
                copied = self._place_waiting(index)
                self._save(index)
                for directory in copied:
                    self._remove_parts(directory)
            else:
                index["waiting"][str(position)] = [key, str(left_at)]
                self._save(index)
            yield

    def finish(self, parts: Sequence[tuple[str, Path]]) -> dict[str, Path]:
        """Complete the staged files with the part files of the partitions not placed yet
        (``parts``: each partition's key and directory, in order) and cut off bytes past
        the index; returns the staged file of each stream."""
        with self._locked() as index:
            placed = index["placed"]
            with self._files() as fds:
                for position, (key, directory) in enumerate(parts):
                    if self._placed(placed, position, key):
                        continue
                    if not all((directory / name).exists() for name in self.streams):
                        raise StagingError(f"partition output {directory} vanished (a concurrent run?); run again")
                    self._append(index, fds, directory)
                    placed.append(key)
                for name, fd in fds.items():
                    os.ftruncate(fd, index["sizes"][name])
            self._save(index)
        return {name: self.staged(name) for name in self.streams}

    def _placed(self, placed: list[str], position: int, key: str) -> bool:
        """Whether partition ``position`` is placed already; it must then be ``key``'s."""
        if position >= len(placed):
            return False
        if placed[position] != key:
            raise StagingError(f"partition {position} of {self.directory} holds another output; run again")
        return True

    def _place_waiting(self, index: dict[str, Any]) -> list[Path]:
        """Append the part files waiting right after the placed ones; returns their
        directories, whose part files go once the index says they are placed."""
        waiting = index["waiting"]
        copied: list[Path] = []
        with self._files() as fds:
            while str(len(index["placed"])) in waiting:
                key, path = waiting.pop(str(len(index["placed"])))
                directory = Path(path)
                if not all((directory / name).exists() for name in self.streams):
                    break  # its directory was removed: that partition runs again
                self._append(index, fds, directory)
                index["placed"].append(key)
                copied.append(directory)
        return copied

    def _append(self, index: dict[str, Any], fds: dict[str, int], directory: Path) -> None:
        for name, fd in fds.items():
            index["sizes"][name] += copy_file_at(directory / name, fd, index["sizes"][name])

    def _remove_parts(self, directory: Path) -> None:
        for name in self.streams:
            (directory / name).unlink(missing_ok=True)

    @contextmanager
    def _files(self) -> Iterator[dict[str, int]]:
        fds: dict[str, int] = {}
        try:
            for name in self.streams:
                fds[name] = os.open(self.staged(name), os.O_WRONLY | os.O_CREAT, 0o644)
            yield fds
        finally:
            for fd in fds.values():
                os.close(fd)

    def _save(self, index: dict[str, Any]) -> None:
        write_atomic(self.directory / INDEX, orjson.dumps(index))
