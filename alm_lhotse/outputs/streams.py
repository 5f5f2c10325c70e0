"""The output streams of a run: their part-file and final names, and the sinks that write them.

Every output is registered here by name (``FINAL_NAMES``); the per-entry loop writes to a
``Sinks`` holding one target per wanted stream, gzip streams compressed on the way.
"""

from __future__ import annotations

import base64
from typing import IO, Any, Optional

import orjson

try:
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    import zlib as _zlib

from alm_lhotse.errors import InvalidEntry
from alm_lhotse.reading.reader import ManifestLine

COMPAT_PART = "alm_output.jsonl"


RECORDINGS_PART = "recordings.jsonl.gz"


SUPERVISIONS_PART = "supervisions.jsonl.gz"


CUTS_PART = "cuts_windows.jsonl.gz"


REJECTS_PART = "rejects.jsonl"


SUMMARY_PART = "summary.json"


GZIP_LEVEL = _zlib.Z_DEFAULT_COMPRESSION  # isal accepts 0-3 only, zlib 0-9


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


FINAL_NAMES = {
    COMPAT_PART: "alm_output.jsonl",
    REJECTS_PART: "rejects.jsonl",
    RECORDINGS_PART: "lhotse/alm_recordings_all.jsonl.gz",
    SUPERVISIONS_PART: "lhotse/alm_supervisions_all.jsonl.gz",
    CUTS_PART: "lhotse/alm_cuts_windows_all.jsonl.gz",
}


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


def json_line(item: dict[str, Any]) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE)
