"""One entry through the builder and the overlap filter: the pure core of every front end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from alm_lhotse import native
from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.core.overlap import Span, filter_windows
from alm_lhotse.core.windows import EntryWindows, Window, build_windows
from alm_lhotse.reading.validation import validate_entry


@dataclass
class EntryResult:
    """An entry with its windows, the overlap decision and the reference's totals."""

    entry: dict[str, Any]
    built: EntryWindows
    spans: list[Span]
    kept_spans: list[Span]
    kept: list[bool]
    total_dur_window: Any
    filtered_dur: Any

    @property
    def windows(self) -> list[Window]:
        return self.built.windows

    @property
    def kept_windows(self) -> list[Window]:
        return [w for w, k in zip(self.built.windows, self.kept) if k]


def process_entry(
    entry: dict[str, Any],
    wcfg: Optional[WindowConfig] = None,
    ocfg: Optional[OverlapConfig] = None,
    validate: bool = True,
) -> EntryResult:
    """Build windows for one entry and decide which survive the overlap filter.

    Entries are validated first (an invalid one raises InvalidEntry, a ValueError);
    the reader validates already, so the job passes ``validate=False``.
    """
    wcfg = wcfg or WindowConfig()
    ocfg = ocfg or OverlapConfig()
    if validate:
        validate_entry(entry)
    built = build_windows(entry, wcfg)
    spans = [(w.end, w.start) for w in built.windows]
    if spans:
        kept_spans, kept = filter_windows(spans, ocfg.threshold, ocfg.target_duration)
    else:
        kept_spans, kept = [], []
    total = sum(e - s for e, s in spans) if spans else 0.0
    filtered = sum(e - s for e, s in kept_spans) if spans else 0.0
    return EntryResult(entry, built, spans, kept_spans, kept, total, filtered)


def segment_order(segments: list[dict[str, Any]]) -> tuple[bool, bool]:
    """(unsorted, overlapping) of the input segments, whatever ``sort_segments`` does:
    odd but valid shapes the reference processes as they are. Overlap is judged in start
    order, where any overlapping pair implies an overlapping neighbour pair."""
    kernel = native.kernel()
    found = kernel.segment_order(segments) if kernel is not None else None
    if found is not None:
        return found
    starts = [s["start"] for s in segments]
    unsorted = any(a > b for a, b in zip(starts, starts[1:]))
    ordered = sorted(segments, key=lambda s: s["start"]) if unsorted else segments
    overlapping = any(b["start"] < a["end"] for a, b in zip(ordered, ordered[1:]))
    return unsorted, overlapping
