"""Property-based tests over generated manifests (hypothesis, derandomized for CI).

Generated entries are small but hostile in the reference's ways: overlapping and
unsorted segments, missing or empty speakers, ``no-speaker``, segments without
``metrics``, words spilling past their segment, low sample rates. Windows are short
(target 20-30 s) so a few dozen segments exercise every rule.

Invariants, all on what a user gets (the rendered output entries):
- nothing crashes;
- every kept window lasts within ``[min_duration, max_duration]`` and holds between
  ``min_speakers`` and ``max_speakers`` distinct speakers, none of them ``no-speaker``;
- no two kept spans (``filtered``) that overlap do so at or above the threshold;
- every segment is accounted for exactly once: for an entry at or above the minimum
  sample rate each segment either starts a valid window or is counted in ``lost_bw``,
  ``lost_win`` or ``lost_spk`` (``lost_no_spkr`` and ``lost_next_seg_bm`` are subsets of
  ``lost_win``); below it, ``lost_sr`` counts every segment and nothing else is counted;
- ``run_job`` gives byte-identical outputs for any partition size and worker count.
"""

from __future__ import annotations

import gzip
import json
import math
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.core.entry import process_entry
from alm_lhotse.execution.runner import run_job
from alm_lhotse.outputs.compat import render_entry
from alm_lhotse.outputs.lhotse_manifests import num_samples, path_stem

SPEAKERS = ["A", "B", "C", "D", "E", "F", "no-speaker", "", None]
BANDWIDTHS = [None, 4000, 7999, 8000, 16000]
RATES = [8000, 15999, 16000, 44100]
PROPERTY = settings(
    max_examples=80, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
JOB_PROPERTY = settings(PROPERTY, max_examples=15, suppress_health_check=list(HealthCheck))


def _time(x: float) -> float:
    return round(x, 3)


@st.composite
def segments(draw: st.DrawFn, max_count: int = 30) -> list[dict[str, Any]]:
    """A conversation: mostly consecutive turns, some overlapping, some shuffled."""
    count = draw(st.integers(0, max_count) | st.just(max_count))
    out = []
    cursor = 0.0
    for _ in range(count):
        gap = draw(st.sampled_from([0.0, 0.0, 0.0, 0.3, 0.3, 1.5, -1.0, -4.0]))
        start = _time(max(0.0, cursor + gap))
        end = _time(start + draw(st.sampled_from([0.0, 0.4, 2.0, 2.0, 3.7, 3.7, 6.0, 6.0, 11.0, 35.0])))
        seg: dict[str, Any] = {"start": start, "end": end, "text": "t"}
        speaker = draw(st.sampled_from(SPEAKERS + ["A", "B", "C"] * 6))
        if speaker is not None or draw(st.booleans()):
            seg["speaker"] = speaker
        bw = draw(st.sampled_from(BANDWIDTHS + [16000] * 15))
        if bw is not None:
            seg["metrics"] = {"bandwidth": bw}
        n_words = draw(st.integers(0, 3))
        if n_words:
            spill = draw(st.sampled_from([0.0, 0.0, 1.2]))
            step = (end - start + spill) / n_words
            seg["words"] = [
                {"word": f"w{k}", "start": _time(start + k * step), "end": _time(start + (k + 1) * step)}
                for k in range(n_words)
            ]
        out.append(seg)
        cursor = max(cursor, end)
    if out and draw(st.integers(0, 5)) == 0:
        i = draw(st.integers(0, len(out) - 1))
        j = draw(st.integers(0, len(out) - 1))
        out[i], out[j] = out[j], out[i]
    return out


@st.composite
def entries(draw: st.DrawFn, max_segments: int = 30) -> dict[str, Any]:
    segs = draw(segments(max_segments))
    return {
        "audio_filepath": f"/audio/{draw(st.integers(0, 999))}.wav",
        "audio_sample_rate": draw(st.sampled_from(RATES + [16000] * 8)),
        "duration": max([s["end"] for s in segs], default=0.0),
        "segments": segs,
    }


@st.composite
def configs(draw: st.DrawFn) -> tuple[WindowConfig, OverlapConfig]:
    target = draw(st.sampled_from([20.0, 30.0]))
    min_spk = draw(st.integers(1, 3))
    wcfg = WindowConfig(
        target_window_duration=target,
        tolerance=draw(st.sampled_from([0.1, 0.25])),
        min_speakers=min_spk,
        max_speakers=draw(st.integers(min_spk, 5)),
        truncation=draw(st.booleans()),
        sort_segments=draw(st.booleans()),
    )
    ocfg = OverlapConfig(overlap_percentage=draw(st.sampled_from([0, 25, 50, 100])), target_duration=target)
    return wcfg, ocfg


def render(entry: dict[str, Any], wcfg: WindowConfig, ocfg: OverlapConfig) -> dict[str, Any]:
    return orjson.loads(render_entry(process_entry(entry, wcfg, ocfg), wcfg))


def window_speakers(window: dict[str, Any]) -> set[str]:
    """Speakers as the reference counts them: every non-empty label of a stored segment."""
    return {s["speaker"] for s in window["segments"] if s.get("speaker")}


@PROPERTY
@given(entries(), configs())
def test_kept_windows_respect_duration_and_speaker_limits(entry: dict[str, Any], cfgs: tuple) -> None:
    wcfg, ocfg = cfgs
    out = render(entry, wcfg, ocfg)
    for window in out["filtered_windows"]:
        segs = window["segments"]
        assert len(segs) >= 2
        duration = segs[-1]["end"] - segs[0]["start"]
        assert wcfg.min_duration <= duration <= wcfg.max_duration
        speakers = window_speakers(window)
        assert wcfg.min_speakers <= len(speakers) <= wcfg.max_speakers
        assert "no-speaker" not in speakers
        assert all(s.get("metrics", {}).get("bandwidth", 0) >= wcfg.min_bandwidth for s in segs)
        assert len(window["speaker_durations"]) == 5
    kept = {(w["segments"][-1]["end"], w["segments"][0]["start"]) for w in out["filtered_windows"]}
    assert {tuple(span) for span in out["filtered"]} == kept


def overlap_ratio(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The reference's ratio for ``(start, end)`` spans ``a`` before ``b``."""
    overlap = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    shorter = min(a[1] - a[0], b[1] - b[0])
    return overlap / shorter if shorter else 0


@PROPERTY
@given(entries(), configs())
def test_no_kept_pair_overlaps_at_or_above_the_threshold(entry: dict[str, Any], cfgs: tuple) -> None:
    wcfg, ocfg = cfgs
    out = render(entry, wcfg, ocfg)
    spans = sorted((start, end) for end, start in out["filtered"])
    assert len(set(spans)) == len(spans)
    for i, a in enumerate(spans):
        for b in spans[i + 1:]:
            if min(a[1], b[1]) - max(a[0], b[0]) > 0:
                assert overlap_ratio(a, b) < ocfg.threshold, (a, b)


@PROPERTY
@given(entries(), configs())
def test_every_segment_is_accounted_for(entry: dict[str, Any], cfgs: tuple) -> None:
    wcfg, ocfg = cfgs
    out = render(entry, wcfg, ocfg)
    stats = out["stats"]
    total = len(entry["segments"])
    durs = [s["end"] - s["start"] for s in entry["segments"]]
    assert stats["total_segments"] == total
    assert math.isclose(stats["total_dur"], sum(durs), abs_tol=1e-9)
    if entry["audio_sample_rate"] < wcfg.min_sample_rate:
        assert stats["lost_sr"] == total
        assert stats["lost_bw"] == stats["lost_win"] == stats["lost_spk"] == 0
        assert out["windows"] == [] and out["filtered_windows"] == []
        assert "segments" not in out and "duration" not in out
        return
    windows = len(out["windows"])
    assert stats["lost_sr"] == 0
    assert windows + stats["lost_bw"] + stats["lost_win"] + stats["lost_spk"] == total
    assert stats["lost_no_spkr"] + stats["lost_next_seg_bm"] <= stats["lost_win"]
    assert len(stats["lost_win_full_data"]) == stats["lost_win"]
    window_durs = [w["segments"][0]["end"] - w["segments"][0]["start"] for w in out["windows"]]
    accounted = sum(window_durs) + stats["dur_lost_bw"] + stats["dur_lost_win"] + stats["dur_lost_spk"]
    assert math.isclose(accounted, stats["total_dur"], rel_tol=1e-9, abs_tol=1e-6)
    assert len(out["filtered_windows"]) <= windows
    if windows:
        assert math.isclose(out["total_dur_window"], sum(d for d in out["total_dur_list_window"]), abs_tol=1e-9)
        assert math.isclose(out["filtered_dur"], sum(out["filtered_dur_list"]), abs_tol=1e-9)


def _manifest(tmp: Path, items: list[dict[str, Any]]) -> Path:
    path = tmp / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in items))
    return path


def _outputs(directory: Path) -> dict[str, bytes]:
    """Every output file's content; gzip member boundaries follow the partitioning, so
    compressed files are compared decompressed."""
    return {
        str(p.relative_to(directory)): gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _totals(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in ("timings", "wall_s")}


@JOB_PROPERTY
@given(st.lists(entries(16), min_size=2, max_size=6), configs(), st.integers(200, 3000), st.integers(2, 3))
def test_results_independent_of_partition_size_and_workers(
    tmp_path_factory: Any, items: list, cfgs: tuple, partition_bytes: int, jobs: int
) -> None:
    wcfg, ocfg = cfgs
    tmp = tmp_path_factory.mktemp("job")
    path = _manifest(tmp, items)
    base = run_job(path, tmp / "one", wcfg, ocfg, jobs=1)
    split = run_job(path, tmp / "split", wcfg, ocfg, jobs=1, partition_bytes=partition_bytes)
    parallel = run_job(path, tmp / "parallel", wcfg, ocfg, jobs=jobs, partition_bytes=partition_bytes)
    expected = _outputs(tmp / "one")
    assert _outputs(tmp / "split") == expected
    assert _outputs(tmp / "parallel") == expected
    assert _totals(split) == _totals(base) == _totals(parallel)
    lines = [json.loads(x) for x in expected["alm_output.jsonl"].splitlines()]
    assert lines == [render(e, wcfg, ocfg) for e in items]
    assert base["entries"] == len(items)
    assert base["windows"] == sum(len(x["windows"]) for x in lines)
    assert base["filtered_windows"] == sum(len(x["filtered_windows"]) for x in lines)
    assert base["truncation_events"] == sum(x["truncation_events"] for x in lines)
    assert base["filtered_dur"] == sum(x["filtered_dur"] for x in lines)


@PROPERTY
@given(st.lists(st.sampled_from(["", ".", "..", "a", "b.wav", ".hidden", "x.", "a.b.c", "..wav", " s p"]), max_size=5), st.booleans())
def test_path_stem_is_the_path_objects(parts: list[str], absolute: bool) -> None:
    path = ("/" if absolute else "") + "/".join(parts)
    assert path_stem(path) == PurePosixPath(path).stem


@PROPERTY
@given(
    st.one_of(st.floats(min_value=0, max_value=1e7, allow_nan=False), st.integers(0, 10**7), st.sampled_from([0.1, 2.5, 1 / 3])),
    st.sampled_from([8000, 16000, 22050, 44100, 48000, 8000.0]),
)
def test_num_samples_rounds_half_up_after_eight_decimals(duration: Any, rate: Any) -> None:
    expected = int(Decimal(round(duration * rate, 8)).quantize(0, rounding=ROUND_HALF_UP))
    assert num_samples(duration, rate) == expected
