"""NeMo Curator-compatible ALM JSONL, assembled from pre-serialised pieces.

The reference output repeats every segment in every window that holds it (and again
in the statistics of rejected windows). Each segment is serialised once per entry and
windows are sliced out of one joined buffer, so writing costs a few byte copies per
window instead of one dict and one JSON encoding per segment occurrence.
"""

from __future__ import annotations

from typing import Any, Optional

import orjson

from alm_lhotse.config import WindowConfig
from alm_lhotse.core.entry import EntryResult
from alm_lhotse.core.windows import LostWindow, Window
from alm_lhotse.native import kernel
from alm_lhotse.outputs.registry import WINDOWS, Output, ProcessedEntry, Target
from alm_lhotse.storage import Piece

BUILDER_KEYS = ("windows", "stats", "truncation_events")
OVERLAP_KEYS = (
    "total_dur_window",
    "total_dur_list_window",
    "total_dur_list_window_timestamps",
    "filtered",
    "filtered_windows",
    "filtered_dur",
    "filtered_dur_list",
    "manifest_filepath",
    "swift_filepath",
)
# What the reference's overlap stage sets by default on an entry without windows.
_EMPTY_OVERLAP = {
    "filtered_windows": b"[]",
    "filtered_dur": b"0.0",
    "filtered_dur_list": b"[]",
    "total_dur_window": b"0.0",
    "total_dur_list_window": b"[]",
    "total_dur_list_window_timestamps": b"[]",
    "filtered": b"[]",
    "manifest_filepath": b"null",
    "swift_filepath": b"null",
}
_dumps = orjson.dumps


def strip_fields(obj: dict[str, Any], drop: frozenset[str]) -> dict[str, Any]:
    return obj if drop.isdisjoint(obj) else {k: v for k, v in obj.items() if k not in drop}


class SegmentRuns:
    """All segments of an entry serialised once and joined, so any run is one slice.

    ``array`` is the JSON array of the segments; inside its brackets (``view``), segment
    ``k`` starts at ``offsets[k]`` and ends at ``offsets[k + 1] - 1``. The compiled path
    serialises the whole list in one call and finds the element boundaries in the result;
    the pure path serialises segment by segment.
    """

    def __init__(self, segments: list[dict[str, Any]], drop: frozenset[str], native: Any = None) -> None:
        self.drop = drop
        stripped = native.strip_all(segments, drop) if native is not None else None
        if stripped is not None:
            self.array = _dumps(stripped)
            self.offsets = native.element_offsets(self.array)
        else:
            parts = [_dumps(strip_fields(s, drop)) for s in segments]
            offsets = [0]
            total = 0
            for p in parts:
                total += len(p) + 1
                offsets.append(total)
            self.offsets = offsets
            self.array = b"[%s]" % b",".join(parts)
        self.view = memoryview(self.array)[1:-1]

    def segment(self, k: int) -> memoryview:
        """Segment ``k`` serialised."""
        return self.view[self.offsets[k] : self.offsets[k + 1] - 1]

    def window_segments(self, w: Window) -> list[Piece]:
        """The pieces of the JSON list of a window's stored segments, without brackets."""
        pieces: list[Piece] = []
        if w.stop > w.first:
            pieces.append(self.view[self.offsets[w.first] : self.offsets[w.stop] - 1])
        if w.part is not None:
            tail = _dumps(strip_fields(w.part, self.drop))
            pieces.append(b"," + tail if pieces else tail)
        return pieces


def _array(items: list[list[Piece]]) -> list[Piece]:
    """Pieces of a JSON array whose elements are each given as pieces."""
    out: list[Piece] = [b"["]
    for k, item in enumerate(items):
        if k:
            out.append(b",")
        out.extend(item)
    out.append(b"]")
    return out


def _window(runs: SegmentRuns, w: Window) -> list[Piece]:
    """A valid window: its stored segments and its speaker durations."""
    return [b'{"segments":[', *runs.window_segments(w), b'],"speaker_durations":%s}' % _dumps(w.speaker_durations)]


def _window_arrays(
    runs: Optional[SegmentRuns], windows: list[Window], kept: list[bool], native: Any
) -> tuple[list[Piece], list[Piece]]:
    """Pieces of the JSON arrays of all windows and of the kept ones (in C where built)."""
    if runs is None or not windows:
        return [b"[]"], [b"[]"]
    if native is not None:
        all_windows, kept_windows = native.render_windows(runs.array, runs.offsets, windows, kept, runs.drop, _dumps)
        return [all_windows], [kept_windows]
    rendered = [_window(runs, w) for w in windows]
    return _array(rendered), _array([w for w, k in zip(rendered, kept) if k])


def _lost(runs: SegmentRuns, lw: LostWindow) -> list[Piece]:
    return [
        b'{"index":%d,"window_segs":[' % lw.window.first,
        *runs.window_segments(lw.window),
        b'],"next_seg":',
        runs.segment(lw.next_index),
        b',"prev_seg":',
        runs.segment(lw.prev_index),
        b"}",
    ]


def _object(head: bytes, pairs: list[tuple[str, list[Piece]]]) -> list[Piece]:
    """Pieces of a serialised JSON object ``head`` extended with pre-serialised pairs."""
    out: list[Piece] = [head[:-1]]
    sep = b"," if len(head) > 2 else b""
    for key, value in pairs:
        out.append(sep + _dumps(key) + b":")
        out.extend(value)
        sep = b","
    out.append(b"}")
    return out


def render_pieces(result: EntryResult, cfg: WindowConfig) -> list[Piece]:
    """One output line (without newline) as pieces for ``writelines``; its parsed value
    equals the reference's output entry."""
    built = result.built
    entry = result.entry
    if built.low_sample_rate:
        passthrough = {} if "audio_filepath" in cfg.drop_top_level_set else {"audio_filepath": entry.get("audio_filepath")}
    else:
        passthrough = {k: v for k, v in entry.items() if k not in cfg.drop_top_level_set}
    overridden = set(BUILDER_KEYS)
    if built.windows:
        overridden.update(OVERLAP_KEYS)
    head = _dumps({k: v for k, v in passthrough.items() if k not in overridden})

    native = kernel()
    runs = SegmentRuns(built.segments, cfg.drop_set, native) if (built.windows or built.lost) else None
    windows, kept = _window_arrays(runs, built.windows, result.kept, native)
    lost = [_lost(runs, lw) for lw in built.lost] if runs is not None else []
    stats = _object(_dumps(built.stats), [("lost_win_full_data", _array(lost))])
    pairs: list[tuple[str, list[Piece]]] = [
        ("windows", windows),
        ("stats", stats),
        ("truncation_events", [b"%d" % built.truncation_events]),
    ]
    if built.windows:
        spans = result.spans
        kept_spans = result.kept_spans
        pairs += [
            ("total_dur_window", [_dumps(result.total_dur_window)]),
            ("total_dur_list_window", [_dumps([e - s for e, s in spans])]),
            ("total_dur_list_window_timestamps", [_dumps(spans)]),
            ("filtered", [_dumps(kept_spans)]),
            ("filtered_windows", kept),
            ("filtered_dur", [_dumps(result.filtered_dur)]),
            ("filtered_dur_list", [_dumps([e - s for e, s in kept_spans])]),
            ("manifest_filepath", [b"null"]),
            ("swift_filepath", [_dumps(built.stats["swift_path"])]),
        ]
    else:
        pairs += [(k, [v]) for k, v in _EMPTY_OVERLAP.items() if k not in passthrough]
    return _object(head, pairs)


def render_entry(result: EntryResult, cfg: WindowConfig) -> bytes:
    """One output line (without newline) whose parsed value equals the reference's."""
    return b"".join(render_pieces(result, cfg))


def _write(target: Target, processed: ProcessedEntry) -> None:
    assert processed.result is not None  # an output of the windows stage
    target.writelines(render_pieces(processed.result, processed.config))
    target.write(b"\n")


COMPAT = Output(name="alm_output.jsonl", final="alm_output.jsonl", stage=WINDOWS, write=_write)
