"""Odd but valid data: processed as the reference does, counted, and optionally sorted.

Unsorted segments, overlapping segments and duplicate windows are not errors: by default
they go through the reference's rules unchanged (nothing rejected, parity kept), and the
summary counts the entries that have them so a user can decide on ``sort_segments``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.core.entry import process_entry
from alm_lhotse.execution.runner import run_job
from alm_lhotse.outputs.compat import render_entry

WCFG = WindowConfig()
SORTED = WindowConfig(sort_segments=True)
OCFG = OverlapConfig()


def segment(start: float, end: float, speaker: str) -> dict[str, Any]:
    return {
        "start": start, "end": end, "speaker": speaker, "text": "x",
        "metrics": {"bandwidth": 16000}, "words": [{"word": "x", "start": start, "end": end}],
    }


def conversation(name: str, segments: list[dict[str, Any]]) -> dict[str, Any]:
    return {"audio_filepath": f"/audio/{name}.wav", "audio_sample_rate": 16000, "segments": segments}


def turns(count: int = 20) -> list[dict[str, Any]]:
    """Alternating 9.5 s turns every 10 s: ten windows at the default parameters."""
    return [segment(10.0 * i, 10.0 * i + 9.5, "AB"[i % 2]) for i in range(count)]


def render(entry: dict[str, Any], wcfg: WindowConfig = WCFG) -> dict[str, Any]:
    return orjson.loads(render_entry(process_entry(entry, wcfg, OCFG), wcfg))


def summary_of(tmp_path: Path, entries: list[dict[str, Any]], wcfg: WindowConfig = WCFG) -> dict[str, Any]:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in entries))
    return run_job(path, tmp_path / f"out-{wcfg.sort_segments}", wcfg, OCFG, on_error="fail")


def shuffled(segments: list[dict[str, Any]], seed: int = 7) -> list[dict[str, Any]]:
    out = list(segments)
    random.Random(seed).shuffle(out)
    return out


def test_unsorted_segments_follow_file_order_by_default() -> None:
    """A window grows over the following segments in file order and ends at the last
    appended segment's end, even when an earlier one ends later (reference behaviour)."""
    segs = turns(14)
    segs[1], segs[5] = segs[5], segs[1]
    out = render(conversation("u", segs))
    first = out["windows"][0]["segments"]
    assert [s["start"] for s in first[:3]] == [0.0, 50.0, 20.0]
    assert out["total_dur_list_window_timestamps"][0] == [first[-1]["end"], 0.0]


def test_sort_option_equals_sorting_the_input_first() -> None:
    segs = turns(24)
    entry = conversation("s", shuffled(segs))
    assert render(entry) != render(conversation("s", segs))
    assert render(entry, SORTED) == render(conversation("s", segs))


def test_sort_is_stable_for_equal_starts() -> None:
    """Segments starting together keep their file order: the choice stays the user's."""
    segs = turns(16)
    twin = {**segment(30.0, 31.0, "C"), "text": "twin"}
    entry = conversation("t", [*segs[:3], twin, *segs[3:]])
    reordered = conversation("t", [*shuffled(segs[:3] + segs[4:]), segs[3], twin])
    out = render(reordered, SORTED)
    starting = [[s["text"] for s in w["segments"] if s["start"] == 30.0] for w in out["windows"]]
    assert ["x", "twin"] in starting
    assert render(entry, SORTED)["windows"] != out["windows"]


def test_overlapping_segments_are_kept_as_they_are() -> None:
    """Overlapping turns are not errors and not merged: windows hold both."""
    segs = turns(20)
    segs[4] = segment(38.0, 49.0, "B")
    out = render(conversation("o", segs))
    assert any(s["start"] == 38.0 for s in out["windows"][0]["segments"])


def test_duplicate_windows_both_survive_but_filtered_lists_one() -> None:
    segs = turns(20)
    entry = conversation("d", [segs[0], dict(segs[0]), *segs[1:]])
    out = render(entry)
    spans = [tuple(s) for s in out["total_dur_list_window_timestamps"]]
    assert spans[0] == spans[1]
    assert [tuple(s) for s in out["filtered"]].count(spans[0]) == 1
    kept_starts = [w["segments"][0]["start"] for w in out["filtered_windows"]]
    assert kept_starts.count(0.0) == 2


def test_summary_counts_odd_entries(tmp_path: Path) -> None:
    segs = turns(20)
    overlapping = list(segs)
    overlapping[6] = segment(55.0, 69.0, "A")
    entries = [
        conversation("plain", segs),
        conversation("unsorted", shuffled(segs)),
        conversation("overlap", overlapping),
        conversation("both", shuffled(overlapping)),
        conversation("dup", [segs[0], dict(segs[0]), *segs[1:]]),
        {**conversation("low-rate-unsorted", shuffled(segs)), "audio_sample_rate": 8000},
    ]
    for wcfg in (WCFG, SORTED):
        summary = summary_of(tmp_path, entries, wcfg)
        assert summary["rejected"] == 0
        assert summary["entries"] == 6
        assert summary["unsorted_entries"] == 3
        assert summary["overlapping_segment_entries"] == 3
        assert summary["duplicate_window_entries"] == 1
        assert summary["low_sample_rate_entries"] == 1


@pytest.mark.parametrize("wcfg", [WCFG, SORTED], ids=["as-is", "sorted"])
def test_odd_entries_outputs_match_entry_rendering(tmp_path: Path, wcfg: WindowConfig) -> None:
    """The job writes exactly what the core computes for each odd entry."""
    entries = [conversation("u", shuffled(turns(18))), conversation("d", [turns()[0], *turns()])]
    summary_of(tmp_path, entries, wcfg)
    lines = (tmp_path / f"out-{wcfg.sort_segments}" / "alm_output.jsonl").read_bytes().splitlines()
    assert [json.loads(x) for x in lines] == [render(e, wcfg) for e in entries]
