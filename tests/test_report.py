"""report.html and summary.json's breakdown: the numbers against the reference's own
statistics in alm_output.jsonl, the page's numbers against the summary, the page drawn
by a real browser (headless Chromium), and ``lhotse-alm report``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lhotse.bin.modes.cli_base import cli

from alm_lhotse import cli as _registers_commands  # noqa: F401
from alm_lhotse.recipe import RECIPE_SUMMARY, prepare_alm
from alm_lhotse.report import tally
from alm_lhotse.report.charts import CHARTS
from alm_lhotse.report.page import CHART_DIR, REPORT_FILE

SAMPLE = Path(__file__).resolve().parents[1] / "alm_lhotse" / "data" / "sample_manifest.jsonl"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared sample with a short target, so windows are lost for several reasons."""
    out = tmp_path_factory.mktemp("report") / "out"
    prepare_alm(SAMPLE, out, progress=False, target_window_duration=30, tolerance=0.2, max_speakers=2)
    assert CliRunner().invoke(cli, ["report", str(out)]).exit_code == 0
    return out


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / RECIPE_SUMMARY).read_text())


def test_breakdown_equals_the_reference_statistics(run: Path) -> None:
    """Losses are the sums of the reference's per-entry dur_lost_* and window totals."""
    summary = _summary(run)
    b = summary["breakdown"]
    entries = [json.loads(line) for line in (run / "alm_output.jsonl").read_text().splitlines()]
    for stat, name in tally.BUILDER_REASONS:
        assert b["lost_dur"][name] == sum(e["stats"][f"dur_{stat}"] for e in entries)
        assert b["lost_segments"][name] == sum(e["stats"][stat] for e in entries)
    assert b["speech_dur"] == sum(e["stats"]["total_dur"] for e in entries)
    dropped = sum(e.get("total_dur_window", 0.0) - e.get("filtered_dur", 0.0) for e in entries)
    assert b["lost_dur"][tally.OVERLAP] == pytest.approx(dropped)
    assert sum(b["lost_dur"].values()) > b["lost_dur"][tally.OVERLAP] > 0  # the builder lost some too
    kept = [w for e in entries for w in e["filtered_windows"]]
    assert sum(b["kept_durations"].values()) == sum(b["speakers_per_window"].values()) == len(kept)
    assert all(24 <= int(second) <= 36 for second in b["kept_durations"])
    assert set(b["speakers_per_window"]) <= {"1", "2"}
    assert b["truncated_windows"] <= summary["filtered_windows"]
    by_path = {e["audio_filepath"]: e["stats"] for e in entries}
    losses = sorted((sum(s[f"dur_{r}"] for r in ("lost_bw", "lost_sr", "lost_spk", "lost_win")) for s in by_path.values()), reverse=True)
    assert [row[0] for row in b["top_lost"]] == [x for x in losses if x > 0][: tally.TOP_RECORDINGS]


def test_top_list_stays_bounded() -> None:
    """Whatever the number of entries, a breakdown keeps TOP_RECORDINGS rows, the largest."""
    parts = []
    for p in range(3):
        b = tally.new_breakdown()
        for k in range(50):
            b["top_lost"].append([float(k * 3 + p), f"r{p}-{k}", 1.0, 0.0, 1, 0])
            b["top_lost"].sort(key=lambda row: -row[0])
            del b["top_lost"][tally.TOP_RECORDINGS :]
        parts.append(b)
    merged = tally.merge_breakdowns(parts)["top_lost"]
    assert [row[0] for row in merged] == sorted(range(150), reverse=True)[: tally.TOP_RECORDINGS]


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: list[Any] = []
        self.images: list[str] = []
        self.summary = ""
        self._in_summary = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if "data-value" in a:
            self.values.append(json.loads(a["data-value"]))
        if tag == "img":
            self.images.append(a["src"])
        self._in_summary = tag == "script" and a.get("id") == "summary"

    def handle_data(self, data: str) -> None:
        if self._in_summary:
            self.summary += data


def _numbers(value: Any) -> list:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def test_page_is_self_contained_and_its_numbers_are_the_summary(run: Path) -> None:
    page = (run / REPORT_FILE).read_text()
    cells = _Cells()
    cells.feed(page)
    summary = _summary(run)
    assert json.loads(cells.summary) == summary
    known = _numbers(summary)
    assert cells.values and all(v in known for v in cells.values)
    assert summary["filtered_dur"] in cells.values and summary["breakdown"]["lost_dur"]["overlap_filter"] in cells.values
    assert len(cells.images) == len(CHARTS) and all(src.startswith("data:image/png;base64,") for src in cells.images)
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # nothing loaded from elsewhere
    for stem, _, _ in CHARTS:
        assert (run / CHART_DIR / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command_regenerates_and_fails_plainly(run: Path, tmp_path: Path) -> None:
    (run / REPORT_FILE).unlink()
    result = CliRunner().invoke(cli, ["report", str(run)])
    assert result.exit_code == 0 and (run / REPORT_FILE).is_file()
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith("Error: no summary.json") and "Traceback" not in result.output


def _chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but chromium is not installed (Debian package chromium)")
        pytest.skip("chromium not installed (Debian package chromium): the report is not rendered")
    return CHROMIUM


def _browse(tmp_path: Path, *args: str) -> str:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip
    done = subprocess.run([_chromium(), *flags, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_browser_draws_every_chart(run: Path, tmp_path: Path) -> None:
    """Chromium loads the page offline; each chart image decodes to its full size, and
    the screenshot is not blank."""
    probe = tmp_path / "probe.html"
    script = (
        "<script>addEventListener('load',()=>{document.body.setAttribute('data-drawn',"
        "JSON.stringify([...document.images].map(i=>[i.complete,i.naturalWidth,i.naturalHeight])))})</script>"
    )
    probe.write_text((run / REPORT_FILE).read_text().replace("</body>", script + "</body>"))
    dom = _browse(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    drawn = json.loads(re.search(r'data-drawn="([^"]*)"', dom).group(1).replace("&quot;", '"'))
    assert len(drawn) == len(CHARTS) and all(ok and w > 300 and h > 150 for ok, w, h in drawn)
    shot = tmp_path / "shot.png"
    _browse(tmp_path, "--window-size=1000,2400", f"--screenshot={shot}", (run / REPORT_FILE).as_uri())
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # charts drawn, not a blank page
    assert any(abs(r - 0x2A) < 8 and abs(g - 0x7A) < 8 and abs(b - 0xB0) < 8 for _, (r, g, b) in colours)  # kept bars
