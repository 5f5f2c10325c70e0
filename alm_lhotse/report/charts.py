"""The report's charts as PNG bytes (matplotlib's Agg canvas: no display needed).

Each chart is drawn from ``summary.json`` values only, so the page and the summary
cannot disagree. Durations are shown in hours, as summed in the summary.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import Any, Callable, Optional

from alm_lhotse.report.tally import BUILDER_REASONS, OVERLAP, PART_OF_WINDOW_BOUNDS

KEPT_COLOUR, LOST_COLOUR, PART_COLOUR, MARK_COLOUR = "#2a7ab0", "#c0504d", "#e3a09e", "#333333"
DPI = 100
LABEL_INCHES_PER_CHAR = 0.075  # of a 10 pt sans-serif label, a little over its average width


def window_settings(summary: dict[str, Any]) -> dict[str, Any]:
    """The window parameters of the run: the pipeline's ``parameters.window`` or
    ``prepare_alm``'s ``window_config``."""
    return summary.get("parameters", {}).get("window") or summary.get("window_config") or {}


def _png(fig: Any, labels: Optional[list[str]] = None) -> bytes:
    """The figure as PNG. Margins are set from the longest ``labels`` (a horizontal bar
    chart's categories) rather than measured by ``tight_layout``, which draws every
    figure once more (a third of the report's time)."""
    width, height = fig.get_size_inches()
    if labels is None:  # a vertical chart: room for the tick values and the axis label
        left, right = 1.0, 0.3
    else:  # categories on the left, values written past the bars' ends on the right
        left, right = 0.3 + LABEL_INCHES_PER_CHAR * max((len(label) for label in labels), default=0), 0.9
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=0.6 / height, top=1 - 0.45 / height)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _figure(title: str, height: float = 3.6) -> tuple[Any, Any]:
    """A figure of its own (no pyplot state), drawn by the Agg canvas PNG output uses.
    matplotlib is imported here, when a report is drawn, not with the package."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, height))
    ax = fig.subplots()
    ax.set_title(title)
    return fig, ax


def window_durations(summary: dict[str, Any]) -> bytes:
    """Kept windows per whole second of duration, with the target and its tolerance."""
    b = summary["breakdown"]
    fig, ax = _figure("Kept windows by duration")
    seconds = [int(k) for k in b["kept_durations"]]
    ax.bar(seconds, list(b["kept_durations"].values()), width=1.0, align="edge", color=KEPT_COLOUR, label="windows")
    w = window_settings(summary)
    target, tolerance = w.get("target_window_duration"), w.get("tolerance")
    if target is not None and tolerance is not None:
        ax.axvspan(target * (1 - tolerance), target * (1 + tolerance), color="#999999", alpha=0.2, label=f"tolerance ±{tolerance:g}")
        ax.axvline(target, color=MARK_COLOUR, linestyle="--", label=f"target {target:g} s")
    ax.set_xlabel("window duration (s, 1 s bins)")
    ax.set_ylabel("windows")
    ax.legend(loc="upper right")
    return _png(fig)


def speakers(summary: dict[str, Any]) -> bytes:
    counts = summary["breakdown"]["speakers_per_window"]
    fig, ax = _figure("Speakers per kept window")
    ax.bar([int(k) for k in counts], list(counts.values()), color=KEPT_COLOUR)
    ax.set_xticks([int(k) for k in counts])
    ax.set_xlabel("speakers with speech in the window")
    ax.set_ylabel("windows")
    return _png(fig)


def hours_rows(summary: dict[str, Any]) -> list[tuple[str, float, str]]:
    """(label, seconds, colour) of the kept/lost chart, in its order, from the summary."""
    lost = summary["breakdown"]["lost_dur"]
    rows = [("kept windows", summary["filtered_dur"], KEPT_COLOUR), ("overlap filter (windows dropped)", lost[OVERLAP], LOST_COLOUR)]
    for _, name in BUILDER_REASONS:
        part = name in PART_OF_WINDOW_BOUNDS
        label = f"{name.replace('_', ' ')}" + (" (of window bounds)" if part else "")
        rows.append((label, lost[name], PART_COLOUR if part else LOST_COLOUR))
    return rows


def hours(summary: dict[str, Any]) -> bytes:
    """Hours of window audio kept and dropped by the overlap filter; hours of speech
    whose windows the builder rejected, by reason."""
    rows = hours_rows(summary)
    fig, ax = _figure("Hours kept and lost, by reason", height=4.2)
    labels = [r[0] for r in rows][::-1]
    ax.barh(labels, [r[1] / 3600 for r in rows][::-1], color=[r[2] for r in rows][::-1])
    for y, (_, seconds, _) in enumerate(rows[::-1]):
        ax.annotate(f"{seconds / 3600:.3g} h", (seconds / 3600, y), xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_xlabel("hours")
    return _png(fig, labels)


def truncations(summary: dict[str, Any]) -> bytes:
    b = summary["breakdown"]
    fig, ax = _figure("Truncations", height=3.0)
    kept = summary["filtered_windows"]
    labels = ["kept windows, whole", "kept windows, truncated", "truncation events (all windows built)"]
    values = [kept - b["truncated_windows"], b["truncated_windows"], summary["truncation_events"]]
    ax.barh(labels[::-1], values[::-1], color=[MARK_COLOUR, PART_COLOUR, KEPT_COLOUR])
    for y, v in enumerate(values[::-1]):
        ax.annotate(str(v), (v, y), xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_xlabel("count")
    ax.locator_params(axis="x", nbins=4)
    return _png(fig, labels)


def recording_label(path: Optional[str]) -> str:
    return PurePosixPath(str(path)).name or str(path)


def top_lost(summary: dict[str, Any]) -> bytes:
    rows = summary["breakdown"]["top_lost"]
    fig, ax = _figure("Recordings that lost the most speech (builder)", height=max(2.5, 0.9 + 0.3 * len(rows)))
    labels = [f"{k + 1}. {recording_label(r[1])}" for k, r in enumerate(rows)][::-1]
    if rows:
        ax.barh(labels, [r[0] / 60 for r in rows][::-1], color=LOST_COLOUR)
    else:
        ax.text(0.5, 0.5, "no recording lost speech", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("minutes of speech whose windows were rejected")
    return _png(fig, labels)


# The charts in page order: file stem, caption, drawing function.
CHARTS: tuple[tuple[str, str, Callable[[dict[str, Any]], bytes]], ...] = (
    ("window_durations", "Kept windows by duration, with the target and its tolerance", window_durations),
    ("speakers_per_window", "Speakers per kept window", speakers),
    ("hours_kept_lost", "Hours kept and lost by reason", hours),
    ("truncations", "Truncations", truncations),
    ("recordings_lost", "Recordings that lost the most", top_lost),
)
