"""The window builder: NeMo Curator's ``ALMDataBuilderStage``, step by step.

For every start segment with enough bandwidth, a window grows over the following
segments in manifest order. It stops at a segment with too little bandwidth, at one
labelled ``no-speaker`` or bringing in one speaker too many, and at one that would make
it too long: that one is truncated at a word boundary (when truncation is on) and ends
the window. The window is then rejected when its duration is out of bounds, it holds
fewer than two segments or its speaker count is out of bounds; every rejection is
counted in the reference's statistics.

This module is the specification. The compiled builder (``build_entry`` in
``csrc/builder.c``) computes the same windows, statistics and floats for the entries it
takes, and declines the others, which then run here. Windows are segment index ranges:
nothing is copied but the one truncated segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from alm_lhotse import native
from alm_lhotse.config import WindowConfig

MIN_SEGMENTS_PER_WINDOW = 2
SPEAKER_SLOTS = 5
NO_SPEAKER = "no-speaker"
# The reference's loss counters, in the order the compiled builder returns them.
LOSS_REASONS = ("lost_bw", "lost_win", "lost_spk", "lost_no_spkr", "lost_next_seg_bm")


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


def ordered_segments(entry: dict[str, Any], cfg: WindowConfig) -> list[dict[str, Any]]:
    """The entry's segments, stably sorted by start when ``cfg.sort_segments`` asks for it."""
    segments = entry.get("segments", [])
    if cfg.sort_segments:
        return sorted(segments, key=lambda s: s["start"])
    return segments


def _new_stats(segments: list, total_dur: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """The reference's ``BuilderStats``, its fields in its order (the output's order)."""
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


def _lose(stats: dict[str, Any], reason: str, duration: Any) -> None:
    """Count a start segment lost for ``reason``, as the reference's ``BuilderStats``."""
    stats[reason] += 1
    stats[f"dur_{reason}"] += duration


def build_windows(entry: dict[str, Any], cfg: WindowConfig) -> EntryWindows:
    """Every window of one entry, with the reference's statistics: compiled where the
    kernel takes the entry, else the step-by-step builder below (identical results)."""
    segments = ordered_segments(entry, cfg)
    rate = entry.get("audio_sample_rate", 0)
    kernel = native.kernel()
    if kernel is not None and type(rate) in (int, float) and rate >= cfg.min_sample_rate:
        built = kernel.build_entry(segments, cfg)
        if built is not None:
            windows, lost, events, counts, durations, total_dur = built
            stats = _new_stats(segments, total_dur, entry)
            stats.update(zip(LOSS_REASONS, counts))
            stats.update(zip([f"dur_{reason}" for reason in LOSS_REASONS], durations))
            return EntryWindows(segments, windows, lost, stats, events, False)
    return _build(entry, segments, cfg)


def _build(entry: dict[str, Any], segments: list[dict[str, Any]], cfg: WindowConfig) -> EntryWindows:
    """The reference's loop over start segments (the specification of ``build_entry``)."""
    durations = [seg["end"] - seg["start"] for seg in segments]
    stats = _new_stats(segments, sum(durations), entry)
    if entry.get("audio_sample_rate", 0) < cfg.min_sample_rate:
        stats["lost_sr"] = len(segments)
        stats["dur_lost_sr"] = stats["total_dur"]
        return EntryWindows(segments, [], [], stats, 0, True)
    view = _Segments.read(segments, durations, cfg)
    windows: list[Window] = []
    lost: list[LostWindow] = []
    events = 0
    for first in range(len(segments)):
        if not view.bandwidth_ok[first]:
            _lose(stats, "lost_bw", durations[first])
            continue
        window, speaker_durations, truncated = _grow(view, first)
        events += truncated
        if not _has_window_shape(view, window):
            lost.append(_lose_window(view, stats, window))
            continue
        if not cfg.min_speakers <= len(speaker_durations) <= cfg.max_speakers:
            _lose(stats, "lost_spk", durations[first])
            continue
        window.speaker_durations = _top_slots(speaker_durations)
        windows.append(window)
    return EntryWindows(segments, windows, lost, stats, events, False)


@dataclass(slots=True)
class _Segments:
    """One entry's segments as the rules read them, with the parameters they use."""

    segments: list[dict[str, Any]]
    starts: list
    ends: list
    durations: list
    bandwidth_ok: list[bool]
    speakers: list
    cfg: WindowConfig
    keep_speaker: bool  # stored segments keep their speaker (it is not a dropped field)

    @classmethod
    def read(cls, segments: list[dict[str, Any]], durations: list, cfg: WindowConfig) -> _Segments:
        return cls(
            segments,
            [seg["start"] for seg in segments],
            [seg["end"] for seg in segments],
            durations,
            [bandwidth(seg) >= cfg.min_bandwidth for seg in segments],
            [seg.get("speaker") for seg in segments],
            cfg,
            "speaker" not in cfg.drop_set,
        )


def _speaker_fits(totals: dict, speaker: Any, max_speakers: int) -> bool:
    """Whether a segment of ``speaker`` may join a window whose stored segments name the
    speakers in ``totals``: the reference's "not ``no-speaker``, at most ``max_speakers``"."""
    grown = len(totals) + (1 if speaker and speaker not in totals else 0)
    return grown <= max_speakers and speaker != NO_SPEAKER


def _add(totals: dict, speaker: Any, duration: Any) -> None:
    """The reference's speaker-duration sum: named speakers only, in segment order."""
    if speaker:
        totals[speaker] = totals.get(speaker, 0) + duration


def _grow(view: _Segments, first: int) -> tuple[Window, dict, bool]:
    """The window starting at ``first``, grown segment by segment as the reference does;
    its seconds per named speaker (summed while it grows: the reference's sums of its
    stored segments, in their order; none where speakers are a dropped field); and
    whether a truncation was attempted (the reference's ``truncation_events``)."""
    starts, ends, speakers, bandwidth_ok = view.starts, view.ends, view.speakers, view.bandwidth_ok
    max_duration, max_speakers = view.cfg.max_duration, view.cfg.max_speakers
    n, start = len(starts), starts[first]
    totals: dict = {}
    stop = first
    while stop < n and bandwidth_ok[stop]:
        if ends[stop] - start > max_duration:
            return _end_with_part(view, first, stop, totals)
        speaker = speakers[stop]
        known = speaker and speaker in totals  # a speaker already in the window fits
        if not known and not _speaker_fits(totals, speaker, max_speakers):
            break
        if view.keep_speaker:
            _add(totals, speaker, view.durations[stop])
        stop += 1
    end = ends[stop - 1] if stop > first else ends[first]
    return Window(first, stop, None, start, end), totals, False


def _end_with_part(view: _Segments, first: int, stop: int, totals: dict) -> tuple[Window, dict, bool]:
    """``_grow``'s result when segment ``stop`` is too long: with truncation on and that
    segment starting before the limit, its words ending by the limit are kept as a last
    part, unless its speaker may not join."""
    start = view.starts[first]
    end = view.ends[stop - 1] if stop > first else view.ends[first]
    limit = start + view.cfg.max_duration
    if not view.cfg.truncation or not view.starts[stop] < limit:
        return Window(first, stop, None, start, end), totals, False
    part = truncate_segment(view.segments[stop], limit)
    speaker = view.speakers[stop]
    if not _speaker_fits(totals, speaker, view.cfg.max_speakers):
        return Window(first, stop, None, start, end), totals, True
    if view.keep_speaker:
        _add(totals, speaker, part["end"] - part["start"])
    return Window(first, stop, part, start, part["end"]), totals, True


def _has_window_shape(view: _Segments, window: Window) -> bool:
    """Duration within bounds, enough segments, and every stored segment with enough
    bandwidth (none has where ``metrics`` is a dropped field and a minimum is set)."""
    cfg = view.cfg
    stored_bandwidth_lost = "metrics" in cfg.drop_set and 0 < cfg.min_bandwidth
    return (
        cfg.min_duration <= window.end - window.start <= cfg.max_duration
        and window.segment_count() >= MIN_SEGMENTS_PER_WINDOW
        and not stored_bandwidth_lost
    )


def _lose_window(view: _Segments, stats: dict[str, Any], window: Window) -> LostWindow:
    """Count a rejected window, and why the segment after it stopped it: no speaker
    (a missing label counts) or too little bandwidth."""
    first = window.first
    duration = view.durations[first]
    next_index = min(window.stop, len(view.segments) - 1)
    _lose(stats, "lost_win", duration)
    if view.segments[next_index].get("speaker", NO_SPEAKER) == NO_SPEAKER:
        _lose(stats, "lost_no_spkr", duration)
    elif not view.bandwidth_ok[next_index]:
        _lose(stats, "lost_next_seg_bm", duration)
    return LostWindow(window, next_index, max(first - 1, 0))


def _top_slots(speaker_durations: dict[Any, Any]) -> list:
    """The largest speaker durations first, cut or padded with 0.0 to the slot count."""
    top = sorted(speaker_durations.values(), reverse=True)[:SPEAKER_SLOTS]
    return top + [0.0] * (SPEAKER_SLOTS - len(top))


native.configure(
    no_speaker=NO_SPEAKER,
    speaker_slots=SPEAKER_SLOTS,
    min_segments=MIN_SEGMENTS_PER_WINDOW,
    window=Window,
    lost_window=LostWindow,
    truncate=truncate_segment,
)
