"""Lhotse manifest dicts for entries and windows, built without importing Lhotse.

These dicts are exactly what ``Recording``, ``SupervisionSegment`` and ``MonoCut``
``to_dict()`` produce, so they load with ``lhotse.load_manifest`` and ``CutSet.from_file``,
but building them directly is several times cheaper than building the objects first.
The Lhotse-object adapters (``alm_lhotse.lhotse_io``) are thin wrappers around these.

Time frames follow the product's contract: a full-recording supervision and its words
are relative to the recording; inside a window cut, supervisions *and* their words are
relative to the window start. The exact manifest numbers ride along in ``custom``
(``source_start``/``source_end``, ``word_ends``) because ``start + duration`` can differ
from the manifest's ``end`` in the last bit, and parity needs the original values.
"""

from __future__ import annotations

import hashlib
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Optional

import orjson

from alm_lhotse.core.windows import Window
from alm_lhotse.native import kernel

# A segment's fields that its supervision holds itself; every other field rides in custom.
SEGMENT_CORE_FIELDS = frozenset({"start", "end", "speaker", "text", "words"})
# The fields supervision_dict adds to custom. The compiled writer hands a segment that
# already has one back to this module: the dict would keep that field's first place.
ADDED_CUSTOM_FIELDS = frozenset({"source_start", "source_end", "segment_index", "word_ends"})
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_LINE = orjson.OPT_APPEND_NEWLINE
_CUT_SUPERVISIONS = b'"supervisions":['


def recording_id(audio_filepath: str, origin: str) -> str:
    """Readable, deterministic and unique per manifest line (``origin``), even when one
    audio file is listed on many lines."""
    stem = _UNSAFE.sub("_", path_stem(audio_filepath))[:48] or "rec"
    digest = hashlib.sha1(f"{audio_filepath}\0{origin}".encode()).hexdigest()[:12]
    return f"{stem}-{digest}"


def path_stem(path: str) -> str:
    """``PurePosixPath(path).stem`` without building a path object (once per entry): the
    last component that is not empty or ``.``, less its last suffix."""
    name = ""
    for part in reversed(path.split("/")):
        if part and part != ".":
            name = part
            break
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


def entry_duration(entry: dict[str, Any]) -> Any:
    """``duration`` when given, else the last segment end (the furthest, for unsorted data)."""
    if entry.get("duration") is not None:
        return entry["duration"]
    return max((s["end"] for s in entry["segments"]), default=0.0)


def num_samples(duration: Any, rate: Any) -> int:
    """Samples in ``duration`` seconds, rounded half up after rounding to 8 decimals: the
    same count Lhotse computes, so our manifests agree with its audio loading. A whole
    number (the usual case) needs no Decimal."""
    exact = round(duration * rate, 8)
    if type(exact) is int:
        return exact
    if exact.is_integer():
        return int(exact)
    return int(Decimal(exact).quantize(0, rounding=ROUND_HALF_UP))


def recording_dict(entry: dict[str, Any], rec_id: str) -> dict[str, Any]:
    rate = int(entry["audio_sample_rate"])
    duration = entry_duration(entry)
    return {
        "id": rec_id,
        "sources": [{"type": "file", "channels": [0], "source": entry["audio_filepath"]}],
        "sampling_rate": rate,
        "num_samples": num_samples(duration, rate),
        "duration": duration,
        "channel_ids": [0],
    }


def _words(words: list[dict[str, Any]], shift: Any) -> tuple[list[list[Any]], Optional[list[Any]]]:
    """Alignment items shifted by ``shift``; in the recording frame (no shift) also the
    exact word ends when ``start + duration`` would not give them back."""
    items = [[w.get("word") or "", w["start"] - shift, w["end"] - w["start"], None] for w in words]
    lossy = shift == 0 and any(it[1] + it[2] != w["end"] for it, w in zip(items, words))
    return items, ([w["end"] for w in words] if lossy else None)


def supervision_dict(seg: dict[str, Any], rec_id: str, index: int, shift: Any = 0) -> dict[str, Any]:
    """The supervision of segment ``index``; ``shift`` moves it (and its words) into a cut's frame."""
    start, end = seg["start"], seg["end"]
    custom = {k: v for k, v in seg.items() if k not in SEGMENT_CORE_FIELDS}
    custom["source_start"] = start
    custom["source_end"] = end
    custom["segment_index"] = index
    sup: dict[str, Any] = {
        "id": f"{rec_id}-{index:05d}",
        "recording_id": rec_id,
        "start": start - shift,
        "duration": end - start,
        "channel": 0,
        "text": seg.get("text"),
    }
    # Values a supervision cannot hold (a null or empty speaker, a null text, an empty
    # word list) ride verbatim in custom, so converting back is exact.
    speaker = seg.get("speaker")
    if speaker:
        sup["speaker"] = speaker
    elif "speaker" in seg:
        custom["speaker"] = speaker
    if "text" in seg and seg["text"] is None:
        custom["text"] = None
    words = seg.get("words")
    if words:
        items, ends = _words(words, shift)
        sup["alignment"] = {"word": items}
        if ends is not None:
            custom["word_ends"] = ends
    elif "words" in seg:
        custom["words"] = words
    sup["custom"] = custom
    return sup


def supervision_dicts(entry: dict[str, Any], rec_id: str) -> list[dict[str, Any]]:
    """Supervisions of every segment with a positive duration, in manifest order."""
    return [supervision_dict(seg, rec_id, i) for i, seg in enumerate(entry["segments"]) if seg["end"] > seg["start"]]


def lhotse_lines(
    segments: list[dict[str, Any]],
    rec: dict[str, Any],
    audio_filepath: str,
    windows: list[Window],
    supervisions: bool = True,
) -> tuple[bytes, bytes]:
    """JSON lines of an entry's supervisions (``supervision_dicts``; empty unless
    ``supervisions``) and of its ``windows`` as cuts (``window_cut_dict``).

    The kernel writes them without building the dicts, and formats each segment's values
    once for its supervision and for the windows that hold it (they differ in their
    start times only).
    """
    rec_id = rec["id"]
    native = kernel()
    if native is not None and type(segments) is list:
        requests: list[tuple] = [(0, 0, len(segments), None, b"\n", 0, b"\n")] if supervisions else []
        for w in windows:
            frame = orjson.dumps(_cut_dict(w, [], rec, audio_filepath), option=_LINE)
            at = frame.index(_CUT_SUPERVISIONS) + len(_CUT_SUPERVISIONS)
            requests.append((w.start, w.first, w.stop, w.part, frame, at, b","))
        lines = native.supervisions_json(segments, rec_id, requests, orjson.dumps, SEGMENT_CORE_FIELDS, ADDED_CUSTOM_FIELDS)
        if lines is not None:
            sups = lines.pop(0) if supervisions else b""
            return (b"" if sups == b"\n" else sups), b"".join(lines)
    sups = b""
    if supervisions:
        sups = b"".join(orjson.dumps(sup, option=_LINE) for sup in supervision_dicts({"segments": segments}, rec_id))
    cuts = b"".join(orjson.dumps(window_cut_dict(w, segments, rec, audio_filepath), option=_LINE) for w in windows)
    return sups, cuts


def window_id(rec_id: str, window: Window) -> str:
    return f"{rec_id}-win{window.first:05d}"


def window_cut_dict(window: Window, segments: list[dict[str, Any]], rec: dict[str, Any], audio_filepath: str) -> dict[str, Any]:
    """A ``MonoCut`` spanning one window; zero-length (fully truncated) segments are left out."""
    return _cut_dict(window, _window_supervisions(window, segments, rec["id"]), rec, audio_filepath)


def _cut_dict(window: Window, sups: list[dict[str, Any]], rec: dict[str, Any], audio_filepath: str) -> dict[str, Any]:
    rec_id = rec["id"]
    return {
        "id": window_id(rec_id, window),
        "start": window.start,
        "duration": window.end - window.start,
        "channel": 0,
        "supervisions": sups,
        "recording": rec,
        "custom": {
            "speaker_durations": window.speaker_durations,
            "source_recording": rec_id,
            "audio_filepath": audio_filepath,
            "window_start": window.start,
            "window_end": window.end,
            "window_index": window.first,
            "truncated": window.part is not None,
        },
        "type": "MonoCut",
    }


def window_pieces(window: Window, segments: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """The segments a window's cut holds, with their indices, in the window's order:
    its positive-length segments and its truncated part (index ``stop``), if that is not
    zero-length. The cuts and the NeMo manifest both take a window's turns from here."""
    pieces = [(i, segments[i]) for i in range(window.first, window.stop) if segments[i]["end"] > segments[i]["start"]]
    part = window.part
    if part is not None and part["end"] > part["start"]:
        pieces.append((window.stop, part))
    return pieces


def _window_supervisions(window: Window, segments: list[dict[str, Any]], rec_id: str) -> list[dict[str, Any]]:
    """A window's supervisions in its frame, in its segments' order."""
    return [supervision_dict(seg, rec_id, i, window.start) for i, seg in window_pieces(window, segments)]
