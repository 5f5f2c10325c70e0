"""The behaviours the reference's own tests check for its reader, writer, builder and
overlap stages, checked here against our implementation."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from alm_lhotse import (
    ManifestError,
    OverlapConfig,
    WindowConfig,
    process_entry,
    read_entries,
    run_job,
)
from alm_lhotse.outputs.compat import render_entry
from alm_lhotse.reading.discovery import discover_manifests


def segment(start: float, end: float, speaker: str, bandwidth: int = 8500, **extra: Any) -> dict[str, Any]:
    return {"start": start, "end": end, "speaker": speaker, "text": f"{speaker} talks", "metrics": {"bandwidth": bandwidth}, **extra}


def conversation(n: int = 40, speakers: int = 3, rate: int = 16000, bandwidth: int = 8500) -> dict[str, Any]:
    """Segments of 5 s every 6 s, speakers taking turns."""
    segs = [segment(6.0 * i, 6.0 * i + 5.0, f"spk{i % speakers}", bandwidth) for i in range(n)]
    return {"audio_filepath": "/audio/talk.wav", "audio_sample_rate": rate, "duration": 6.0 * n, "segments": segs}


def output(entry: dict[str, Any], wcfg: WindowConfig = WindowConfig(), ocfg: OverlapConfig = OverlapConfig()) -> dict:
    return orjson.loads(render_entry(process_entry(entry, wcfg, ocfg), wcfg))


def write_jsonl(path: Path, entries: list[dict[str, Any]], blank_lines: bool = False) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for e in entries:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
            if blank_lines:
                f.write("   \n\n")
    return path


# Reader


def test_reads_single_and_multiple_manifests(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [conversation(), conversation(5)])
    b = write_jsonl(tmp_path / "b.jsonl", [conversation(7)])
    assert [len(e["segments"]) for e in read_entries(a)] == [40, 5]
    assert [len(e["segments"]) for e in read_entries([a, b])] == [40, 5, 7]


def test_one_entry_per_line_and_blank_lines_skipped(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [conversation(3)] * 4, blank_lines=True)
    assert len(list(read_entries(path))) == 4


def test_empty_manifest(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    assert list(read_entries(tmp_path / "empty.jsonl")) == []


def test_nested_data_and_unicode_survive(tmp_path: Path) -> None:
    entry = conversation(3)
    entry["segments"][0]["text"] = "こんにちは, café déjà vu"
    entry["segments"][0]["metrics"] = {"bandwidth": 9100, "snr": 21.5, "nested": {"a": [1, 2]}}
    path = write_jsonl(tmp_path / "u.jsonl", [entry])
    assert next(read_entries(path)) == entry


def test_repeat_factor_reads_a_path_n_times(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [conversation(3)])
    assert len(list(read_entries([path, path, path]))) == 3


def test_directory_discovery_is_recursive_sorted_and_ignores_other_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    write_jsonl(tmp_path / "b" / "x.jsonl", [conversation(1)])
    write_jsonl(tmp_path / "a" / "deep" / "y.json", [conversation(2)])
    with gzip.open(tmp_path / "a" / "z.jsonl.gz", "wt") as f:
        f.write(json.dumps(conversation(4)) + "\n")
    (tmp_path / "a" / "notes.txt").write_text("skip_me")
    files = discover_manifests(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a/deep/y.json", "a/z.jsonl.gz", "b/x.jsonl"]
    assert [len(e["segments"]) for e in read_entries(tmp_path)] == [2, 4, 1]


def test_nested_fixture_directory(fixtures_dir: Path, tmp_path: Path) -> None:
    nested = fixtures_dir / "nested_manifests"
    assert len(discover_manifests(nested)) == 4
    assert len(list(read_entries(nested / "subdir_a"))) == 10
    summary = run_job(nested, tmp_path, WindowConfig(), OverlapConfig(), lhotse=False)
    assert (summary["entries"], summary["windows"], summary["filtered_windows"]) == (20, 724, 100)
    assert summary["filtered_dur"] == 12142.0


# Writer


def test_written_lines_round_trip_in_input_order(sample_manifest: Path, tmp_path: Path) -> None:
    run_job(sample_manifest, tmp_path, WindowConfig(), OverlapConfig(), lhotse=False)
    lines = (tmp_path / "alm_output.jsonl").read_text(encoding="utf-8").splitlines()
    entries = list(read_entries(sample_manifest))
    assert [json.loads(x)["audio_filepath"] for x in lines] == [e["audio_filepath"] for e in entries]
    first = json.loads(lines[0])
    assert first["windows"][0]["segments"] and isinstance(first["stats"], dict)


def test_unicode_written_as_utf8(tmp_path: Path) -> None:
    entry = conversation()
    for seg in entry["segments"]:
        seg["text"] = "日本語のテキスト é"
    path = write_jsonl(tmp_path / "in.jsonl", [entry])
    run_job(path, tmp_path / "out", WindowConfig(), OverlapConfig(), lhotse=False)
    out = json.loads((tmp_path / "out" / "alm_output.jsonl").read_bytes().decode("utf-8"))
    assert out["windows"][0]["segments"][0]["text"] == "日本語のテキスト é"


# Builder


def test_sample_fixture_totals(sample_manifest: Path) -> None:
    results = [process_entry(e) for e in read_entries(sample_manifest)]
    assert sum(len(r.windows) for r in results) == 181
    assert sum(len(r.kept_windows) for r in results) == 25
    assert sum(r.filtered_dur for r in results) == 3035.5
    assert sum(r.built.truncation_events for r in results) == 92


def test_creates_windows_with_stats() -> None:
    out = output(conversation())
    assert out["windows"] and out["stats"]["total_segments"] == 40
    assert all(108.0 <= w["segments"][-1]["end"] - w["segments"][0]["start"] <= 132.0 for w in out["windows"])


def test_low_sample_rate_keeps_only_the_reference_fields() -> None:
    out = output(conversation(rate=8000))
    assert out["windows"] == [] and out["stats"]["lost_sr"] == 40 and out["truncation_events"] == 0
    assert "duration" not in out and out["audio_filepath"] == "/audio/talk.wav"


def test_low_bandwidth_segments_are_lost() -> None:
    out = output(conversation(bandwidth=4000))
    assert out["windows"] == [] and out["stats"]["lost_bw"] == 40


def test_single_speaker_gives_no_windows() -> None:
    out = output(conversation(speakers=1))
    assert out["windows"] == [] and out["stats"]["lost_spk"] > 0


def test_empty_segments() -> None:
    entry = {**conversation(), "segments": []}
    out = output(entry)
    assert out["windows"] == [] and out["stats"]["total_segments"] == 0 and out["filtered_dur"] == 0.0


def test_drop_fields() -> None:
    entry = conversation()
    for seg in entry["segments"]:
        seg["words"] = [{"word": "w", "start": seg["start"], "end": seg["end"]}]
    entry["words"] = ["top-level"]
    out = output(entry)
    assert "words" not in out and "segments" not in out
    assert all("words" not in s for w in out["windows"] for s in w["segments"])
    kept = output(entry, WindowConfig(drop_fields="", drop_fields_top_level="words"))
    assert "segments" in kept and all("words" in s for s in kept["windows"][0]["segments"])


def test_different_sample_rates_process(sample_manifest: Path) -> None:
    rates = {e["audio_sample_rate"] for e in read_entries(sample_manifest)}
    assert len(rates) > 1
    for entry in read_entries(sample_manifest):
        output(entry)


@pytest.mark.parametrize("missing", ["segments", "audio_sample_rate", "audio_filepath"])
def test_missing_required_field_raises_value_error(missing: str, tmp_path: Path) -> None:
    entry = conversation()
    del entry[missing]
    with pytest.raises(ValueError, match=missing):
        process_entry(entry)
    path = write_jsonl(tmp_path / "m.jsonl", [conversation(), entry])
    with pytest.raises(ManifestError, match=rf"m.jsonl:2: field '{missing}'"):
        list(read_entries(path))


def test_truncation_cuts_at_word_boundary() -> None:
    segs = [segment(0.0, 60.0, "a"), segment(60.0, 100.0, "b")]
    words = [{"word": f"w{k}", "start": 100.0 + 10 * k, "end": 100.0 + 10 * k + 9} for k in range(5)]
    segs.append(segment(100.0, 150.0, "a", words=words))
    entry = {"audio_filepath": "x.wav", "audio_sample_rate": 16000, "segments": segs}
    out = output(entry, WindowConfig(drop_fields=""))
    last = out["windows"][0]["segments"][-1]
    assert last["end"] == 129.0 and last["text"] == "w0 w1 w2" and len(last["words"]) == 3
    assert out["truncation_events"] == 1
    assert output(entry, WindowConfig(truncation=False))["windows"] == []


# Overlap


def test_overlap_keeps_fewer_windows_when_stricter() -> None:
    entry = conversation(60)
    counts = [len(output(entry, ocfg=OverlapConfig(p))["filtered_windows"]) for p in (0, 50, 100)]
    assert counts[0] <= counts[1] <= counts[2] <= len(output(entry)["windows"])


def test_overlap_hundred_only_drops_contained_windows() -> None:
    """At 100 % the reference still decides between two windows when one lies wholly
    inside the other (ratio 1.0), so only such windows are dropped."""
    out = output(conversation(60), ocfg=OverlapConfig(100))
    kept = {tuple(x) for x in out["filtered"]}
    spans = [tuple(x) for x in out["total_dur_list_window_timestamps"]]
    for end, start in spans:
        if (end, start) not in kept:
            others = [(e, s) for e, s in spans if (e, s) != (end, start)]
            assert any((s <= start and end <= e) or (start <= s and e <= end) for e, s in others)


def test_overlap_zero_leaves_no_overlapping_pair() -> None:
    out = output(conversation(60), ocfg=OverlapConfig(0))
    spans = sorted((s, e) for e, s in out["filtered"])
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))


def test_no_windows_passes_through_with_defaults() -> None:
    out = output({**conversation(), "segments": [], "manifest_filepath": "keep-me"})
    assert out["filtered_windows"] == [] and out["filtered"] == []
    assert out["manifest_filepath"] == "keep-me" and out["swift_filepath"] is None


@pytest.mark.parametrize("kwargs", [{"overlap_percentage": -1}, {"overlap_percentage": 101}, {"target_duration": -1}, {"target_duration": 0}])
def test_invalid_overlap_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        OverlapConfig(**kwargs)


def test_durations_are_consistent() -> None:
    out = output(conversation(60))
    assert out["filtered_dur"] == sum(out["filtered_dur_list"]) >= 0
    assert out["total_dur_window"] == sum(out["total_dur_list_window"])
    assert len(out["filtered_windows"]) == len(out["filtered"])
