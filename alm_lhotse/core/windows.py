"""The window builder: NeMo Curator's ``ALMDataBuilderStage`` semantics, computed faster.

A window starts at every segment with enough bandwidth and grows over the following
segments, in manifest order, until a segment has too little bandwidth, would exceed the
maximum duration (then it is truncated at a word boundary), is labelled ``no-speaker``
or would bring in one speaker too many. Windows are described by segment index ranges;
nothing is copied except the one truncated segment, and speaker counts are kept
incrementally instead of being recomputed for every appended segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from alm_lhotse.config import WindowConfig
from alm_lhotse.native import as_float, kernel, small_int

MIN_SEGMENTS_PER_WINDOW = 2
SPEAKER_SLOTS = 5
NO_SPEAKER = "no-speaker"
_PADDING = [0.0] * SPEAKER_SLOTS
# The statistics' loss counters and their durations, in the order the builders return them.
_LOST_KEYS = ("lost_bw", "lost_win", "lost_spk", "lost_no_spkr", "lost_next_seg_bm")
_LOST_DUR_KEYS = tuple(f"dur_{key}" for key in _LOST_KEYS)


@dataclass(slots=True)
class Window:
    """Segments ``first .. stop-1`` of an entry, plus ``part`` (a truncated copy of
    segment ``stop``) when the window ends inside a segment."""

    first: int
    stop: int
    part: Optional[dict[str, Any]]
    start: Any
    end: Any
    speaker_durations: Optional[list] = None

    @property
    def duration(self) -> Any:
        return self.end - self.start

    def segment_count(self) -> int:
        return self.stop - self.first + (self.part is not None)


@dataclass
class LostWindow:
    """A rejected window, kept for the reference's ``stats.lost_win_full_data``."""

    window: Window
    next_index: int
    prev_index: int


@dataclass
class EntryWindows:
    """Everything the builder derives from one entry."""

    segments: list[dict[str, Any]]
    windows: list[Window]
    lost: list[LostWindow]
    stats: dict[str, Any]
    truncation_events: int
    low_sample_rate: bool


def bandwidth(seg: dict[str, Any]) -> Any:
    """Segment bandwidth; a segment without ``metrics`` counts as 0, as in the reference."""
    metrics = seg.get("metrics")
    return 0 if metrics is None else metrics.get("bandwidth", 0)


def truncate_segment(seg: dict[str, Any], limit: Any) -> dict[str, Any]:
    """Copy of ``seg`` ending at its last word that ends by ``limit``; text rebuilt from
    words. The kept words are the segment's own word dicts (never mutated)."""
    words = seg.get("words")
    if not words:
        return {**seg, "words": [], "text": "", "end": seg["start"]}
    kept = []
    end = seg["start"]
    for word in words:
        if word["end"] <= limit:
            kept.append(word)
            end = word["end"]
    return {**seg, "words": kept, "text": " ".join(w["word"] for w in kept if w.get("word")), "end": end}


def _new_stats(segments: list, total_dur: Any, entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "total_segments": len(segments),
        "total_dur": total_dur,
        "swift_path": entry.get("swift_audio_filepath", ""),
        "audio_sample_rate": entry.get("audio_sample_rate", 0),
        "lost_bw": 0,
        "dur_lost_bw": 0.0,
        "lost_sr": 0,
        "dur_lost_sr": 0.0,
        "lost_spk": 0,
        "dur_lost_spk": 0.0,
        "lost_win": 0,
        "dur_lost_win": 0.0,
        "lost_no_spkr": 0,
        "dur_lost_no_spkr": 0.0,
        "lost_next_seg_bm": 0,
        "dur_lost_next_seg_bm": 0.0,
    }


def ordered_segments(entry: dict[str, Any], cfg: WindowConfig) -> list[dict[str, Any]]:
    """The entry's segments, stably sorted by start when ``cfg.sort_segments`` asks for it."""
    segments = entry.get("segments", [])
    if cfg.sort_segments:
        return sorted(segments, key=lambda s: s["start"])
    return segments


def _first_at_or_after(flags: list[bool]) -> list[int]:
    """For every index, the first index at or after it whose flag is set (len if none)."""
    n = len(flags)
    out = [n] * n
    nxt = n
    for i in range(n - 1, -1, -1):
        if flags[i]:
            nxt = i
        out[i] = nxt
    return out


def _is_sorted(values: list) -> bool:
    return all(a <= b for a, b in zip(values, values[1:]))


def build_windows(entry: dict[str, Any], cfg: WindowConfig) -> EntryWindows:  # noqa: C901
    """Build every window of one entry, with the reference's statistics.

    Where segments are sorted and the entry cannot exceed the speaker limit, where a
    window stops is found with two pointers (amortised O(1) per window); otherwise the
    reference's segment-by-segment growth is followed. Both give identical windows.
    """
    segments = ordered_segments(entry, cfg)
    native = kernel()
    rate = entry.get("audio_sample_rate", 0)
    if native is not None and type(rate) in (int, float) and rate >= cfg.min_sample_rate:
        compiled = _build_compiled(native, segments, cfg)
        if compiled is not None:
            windows, lost, events, counts, durations, total_dur = compiled
            stats = _new_stats(segments, total_dur, entry)
            stats.update(zip(_LOST_KEYS, counts))
            stats.update(zip(_LOST_DUR_KEYS, durations))
            return EntryWindows(segments, windows, lost, stats, events, False)
    n = len(segments)
    starts = [s["start"] for s in segments]
    ends = [s["end"] for s in segments]
    durs = [e - s for s, e in zip(starts, ends)]
    stats = _new_stats(segments, sum(durs), entry)
    if entry.get("audio_sample_rate", 0) < cfg.min_sample_rate:
        stats["lost_sr"] = n
        stats["dur_lost_sr"] = stats["total_dur"]
        return EntryWindows(segments, [], [], stats, 0, True)

    min_bw = cfg.min_bandwidth
    bw_ok = [bandwidth(s) >= min_bw for s in segments]
    speakers = [s.get("speaker") for s in segments]
    keep_speaker = "speaker" not in cfg.drop_set
    # Stored (field-dropped) segments without metrics have bandwidth 0.
    stored_bw_bad = "metrics" in cfg.drop_set and 0 < min_bw
    max_d, min_d = cfg.max_duration, cfg.min_duration
    max_spk, min_spk = cfg.max_speakers, cfg.min_speakers
    truncation = cfg.truncation

    distinct = len({spk for spk in speakers if spk})
    fast = _is_sorted(starts) and _is_sorted(ends) and (distinct if keep_speaker else min(distinct, 1)) <= max_spk
    if fast:
        bw_stop = _first_at_or_after([not ok for ok in bw_ok])
        nospk_stop = _first_at_or_after([spk == NO_SPEAKER for spk in speakers])
    dur_stop = 0
    speaker_durs = list(zip(speakers, durs))

    windows: list[Window] = []
    lost: list[LostWindow] = []
    events = 0
    lost_bw = lost_win = lost_spk = lost_no_spkr = lost_next = 0
    dur_bw = dur_win = dur_spk = dur_no_spkr = dur_next = 0.0

    for first in range(n):
        if not bw_ok[first]:
            lost_bw += 1
            dur_bw += durs[first]
            continue
        w_start = starts[first]
        part = None
        if fast:
            if dur_stop < first:
                dur_stop = first
            while dur_stop < n and ends[dur_stop] - w_start <= max_d:
                dur_stop += 1
            j = min(bw_stop[first], nospk_stop[first], dur_stop)
            grow_to_part = j < n and j == dur_stop and j < bw_stop[first]
        else:
            j, grow_to_part = _grow(first, w_start, n, bw_ok, speakers, starts, ends, max_d, max_spk, keep_speaker)
        if grow_to_part and truncation:
            limit = w_start + max_d
            if starts[j] < limit:
                events += 1
                cand = truncate_segment(segments[j], limit)
                if fast or _speaker_fits(speakers, first, j, max_spk, keep_speaker):
                    if speakers[j] != NO_SPEAKER:
                        part = cand
        if part is not None:
            w_end = part["end"]
        else:
            w_end = ends[j - 1] if j > first else ends[first]
        count = j - first + (part is not None)
        w_dur = w_end - w_start
        if not (min_d <= w_dur <= max_d) or count < MIN_SEGMENTS_PER_WINDOW or stored_bw_bad:
            next_index = min(j, n - 1)
            lost_win += 1
            dur_win += durs[first]
            nxt = segments[next_index]
            if nxt.get("speaker", NO_SPEAKER) == NO_SPEAKER:
                lost_no_spkr += 1
                dur_no_spkr += durs[first]
            elif not bw_ok[next_index]:
                lost_next += 1
                dur_next += durs[first]
            lost.append(LostWindow(Window(first, j, part, w_start, w_end), next_index, max(first - 1, 0)))
            continue
        spk_durs: dict = {}
        if keep_speaker:
            get = spk_durs.get
            for spk, dur in speaker_durs[first:j]:
                if spk:
                    spk_durs[spk] = get(spk, 0) + dur
            if part is not None and speakers[j]:
                spk = speakers[j]
                spk_durs[spk] = spk_durs.get(spk, 0) + (part["end"] - part["start"])
        if not (min_spk <= len(spk_durs) <= max_spk):
            lost_spk += 1
            dur_spk += durs[first]
            continue
        top = sorted(spk_durs.values(), reverse=True)
        if len(top) < SPEAKER_SLOTS:
            top += _PADDING[len(top) :]
        elif len(top) > SPEAKER_SLOTS:
            del top[SPEAKER_SLOTS:]
        windows.append(Window(first, j, part, w_start, w_end, top))

    stats.update(zip(_LOST_KEYS, (lost_bw, lost_win, lost_spk, lost_no_spkr, lost_next)))
    stats.update(zip(_LOST_DUR_KEYS, (dur_bw, dur_win, dur_spk, dur_no_spkr, dur_next)))
    return EntryWindows(segments, windows, lost, stats, events, False)


def _build_compiled(native: Any, segments: list, cfg: WindowConfig) -> Optional[tuple]:
    """The fast path in C (same windows, statistics and floats as the loop below); None
    where it does not apply, and the pure-Python builder runs instead."""
    max_d, min_d = as_float(cfg.max_duration), as_float(cfg.min_duration)
    if max_d is None or min_d is None or not (small_int(cfg.min_speakers) and small_int(cfg.max_speakers)):
        return None
    if type(segments) is not list:
        return None
    return native.build_entry(
        segments, cfg.min_bandwidth, max_d, min_d, cfg.max_speakers, cfg.min_speakers, cfg.truncation,
        "speaker" not in cfg.drop_set, "metrics" in cfg.drop_set and 0 < cfg.min_bandwidth,
        truncate_segment, Window, LostWindow, NO_SPEAKER, sum,
    )


def _grows(stored: set, spk: Any, max_spk: int) -> bool:
    """Whether adding a segment of ``spk`` keeps the window within the speaker rules."""
    grown = len(stored) + (1 if spk and spk not in stored else 0)
    return not (grown > max_spk or spk == NO_SPEAKER)


def _grow(
    first: int, w_start: Any, n: int, bw_ok: list, speakers: list, starts: list, ends: list,
    max_d: Any, max_spk: int, keep_speaker: bool,
) -> tuple[int, bool]:
    """Segment-by-segment growth, as the reference does it, for unsorted or crowded entries.

    Returns the stop index and whether growth stopped because the segment at the stop
    index would exceed the maximum duration (the only case that may truncate it).
    """
    stored: set = set()
    j = first
    while j < n:
        if not bw_ok[j]:
            return j, False
        if ends[j] - w_start > max_d:
            return j, True
        spk = speakers[j]
        if not _grows(stored, spk, max_spk):
            return j, False
        if spk and keep_speaker:
            stored.add(spk)
        j += 1
    return j, False


def _speaker_fits(speakers: list, first: int, j: int, max_spk: int, keep_speaker: bool) -> bool:
    """The speaker rule for the truncated segment ``j`` after full segments ``first..j-1``."""
    stored = {spk for spk in speakers[first:j] if spk} if keep_speaker else set()
    return _grows(stored, speakers[j], max_spk)
