"""Stream manifest lines and parse them into entries, one line at a time."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import IO, Any, Callable, Iterator, NamedTuple, Optional

import orjson

try:
    from isal import igzip as _gzip
except ImportError:  # pragma: no cover - isal is a declared dependency
    import gzip as _gzip

from alm_lhotse import native
from alm_lhotse.errors import InvalidEntry, ManifestError
from alm_lhotse.fs import Location, StorageError, open_url
from alm_lhotse.reading.discovery import ManifestPaths, discover_manifests
from alm_lhotse.reading.validation import validate_entry

_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"


class ManifestLine(NamedTuple):
    """One non-blank input line and where it came from (1-based line number)."""

    source: str
    line: int
    raw: bytes


def open_manifest(path: Location) -> IO[bytes]:
    """Open a manifest (a file, or an object streamed in bounded blocks) as bytes,
    transparently gunzipping by content, not by name."""
    handle = open_url(path)
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
    except StorageError as exc:
        raise ManifestError(source, None, None, f"cannot open manifest: {exc.reason}") from None
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


def _find_number(value: Any, bad: Callable[[Any], bool]) -> str | None:
    """Path of the first number for which ``bad`` holds; iterative, so no nesting depth
    can exhaust Python's recursion limit."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if type(item) in (int, float):
            if bad(item):
                return path or "<entry>"
        elif isinstance(item, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(item))))
    return None


def _explain_json_error(raw: bytes, exc: Exception) -> InvalidEntry:
    """orjson rejects NaN, Infinity, huge integers and (newer versions) nesting past
    1024 levels; say which of those it was."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return InvalidEntry(None, f"invalid UTF-8 at byte {err.start}")
    deep = _deep_text_path(text, MAX_DEPTH)
    if deep is not None:
        return InvalidEntry(deep, TOO_DEEP)
    try:
        value = json.loads(text)
    except RecursionError:
        return InvalidEntry(None, f"invalid JSON: nested too deeply to read ({exc})")
    except ValueError:
        return InvalidEntry(None, f"invalid JSON: {exc}")
    bad = _find_number(value, lambda v: type(v) is float and not math.isfinite(v))
    if bad:
        return InvalidEntry(bad, "NaN or Infinity is not a valid number")
    bad = _find_number(value, lambda v: abs(v) > sys.float_info.max)
    if bad:
        return InvalidEntry(bad, "integer too large for a 64-bit float")
    return InvalidEntry(None, f"invalid JSON: {exc}")


# orjson writes at most 255 nested levels and an output wraps an input value in at most
# 3 more (a segment inside ``stats.lost_win_full_data[i].window_segs``): deeper lines are
# rejected when read, not when written.
MAX_DEPTH = 200
TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep (the output could not be written)"


def _surely_shallow(raw: bytes) -> bool:
    """A fast yes for "the parsed line nests at most ``MAX_DEPTH`` levels"; False means
    "walk the parsed value" (``_too_deep``, the rule's specification). The kernel
    measures the depth in one pass; without it, a line with fewer brackets than the
    limit cannot nest deeper."""
    kernel = native.kernel()
    if kernel is not None:
        return kernel.json_depth(raw) <= MAX_DEPTH
    return raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH


def _too_deep(value: Any, limit: int) -> str | None:
    """Where ``value`` first nests deeper than ``limit`` (the path's first steps), or None."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        if type(item) is dict:
            children: Any = ((v, f"{path}.{k}" if path else str(k)) for k, v in item.items())
        elif type(item) is list:
            children = ((v, f"{path}[{i}]") for i, v in enumerate(item))
        else:
            continue
        if depth > limit:
            return path
        for child, child_path in children:
            if type(child) in (dict, list):
                stack.append((child, depth + 1, child_path if depth < 6 else path))
    return None


def _deep_text_path(text: str, limit: int) -> str | None:
    """``_too_deep`` for a line no parser reads (orjson from 3.10 refuses more than 1024
    levels, ``json`` overflows its recursion limit): the same path, found by scanning
    the text, keeping for each open container its key or element index."""
    if text.count("{") + text.count("[") <= limit:
        return None
    steps: list[list[Any]] = []  # per open container: [is_object, key or index, expecting a key]
    k, size = 0, len(text)
    while k < size:
        c = text[k]
        if c == '"':
            end = _string_end(text, k)
            if steps and steps[-1][2]:
                steps[-1][1:] = [json.loads(text[k:end]), False]
            k = end
            continue
        if c in "{[":
            if len(steps) >= limit:
                return _steps_path(steps[:5])
            steps.append([c == "{", 0 if c == "[" else "", c == "{"])
        elif c in "}]" and steps:
            steps.pop()
        elif c == "," and steps:
            steps[-1][2] = steps[-1][0]
            if not steps[-1][0]:
                steps[-1][1] += 1
        k += 1
    return None


def _string_end(text: str, k: int) -> int:
    """Just past the closing quote of the string whose opening quote is at ``k``."""
    q = k + 1
    while True:
        q = text.find('"', q)
        if q < 0:
            return len(text)
        slashes = 0
        while text[q - 1 - slashes] == "\\":
            slashes += 1
        if slashes % 2 == 0:
            return q + 1
        q += 1


def _steps_path(steps: list[list[Any]]) -> str:
    path = ""
    for is_object, step, _ in steps:
        path = (f"{path}.{step}" if path else str(step)) if is_object else f"{path}[{step}]"
    return path


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
    if not _surely_shallow(raw):
        deep = _too_deep(entry, MAX_DEPTH)
        if deep is not None:
            raise InvalidEntry(deep, TOO_DEEP)
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


def iter_jsonl_dicts(path: Location) -> Iterator[dict[str, Any]]:
    """Objects of a (gzipped) JSONL file such as a cuts manifest, without building Lhotse
    objects (and without importing Lhotse)."""
    with open_manifest(path) as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)
