"""The window builder: NeMo Curator's ``ALMDataBuilderStage`` semantics, computed faster.

A window starts at every segment with enough bandwidth and grows over the following
segments, in manifest order, until a segment has too little bandwidth, would exceed the
maximum duration (then it is truncated at a word boundary), is labelled ``no-speaker``
or would bring in one speaker too many. Windows are described by segment index ranges;
nothing is copied except the one truncated segment, and speaker counts are kept
incrementally instead of being recomputed for every appended segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from alm_lhotse.config import WindowConfig

MIN_SEGMENTS_PER_WINDOW = 2
SPEAKER_SLOTS = 5
NO_SPEAKER = "no-speaker"


@dataclass
class Window:
    """Segments ``first .. stop-1`` of an entry, plus ``part`` (a truncated copy of
    segment ``stop``) when the window ends inside a segment."""

    first: int
    stop: int
    part: Optional[dict[str, Any]]
    start: Any
    end: Any
    speaker_durations: list = field(default_factory=list)

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
    """Copy of ``seg`` ending at its last word that ends by ``limit``; text rebuilt from words."""
    part = seg.copy()
    kept = []
    end = seg["start"]
    for word in seg.get("words", ()):
        if word["end"] <= limit:
            kept.append(word.copy())
            end = word["end"]
    part["words"] = kept
    part["text"] = " ".join(w["word"] for w in kept if w.get("word"))
    part["end"] = end
    return part


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


def build_windows(entry: dict[str, Any], cfg: WindowConfig) -> EntryWindows:  # noqa: C901
    """Build every window of one entry, with the reference's statistics."""
    segments = ordered_segments(entry, cfg)
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
        w_end = ends[first]
        stored: set = set()
        part = None
        j = first
        while j < n:
            if not bw_ok[j]:
                break
            spk = speakers[j]
            if ends[j] - w_start > max_d:
                if not truncation:
                    break
                limit = w_start + max_d
                if starts[j] >= limit:
                    break
                events += 1
                cand = truncate_segment(segments[j], limit)
                grown = len(stored) + (1 if spk and spk not in stored else 0)
                if not (grown > max_spk or spk == NO_SPEAKER):
                    part = cand
                    w_end = cand["end"]
                break
            grown = len(stored) + (1 if spk and spk not in stored else 0)
            if grown > max_spk or spk == NO_SPEAKER:
                break
            w_end = ends[j]
            if spk and keep_speaker:
                stored.add(spk)
            j += 1
        window = Window(first, j, part, w_start, w_end)
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
            lost.append(LostWindow(window, next_index, max(first - 1, 0)))
            continue
        spk_durs: dict = {}
        if keep_speaker:
            for i in range(first, j):
                spk = speakers[i]
                if spk:
                    spk_durs[spk] = spk_durs.get(spk, 0) + durs[i]
            if part is not None:
                spk = speakers[j]
                if spk:
                    spk_durs[spk] = spk_durs.get(spk, 0) + (part["end"] - part["start"])
        if not (min_spk <= len(spk_durs) <= max_spk) or NO_SPEAKER in spk_durs:
            lost_spk += 1
            dur_spk += durs[first]
            continue
        top = sorted(spk_durs.values(), reverse=True)[:SPEAKER_SLOTS]
        window.speaker_durations = top + [0.0] * (SPEAKER_SLOTS - len(top))
        windows.append(window)

    stats.update(
        lost_bw=lost_bw,
        dur_lost_bw=dur_bw,
        lost_spk=lost_spk,
        dur_lost_spk=dur_spk,
        lost_win=lost_win,
        dur_lost_win=dur_win,
        lost_no_spkr=lost_no_spkr,
        dur_lost_no_spkr=dur_no_spkr,
        lost_next_seg_bm=lost_next,
        dur_lost_next_seg_bm=dur_next,
    )
    return EntryWindows(segments, windows, lost, stats, events, False)
