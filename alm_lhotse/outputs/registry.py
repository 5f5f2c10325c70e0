"""What an output is (its files, its stage, its writer) and what its writer is given.

Each output is declared once, next to its writer, as an ``Output``; ``alm_lhotse.outputs.streams``
lists the declared outputs in order. The per-entry loop hands every wanted output each
processed entry (and each rejected line), so adding an output touches only its own module
and that list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any, Callable, Optional

try:
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    import zlib as _zlib

from alm_lhotse.config import WindowConfig
from alm_lhotse.core.entry import EntryResult
from alm_lhotse.errors import InvalidEntry
from alm_lhotse.reading.reader import ManifestLine

# The pipeline checkpoints a partition in two halves. Conversion outputs depend on the
# input, ``on_error`` and ``sort_segments`` only, so they are reused when window parameters
# change; window outputs depend on everything.
CONVERSION = "conversion"
WINDOWS = "windows"

GZIP_LEVEL = _zlib.Z_DEFAULT_COMPRESSION  # isal accepts 0-3 only, zlib 0-9


class ProcessedEntry:
    """One valid entry after the core, as the writers see it.

    ``result`` is None when no wanted output belongs to the windows stage (no windows were
    built); ``segments`` are the entry's segments in the order the windows see them.
    Values several outputs derive from the entry are made once with ``shared``.
    """

    __slots__ = ("entry", "origin", "segments", "result", "config", "wanted", "_shared")

    def __init__(
        self,
        entry: dict[str, Any],
        origin: str,
        segments: list[dict[str, Any]],
        result: Optional[EntryResult],
        config: WindowConfig,
        wanted: frozenset[str],
    ) -> None:
        self.entry = entry
        self.origin = origin
        self.segments = segments
        self.result = result
        self.config = config
        self.wanted = wanted
        self._shared: dict[str, Any] = {}

    def wants(self, output: Output) -> bool:
        """Whether ``output`` is written in this run."""
        return output.name in self.wanted

    def shared(self, key: str, make: Callable[[ProcessedEntry], Any]) -> Any:
        """``make(self)``, made once per entry for every output that asks by ``key``."""
        value = self._shared.get(key, _MISSING)
        if value is _MISSING:
            value = self._shared[key] = make(self)
        return value


_MISSING = object()  # a shared value not made yet (None is a value)
Target = Any  # a binary file, a GzipWriter or the runner's buffer: write(), close()


@dataclass(frozen=True)
class Output:
    """One output file of a run.

    ``name`` is its part file's name and its key everywhere (a gzip stream's ends in
    ``.gz``); ``final`` its path under the output directory. ``write`` is called with
    every processed entry, ``reject`` with every rejected line; either may be absent.
    ``lhotse`` outputs are skipped by runs without Lhotse manifests.
    """

    name: str
    final: str
    stage: str
    write: Optional[Callable[[Target, ProcessedEntry], None]] = None
    reject: Optional[Callable[[Target, ManifestLine, InvalidEntry], None]] = None
    lhotse: bool = False

    @property
    def gzip(self) -> bool:
        return self.name.endswith(".gz")


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
