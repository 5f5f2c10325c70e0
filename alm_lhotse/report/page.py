"""``report.html``: one self-contained page (charts inlined as PNG data URIs, no
scripts, no links out) that opens offline, plus the same charts as PNG files in
``report/``. Written by the pipeline's merge and by ``lhotse-alm report DIR``.

Every number on the page is a ``summary.json`` value: each table cell carries the exact
value in ``data-value`` and shows it formatted; the summary itself is embedded as JSON.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

import orjson

from alm_lhotse import objects
from alm_lhotse.fs import Location, is_url, join
from alm_lhotse.report.charts import CHARTS, hours_rows, recording_label, window_settings
from alm_lhotse.report.tally import TOP_FIELDS
from alm_lhotse.storage import write_atomic

REPORT_FILE = "report.html"
CHART_DIR = "report"
# Where a run's totals are: the pipeline's, then ``prepare_alm``'s.
SUMMARY_FILES = ("summary.json", "prepare_summary.json")
STYLE = """
body{font-family:sans-serif;max-width:60em;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}figure{margin:1em 0}img{max-width:100%;height:auto}
figcaption{color:#555;font-size:.9em}.note{color:#555;font-size:.9em}
"""


class MissingSummary(ValueError):
    """The directory holds no summary a report can be drawn from."""


def read_summary(output_dir: Location) -> dict[str, Any]:
    """The run's summary; a plain error when the directory holds none with a breakdown."""
    for name in SUMMARY_FILES:
        path = join(output_dir, name)
        try:
            summary = orjson.loads(objects.read_bytes(path))
        except (FileNotFoundError, IsADirectoryError):
            continue
        if "breakdown" not in summary:
            raise MissingSummary(f"{path} has no breakdown (made by an older version): run the job again")
        return summary
    raise MissingSummary(f"no {' or '.join(SUMMARY_FILES)} in {output_dir}: is it an output directory of a finished run?")


def write_report(output_dir: Path, summary: Optional[dict[str, Any]] = None) -> list[Path]:
    """Draw the charts of ``summary`` (default: the one in ``output_dir``) into
    ``output_dir/report/*.png`` and ``output_dir/report.html``; returns the files written,
    the page last."""
    summary = read_summary(output_dir) if summary is None else summary
    charts = [(stem, caption, draw(summary)) for stem, caption, draw in CHARTS]
    (output_dir / CHART_DIR).mkdir(parents=True, exist_ok=True)
    written = []
    for stem, _, png in charts:
        written.append(output_dir / CHART_DIR / f"{stem}.png")
        write_atomic(written[-1], png)
    written.append(output_dir / REPORT_FILE)
    write_atomic(written[-1], render_page(summary, charts).encode("utf-8"))
    return written


def report_into(output_dir: Location, summary: Optional[dict[str, Any]] = None) -> Location:
    """``write_report`` for any output directory; one in object storage gets the files
    drawn in a local temp directory, then uploaded one by one. Returns the page."""
    if not is_url(output_dir):
        return write_report(Path(output_dir), summary)[-1]
    summary = read_summary(output_dir) if summary is None else summary
    with tempfile.TemporaryDirectory(prefix="alm-report-") as tmp:
        for path in write_report(Path(tmp), summary):
            objects.write_bytes(join(output_dir, path.relative_to(tmp).as_posix()), path.read_bytes())
    return join(output_dir, REPORT_FILE)


def _cell(value: Any, shown: Optional[str] = None) -> str:
    exact = html.escape(orjson.dumps(value).decode(), quote=True)
    text = shown if shown is not None else (f"{value:,}" if isinstance(value, int) else str(value))
    return f'<td data-value="{exact}">{html.escape(text)}</td>'


def _seconds(value: Any) -> str:
    return f"{value:,.1f} s ({value / 3600:.3f} h)"


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    top = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f"<table><tr>{top}</tr>{body}</table>"


def _totals(summary: dict[str, Any]) -> str:
    b = summary["breakdown"]
    rows = [
        ("entries", summary["entries"], None),
        ("rejected lines", summary["rejected"], None),
        ("windows built", summary["windows"], None),
        ("windows kept (after the overlap filter)", summary["filtered_windows"], None),
        ("kept window audio", summary["filtered_dur"], _seconds(summary["filtered_dur"])),
        ("audio of all windows built", b["windows_dur"], _seconds(b["windows_dur"])),
        ("speech in the input (segment durations)", b["speech_dur"], _seconds(b["speech_dur"])),
        ("truncation events", summary["truncation_events"], None),
        ("kept windows truncated", b["truncated_windows"], None),
        ("entries below min_sample_rate", summary["low_sample_rate_entries"], None),
    ]
    return _table(("", "value"), ([f"<td>{html.escape(label)}</td>", _cell(v, shown)] for label, v, shown in rows))


def _losses(summary: dict[str, Any]) -> str:
    counts = summary["breakdown"]["lost_segments"]
    rows = []
    for (label, seconds, _), key in zip(hours_rows(summary), [None, None, *counts]):
        rows.append([f"<td>{html.escape(label)}</td>", _cell(seconds, _seconds(seconds)), _cell(counts[key]) if key else "<td></td>"])
    return _table(("", "duration", "segments"), rows)


def _top(summary: dict[str, Any]) -> str:
    rows = []
    for k, row in enumerate(summary["breakdown"]["top_lost"]):
        item = dict(zip(TOP_FIELDS, row))
        rows.append(
            [
                f'<td title="{html.escape(str(item["audio_filepath"]))}">{k + 1}. {html.escape(recording_label(item["audio_filepath"]))}</td>',
                _cell(item["lost_s"], f"{item['lost_s']:,.1f} s"),
                _cell(item["speech_s"], f"{item['speech_s']:,.1f} s"),
                _cell(item["kept_s"], f"{item['kept_s']:,.1f} s"),
                _cell(item["windows"]),
                _cell(item["kept_windows"]),
            ]
        )
    head = ("recording", "speech lost (builder)", "speech", "kept window audio", "windows built", "windows kept")
    return _table(head, rows)


def render_page(summary: dict[str, Any], charts: list[tuple[str, str, bytes]]) -> str:
    """The page: totals, losses, the charts and the recordings that lost the most."""
    w = window_settings(summary)
    figures = "".join(
        f'<figure id="{stem}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{html.escape(caption)} (also {CHART_DIR}/{stem}.png)</figcaption></figure>"
        for stem, caption, png in charts
    )
    embedded = html.escape(orjson.dumps(summary).decode(), quote=False)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ALM windows: what was kept and lost</title>
<style>{STYLE}</style></head><body>
<h1>ALM windows: what was kept and lost</h1>
<p class="note">Target window {html.escape(str(w.get("target_window_duration")))} s, tolerance
{html.escape(str(w.get("tolerance")))}; every number below is a value of summary.json.</p>
<h2>Totals</h2>{_totals(summary)}
<h2>Kept and lost</h2>
<p class="note">The builder's reasons count the speech of each segment whose window it rejected
(the reference's <code>dur_lost_*</code>; no speaker and next segment bandwidth are parts of window
bounds). The overlap filter's is the audio of the windows it dropped (the reference's
<code>total_dur_window</code> less <code>filtered_dur</code>); those windows overlap kept ones.</p>
{_losses(summary)}
{figures}
<h2>Recordings that lost the most</h2>{_top(summary)}
<script type="application/json" id="summary">{embedded}</script>
</body></html>
"""
