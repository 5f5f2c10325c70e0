"""Stream manifest lines and parse them into entries, one line at a time."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import IO, Any, Callable, Iterator, NamedTuple, Optional

import orjson

try:
    from isal import igzip as _gzip
except ImportError:  # pragma: no cover - isal is a declared dependency
    import gzip as _gzip

from alm_lhotse.errors import InvalidEntry, ManifestError
from alm_lhotse.reading.discovery import ManifestPaths, discover_manifests
from alm_lhotse.reading.validation import validate_entry

_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"


class ManifestLine(NamedTuple):
    """One non-blank input line and where it came from (1-based line number)."""

    source: str
    line: int
    raw: bytes


def open_manifest(path: Path) -> IO[bytes]:
    """Open a manifest as bytes, transparently gunzipping by content, not by name."""
    handle = open(path, "rb")
    if handle.peek(2)[:2] == _GZIP_MAGIC:
        return _gzip.open(handle, "rb")
    return handle


def manifest_line(source: str, number: int, line: bytes) -> Optional[ManifestLine]:
    """One line as read from a manifest: a leading BOM (line 1), CRLF and surrounding
    white space removed; None for a blank line."""
    if number == 1 and line.startswith(_BOM):
        line = line[len(_BOM):]
    raw = line.strip()
    return ManifestLine(source, number, raw) if raw else None


def iter_file_lines(path: Path) -> Iterator[ManifestLine]:
    """Yield the non-blank lines of one file, CRLF and a leading BOM removed."""
    source = str(path)
    try:
        handle = open_manifest(path)
    except OSError as exc:
        raise ManifestError(source, None, None, f"cannot open manifest: {exc.strerror or exc}") from exc
    number = 0
    with handle:
        try:
            for number, line in enumerate(handle, 1):
                item = manifest_line(source, number, line)
                if item is not None:
                    yield item
        except (OSError, EOFError) as exc:
            raise ManifestError(source, number + 1, None, f"cannot read manifest: {exc}") from exc


def iter_lines(paths: ManifestPaths) -> Iterator[ManifestLine]:
    """Every non-blank line of every discovered manifest, in discovery order."""
    for path in discover_manifests(paths):
        yield from iter_file_lines(path)


def _find_number(value: Any, path: str, bad: Callable[[Any], bool]) -> str | None:
    """Path of the first number for which ``bad`` holds."""
    if type(value) in (int, float) and bad(value):
        return path or "<entry>"
    if isinstance(value, dict):
        for k, v in value.items():
            found = _find_number(v, f"{path}.{k}" if path else str(k), bad)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_number(v, f"{path}[{i}]", bad)
            if found:
                return found
    return None


def _explain_json_error(raw: bytes, exc: Exception) -> InvalidEntry:
    """orjson rejects NaN, Infinity and huge integers; say which of those it was."""
    import json

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return InvalidEntry(None, f"invalid UTF-8 at byte {err.start}")
    try:
        value = json.loads(text)
    except ValueError:
        return InvalidEntry(None, f"invalid JSON: {exc}")
    bad = _find_number(value, "", lambda v: type(v) is float and not math.isfinite(v))
    if bad:
        return InvalidEntry(bad, "NaN or Infinity is not a valid number")
    bad = _find_number(value, "", lambda v: abs(v) > sys.float_info.max)
    if bad:
        return InvalidEntry(bad, "integer too large for a 64-bit float")
    return InvalidEntry(None, f"invalid JSON: {exc}")


EntryHook = Callable[[Any], Any]


def parse_entry(raw: bytes, prepare: Optional[EntryHook] = None) -> dict[str, Any]:
    """Parse and validate one manifest line; raises InvalidEntry naming the field.

    ``prepare`` may complete the parsed value before validation (for example, fill a
    missing sample rate from the audio header); it raises InvalidEntry to reject.
    """
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _explain_json_error(raw, exc) from None
    if prepare is not None:
        entry = prepare(entry)
    validate_entry(entry)
    return entry


def parse_line(line: ManifestLine, prepare: Optional[EntryHook] = None) -> dict[str, Any]:
    """Parse a line, turning validation failures into errors that name file and line."""
    try:
        return parse_entry(line.raw, prepare)
    except InvalidEntry as exc:
        raise ManifestError(line.source, line.line, exc.field, exc.reason) from None


def read_entries(paths: ManifestPaths, prepare: Optional[EntryHook] = None) -> Iterator[dict[str, Any]]:
    """Lazily read every entry of the given manifests (files, directories or lists)."""
    for line in iter_lines(paths):
        yield parse_line(line, prepare)


def iter_jsonl_dicts(path: Path) -> Iterator[dict[str, Any]]:
    """Objects of a (gzipped) JSONL file such as a cuts manifest, without building Lhotse
    objects (and without importing Lhotse)."""
    with open_manifest(Path(path)) as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)
