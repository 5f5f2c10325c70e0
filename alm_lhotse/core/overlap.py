"""The overlap filter: NeMo Curator's ``ALMDataOverlapStage`` decisions, exactly.

Windows are compared as ``(end, start)`` pairs sorted by ``(start, end)``. A later window
is compared with an earlier one only while it starts before the earlier one ends; when
their overlap over the shorter duration reaches the threshold, the one closer to the
target duration stays (the longer on a tie, the earlier on equal lengths). Every float
operation is the reference's, in the reference's order, so decisions match bit for bit.
"""

from __future__ import annotations

from bisect import bisect_left
from operator import itemgetter
from typing import Any, Optional, Sequence

from alm_lhotse import native

Span = tuple[Any, Any]  # (end, start), the reference's order
_START_END = itemgetter(1, 0)
# Two values that round to the same 6 decimals lie within MATCH_SLACK plus
# MATCH_RELATIVE_SLACK times their size of each other.
MATCH_SLACK = 2e-6
MATCH_RELATIVE_SLACK = 1e-12


def filter_spans(spans: Sequence[Span], threshold: float, target_duration: float) -> list[Span]:
    """Surviving ``(end, start)`` pairs, in ``(start, end)`` order.

    The overlap ratio is the reference's ``max(0, min(ends) - max(starts)) /
    min(durations)``, written with comparisons instead of builtin calls (same operands,
    same operations, so the same floats).
    """
    order = sorted(spans, key=_START_END)
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
            dur_j = durs[j]
            overlap = (end_j if end_j < end_i else end_i) - (start_j if start_j > start_i else start_i)
            if overlap <= 0:
                overlap = 0
            shorter = dur_j if dur_j < dur_i else dur_i
            if (overlap / shorter if shorter else 0) < threshold:
                continue
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


def _near(value: Any) -> float:
    """A bound on how far apart two values rounding to the same 6 decimals can be."""
    return MATCH_SLACK + abs(value) * MATCH_RELATIVE_SLACK


def kept_mask(spans: Sequence[Span], kept: Sequence[Span]) -> list[bool]:
    """Which windows (given as spans, in window order) the reference reports as kept.

    A window whose exact span was kept is kept. Any other window is kept only when
    it rounds to a kept span, which needs a kept start within rounding distance, so
    ``round()`` (slow) is only called for the rare windows that have one.
    """
    if not kept:
        return [False] * len(spans)
    exact = set(kept)
    kept_starts = sorted(s for _, s in kept)
    keys = None
    mask = []
    for span in spans:
        if span in exact:
            mask.append(True)
            continue
        start = span[1]
        lo = bisect_left(kept_starts, start - _near(start))
        if lo == len(kept_starts) or kept_starts[lo] > start + _near(start):
            mask.append(False)
            continue
        if keys is None:
            keys = {match_key(e, s) for e, s in kept}
        mask.append(match_key(*span) in keys)
    return mask


def filter_windows(spans: list[Span], threshold: float, target_duration: Any) -> tuple[list[Span], list[bool]]:
    """``filter_spans`` and ``kept_mask`` in one call, in C where the kernel is built and
    every value is a float (identical results); pure Python otherwise."""
    compiled = _filter_compiled(spans, threshold, target_duration)
    if compiled is not None:
        return compiled
    kept = filter_spans(spans, threshold, target_duration)
    return kept, kept_mask(spans, kept)


def _filter_compiled(spans: list[Span], threshold: float, target_duration: Any) -> Optional[tuple]:
    """The compiled filter's answer, its undecided mask values decided by ``match_key``;
    None where it does not apply (no kernel, a parameter it cannot hold exactly)."""
    kernel = native.kernel()
    target = native.as_float(target_duration)
    if kernel is None or target is None or type(threshold) is not float:
        return None
    result = kernel.overlap_filter(spans, threshold, target)
    if result is None:
        return None
    kept, mask = result
    if None in mask:
        keys = {match_key(e, s) for e, s in kept}
        mask = [match_key(*span) in keys if m is None else m for span, m in zip(spans, mask)]
    return kept, mask


native.configure(match_slack=MATCH_SLACK, match_relative_slack=MATCH_RELATIVE_SLACK)
