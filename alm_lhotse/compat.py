"""NeMo Curator-compatible ALM JSONL, assembled from pre-serialised pieces.

The reference output repeats every segment in every window that holds it (and again
in the statistics of rejected windows). Each segment is serialised once per entry and
windows are sliced out of one joined buffer, so writing costs a few byte copies per
window instead of one dict and one JSON encoding per segment occurrence.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from alm_lhotse.config import WindowConfig
from alm_lhotse.process import EntryResult
from alm_lhotse.windows import Window

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
    return {k: v for k, v in obj.items() if k not in drop} if drop else obj


class SegmentRuns:
    """All segments of an entry serialised once, joined, so any run is one slice."""

    def __init__(self, segments: list[dict[str, Any]], drop: frozenset[str]) -> None:
        self.drop = drop
        self.parts = [_dumps(strip_fields(s, drop)) for s in segments]
        offsets = [0]
        total = 0
        for p in self.parts:
            total += len(p) + 1
            offsets.append(total)
        self.offsets = offsets
        self.buf = b",".join(self.parts)

    def window_segments(self, w: Window) -> bytes:
        """The JSON list of a window's stored segments."""
        inner = self.buf[self.offsets[w.first] : self.offsets[w.stop] - 1] if w.stop > w.first else b""
        if w.part is not None:
            tail = _dumps(strip_fields(w.part, self.drop))
            inner = inner + b"," + tail if inner else tail
        return b"[" + inner + b"]"


def _object(pairs: Iterable[tuple[str, bytes]], head: bytes = b"{}") -> bytes:
    """Append pre-serialised ``key: value`` pairs to a serialised JSON object."""
    body = [head[:-1]]
    sep = b"," if len(head) > 2 else b""
    for key, value in pairs:
        body.append(sep + _dumps(key) + b":" + value)
        sep = b","
    body.append(b"}")
    return b"".join(body)


def _stats(result: EntryResult, runs: SegmentRuns | None) -> bytes:
    lost = []
    if runs is not None:
        for lw in result.built.lost:
            lost.append(
                b'{"index":%d,"window_segs":%s,"next_seg":%s,"prev_seg":%s}'
                % (lw.window.first, runs.window_segments(lw.window), runs.parts[lw.next_index], runs.parts[lw.prev_index])
            )
    return _object([("lost_win_full_data", b"[" + b",".join(lost) + b"]")], _dumps(result.built.stats))


def render_entry(result: EntryResult, cfg: WindowConfig) -> bytes:
    """One output line (without newline) whose parsed value equals the reference's."""
    built = result.built
    entry = result.entry
    if built.low_sample_rate:
        passthrough = {"audio_filepath": entry.get("audio_filepath")}
        if "audio_filepath" in cfg.drop_top_level_set:
            passthrough = {}
    else:
        passthrough = {k: v for k, v in entry.items() if k not in cfg.drop_top_level_set}
    overridden = set(BUILDER_KEYS)
    if built.windows:
        overridden.update(OVERLAP_KEYS)
    head = _dumps({k: v for k, v in passthrough.items() if k not in overridden})

    runs = SegmentRuns(built.segments, cfg.drop_set) if (built.windows or built.lost) else None
    window_json = [
        b'{"segments":%s,"speaker_durations":%s}' % (runs.window_segments(w), _dumps(w.speaker_durations))
        for w in built.windows
    ] if runs is not None else []
    pairs: list[tuple[str, bytes]] = [
        ("windows", b"[" + b",".join(window_json) + b"]"),
        ("stats", _stats(result, runs)),
        ("truncation_events", b"%d" % built.truncation_events),
    ]
    if built.windows:
        kept_json = [wj for wj, k in zip(window_json, result.kept) if k]
        pairs += [
            ("total_dur_window", _dumps(result.total_dur_window)),
            ("total_dur_list_window", _dumps([e - s for e, s in result.spans])),
            ("total_dur_list_window_timestamps", _dumps(result.spans)),
            ("filtered", _dumps(result.kept_spans)),
            ("filtered_windows", b"[" + b",".join(kept_json) + b"]"),
            ("filtered_dur", _dumps(result.filtered_dur)),
            ("filtered_dur_list", _dumps([e - s for e, s in result.kept_spans])),
            ("manifest_filepath", b"null"),
            ("swift_filepath", _dumps(built.stats["swift_path"])),
        ]
    else:
        pairs += [(k, v) for k, v in _EMPTY_OVERLAP.items() if k not in passthrough]
    return _object(pairs, head)
