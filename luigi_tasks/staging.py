"""The compatible JSONL assembled while partitions finish, not all at the end.

It is most of the pipeline's output (about 60 KB per entry). Concatenating every
partition's part file at the end would copy all of it while the other cores idle.
Instead, a partition task that finishes when every earlier partition is placed appends
its part file to one staging file (the kernel copies, ``copy_file_range``), then the
part files of later partitions that finished before their turn came. The merge appends
whatever is left and renames the file into place. Partitions run in order (their luigi
priority), so the copying happens on the workers, beside other partitions' work, and
the merge has little left to do.

(Keeping a partition's output in memory to write it once, at its place, was measured
slower: every new page of anonymous memory costs a fault, which here costs more than
writing the page cache twice.)

The index (which partitions are placed, the bytes they fill, which wait) is replaced
after the bytes it covers are written, under the staging lock: a killed writer leaves
at worst bytes past the indexed size, which the next append overwrites and the merge
cuts off. Everything is keyed by the job, so another job never reads this staging.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import orjson

from alm_lhotse.storage import copy_file_at, dir_lock, publish, remove_tree

DATA = "alm_output.jsonl"
INDEX = "index.json"
LOCK = "lock"


class StagingError(RuntimeError):
    """The staging file lacks a partition the merge needs."""


class Staging:
    """The staging directory of one job; ``positions`` count partitions from 0."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read(self) -> dict[str, Any]:
        """The index: ``placed`` (part keys, in order), ``size``, ``waiting`` (position ->
        [part key, file holding its output])."""
        try:
            return orjson.loads((self.directory / INDEX).read_bytes())
        except FileNotFoundError:
            return {"placed": [], "size": 0, "waiting": {}}

    def holds(self, position: int, key: str) -> bool:
        placed = self.read()["placed"]
        return position < len(placed) and placed[position] == key

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with dir_lock(self.directory / LOCK):
            yield self.read()

    @contextmanager
    def settle(self, position: int, key: str, part_file: Path, left_at: Path) -> Iterator[None]:
        """Place a finished partition's ``part_file`` if its turn has come (then the part
        files of later ones waiting), else leave it, to be found at ``left_at`` once the
        part directory is published: the body publishes it, still under the lock, so
        whoever fills the gap finds the file where the index says."""
        with self._locked() as index:
            placed = index["placed"]
            waiting = index["waiting"]
            if self._placed(placed, position, key):
                part_file.unlink()
            elif position == len(placed):
                waiting[str(position)] = [key, str(part_file)]
                with self._data() as fd:
                    copied = self._place_waiting(index, fd)
                self._save(index)
                for path in copied:
                    path.unlink()
            else:
                waiting[str(position)] = [key, str(left_at)]
                self._save(index)
            yield

    def merge(self, parts: Sequence[tuple[str, Path]], final: Path) -> None:
        """Complete the file with the part files of the partitions not placed yet
        (``parts``: each partition's key and part file, in order), and rename it to
        ``final``; the staging directory goes."""
        with self._locked() as index:
            placed = index["placed"]
            with self._data() as fd:
                for position, (key, part_file) in enumerate(parts):
                    if self._placed(placed, position, key):
                        continue
                    if not part_file.exists():
                        raise StagingError(f"partition output {part_file} vanished (a concurrent run?); run again")
                    index["size"] += copy_file_at(part_file, fd, index["size"])
                    placed.append(key)
                os.ftruncate(fd, index["size"])
            final.parent.mkdir(parents=True, exist_ok=True)
            publish(self.directory / DATA, final)
        remove_tree(self.directory)

    def _placed(self, placed: list[str], position: int, key: str) -> bool:
        """Whether partition ``position`` is placed already; it must then be ``key``'s."""
        if position >= len(placed):
            return False
        if placed[position] != key:
            raise StagingError(f"partition {position} of {self.directory} holds another output; run again")
        return True

    def _place_waiting(self, index: dict[str, Any], fd: int) -> list[Path]:
        """Append the outputs waiting right after the placed ones; returns their files,
        to remove once the index says they are placed."""
        waiting = index["waiting"]
        copied = []
        while str(len(index["placed"])) in waiting:
            key, path = waiting.pop(str(len(index["placed"])))
            part_file = Path(path)
            if not part_file.exists():  # its part directory was removed: that partition runs again
                break
            index["size"] += copy_file_at(part_file, fd, index["size"])
            index["placed"].append(key)
            copied.append(part_file)
        return copied

    @contextmanager
    def _data(self) -> Iterator[int]:
        fd = os.open(self.directory / DATA, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            yield fd
        finally:
            os.close(fd)

    def _save(self, index: dict[str, Any]) -> None:
        tmp = self.directory / f".{INDEX}.tmp-{os.getpid()}"
        tmp.write_bytes(orjson.dumps(index))
        os.replace(tmp, self.directory / INDEX)
