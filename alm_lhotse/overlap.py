"""The overlap filter: NeMo Curator's ``ALMDataOverlapStage`` decisions, exactly.

Windows are compared as ``(end, start)`` pairs sorted by ``(start, end)``. A later window
is compared with an earlier one only while it starts before the earlier one ends; when
their overlap over the shorter duration reaches the threshold, the one closer to the
target duration stays (the longer on a tie, the earlier on equal lengths). Every float
operation is the reference's, in the reference's order, so decisions match bit for bit.
"""

from __future__ import annotations

from typing import Any, Sequence

Span = tuple[Any, Any]  # (end, start), the reference's order


def _ratio(start_i: Any, end_i: Any, start_j: Any, end_j: Any) -> Any:
    overlap = max(0, min(end_i, end_j) - max(start_i, start_j))
    shorter = min(end_i - start_i, end_j - start_j)
    return overlap / shorter if shorter else 0


def filter_spans(spans: Sequence[Span], threshold: float, target_duration: float) -> list[Span]:
    """Surviving ``(end, start)`` pairs, in ``(start, end)`` order."""
    order = sorted(spans, key=lambda x: (x[1], x[0]))
    n = len(order)
    starts = [s for _, s in order]
    ends = [e for e, _ in order]
    durs = [e - s for e, s in order]
    removed = [False] * n
    for i in range(n):
        if removed[i]:
            continue
        start_i, end_i, dur_i = starts[i], ends[i], durs[i]
        diff_i = abs(dur_i - target_duration)
        for j in range(i + 1, n):
            start_j = starts[j]
            if start_j >= end_i:
                break
            if removed[j]:
                continue
            end_j = ends[j]
            if _ratio(start_i, end_i, start_j, end_j) < threshold:
                continue
            dur_j = durs[j]
            diff_j = abs(dur_j - target_duration)
            if diff_i < diff_j or (diff_i == diff_j and dur_i >= dur_j):
                removed[j] = True
            else:
                removed[i] = True
                break
    return [span for span, gone in zip(order, removed) if not gone]


def match_key(end: Any, start: Any) -> tuple[Any, Any]:
    """The reference matches windows back to kept spans by values rounded to 6 decimals."""
    return (round(end, 6), round(start, 6))


def kept_mask(spans: Sequence[Span], kept: Sequence[Span]) -> list[bool]:
    """Which windows (given as spans, in window order) the reference reports as kept."""
    if not kept:
        return [False] * len(spans)
    keys = {match_key(e, s) for e, s in kept}
    return [match_key(e, s) in keys for e, s in spans]
