"""The run's breakdown: durations lost by reason, kept windows by duration and by
speaker count, truncations, and the recordings that lost the most.

Made entry by entry next to the other counts (``alm_lhotse.execution.loop.Counts``), as
plain JSON values so partitions store and merge them; ``summary.json`` holds the merged
breakdown under ``"breakdown"`` and the report draws nothing else. Its size is bounded:
histogram bins are whole seconds between the window bounds, and only the
``TOP_RECORDINGS`` recordings that lost the most are kept.

Durations are summed exactly (as partial sums, rounded once at the end), so they do
not depend on how the input was cut into partitions or in which order they merge.

Loss durations use the reference's own measures. The builder's reasons are its
``dur_lost_*`` statistics: the duration of each segment whose window was rejected (every
segment starts one candidate window, so these never count a second twice). The overlap
filter's is the duration of the windows it dropped (the reference's ``total_dur_window``
less ``filtered_dur``); dropped windows overlap kept ones, so it is not comparable audio.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

# The builder's reasons: the reference's statistic and the name shown to users.
BUILDER_REASONS = (
    ("lost_bw", "bandwidth"),
    ("lost_sr", "sample_rate"),
    ("lost_spk", "speaker_count"),
    ("lost_win", "window_bounds"),
    ("lost_no_spkr", "no_speaker"),
    ("lost_next_seg_bm", "next_segment_bandwidth"),
)
# Parts of ``window_bounds`` (why the segment after a rejected window stopped it).
PART_OF_WINDOW_BOUNDS = ("no_speaker", "next_segment_bandwidth")
OVERLAP = "overlap_filter"
REASONS = tuple(name for _, name in BUILDER_REASONS) + (OVERLAP,)
TOP_RECORDINGS = 20
# A top-list row: lost by the builder (s), audio path, speech (s), kept (s), windows, kept windows.
TOP_FIELDS = ("lost_s", "audio_filepath", "speech_s", "kept_s", "windows", "kept_windows")


def _add(partials: list[float], x: float) -> None:
    """Add ``x`` to the exact sum held as non-overlapping ``partials`` (Shewchuk's
    algorithm, the one behind ``math.fsum``), in place."""
    kept = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        high = x + y
        low = y - (high - x)
        if low:
            partials[kept] = low
            kept += 1
        x = high
    del partials[kept:]
    partials.append(x)


def new_breakdown() -> dict[str, Any]:
    """A partition's breakdown; its durations are lists of partial sums (see ``_add``)."""
    return {
        "speech_dur": [],
        "windows_dur": [],
        "lost_dur": {name: [] for name in REASONS},
        "lost_segments": {name: 0 for _, name in BUILDER_REASONS},
        "kept_durations": {},
        "speakers_per_window": {},
        "truncated_windows": 0,
        "top_lost": [],
    }


def add_entry(b: dict[str, Any], entry: dict[str, Any], result: Any) -> None:
    """Add one entry's windows (an ``EntryResult``) to breakdown ``b``."""
    stats = result.built.stats
    lost_dur, lost_segments = b["lost_dur"], b["lost_segments"]
    for stat, name in BUILDER_REASONS:
        _add(lost_dur[name], stats["dur_" + stat])
        lost_segments[name] += stats[stat]
    _add(lost_dur[OVERLAP], result.total_dur_window - result.filtered_dur)
    _add(b["speech_dur"], stats["total_dur"])
    _add(b["windows_dur"], result.total_dur_window)
    durations, speakers = b["kept_durations"], b["speakers_per_window"]
    kept = result.kept_windows
    for w in kept:
        second = str(math.floor(w.end - w.start))
        durations[second] = durations.get(second, 0) + 1
        count = str(sum(1 for d in w.speaker_durations if d))
        speakers[count] = speakers.get(count, 0) + 1
        b["truncated_windows"] += w.part is not None
    lost = stats["dur_lost_bw"] + stats["dur_lost_sr"] + stats["dur_lost_spk"] + stats["dur_lost_win"]
    top = b["top_lost"]
    if lost > 0 and (len(top) < TOP_RECORDINGS or lost > top[-1][0]):
        row = [lost, entry.get("audio_filepath"), stats["total_dur"], result.filtered_dur, len(result.kept), len(kept)]
        top.append(row)
        top.sort(key=_rank)
        del top[TOP_RECORDINGS:]


def _rank(row: list) -> tuple:
    return (-row[0], str(row[1]))


def merge_breakdowns(parts: Iterable[Optional[dict[str, Any]]]) -> dict[str, Any]:
    """Partitions' breakdowns summed (durations exactly, then rounded once), bins sorted by
    value, the top list cut again: what ``summary.json`` holds."""
    total = new_breakdown()
    for b in parts:
        if not b:
            continue
        for key in ("speech_dur", "windows_dur"):
            for x in b[key]:
                _add(total[key], x)
        for name, partials in b["lost_dur"].items():
            for x in partials:
                _add(total["lost_dur"][name], x)
        total["truncated_windows"] += b["truncated_windows"]
        for key in ("lost_segments", "kept_durations", "speakers_per_window"):
            into = total[key]
            for k, v in b[key].items():
                into[k] = into.get(k, 0) + v
        total["top_lost"].extend(b["top_lost"])
    for key in ("speech_dur", "windows_dur"):
        total[key] = math.fsum(total[key])
    total["lost_dur"] = {name: math.fsum(partials) for name, partials in total["lost_dur"].items()}
    for key in ("kept_durations", "speakers_per_window"):
        total[key] = {k: total[key][k] for k in sorted(total[key], key=int)}
    total["top_lost"] = sorted(total["top_lost"], key=_rank)[:TOP_RECORDINGS]
    return total
