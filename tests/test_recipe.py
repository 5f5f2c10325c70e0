"""prepare_alm: Lhotse recipe conventions, Lhotse validation of every manifest, audio-aware input."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from lhotse import (
    CutSet,
    RecordingSet,
    SupervisionSet,
    load_manifest,
    validate_recordings_and_supervisions,
)
from lhotse.qa import validate

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.errors import ManifestError
from alm_lhotse.execution.runner import run_job
from alm_lhotse.recipe import manifest_paths, prepare_alm
from tests.test_audio import write_conversations


def _validate_written(out: Path) -> tuple[RecordingSet, SupervisionSet, CutSet]:
    paths = manifest_paths(out)
    recordings, supervisions = load_manifest(paths["recordings"]), load_manifest(paths["supervisions"])
    cuts = CutSet.from_file(paths["cuts"])
    validate_recordings_and_supervisions(recordings, supervisions)
    validate(cuts)
    return recordings, supervisions, cuts


def test_sample_fixture_follows_recipe_conventions(sample_manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = prepare_alm(sample_manifest, out, progress=False)
    assert list(result) == ["all"]
    part = result["all"]
    assert set(part) == {"recordings", "supervisions", "cuts"}
    assert isinstance(part["recordings"], RecordingSet) and len(part["recordings"]) == 5
    assert isinstance(part["supervisions"], SupervisionSet)
    cuts = part["cuts"].to_eager()
    assert len(cuts) == 25
    assert sum(c.duration for c in cuts) == pytest.approx(3035.5)
    _, _, written = _validate_written(out)
    assert list(written.ids) == list(cuts.ids)
    summary = orjson.loads((out / "prepare_summary.json").read_bytes())
    assert summary["filtered_windows"] == 25 and summary["lhotse_fixes"]["windows_removed"] == 0
    assert (out / "alm_output.jsonl").exists() and (out / "rejects.jsonl").read_bytes() == b""


def test_compatible_output_is_the_cores(sample_manifest: Path, tmp_path: Path) -> None:
    prepare_alm(sample_manifest, tmp_path / "recipe", progress=False, target_window_duration=60.0)
    run_job(sample_manifest, tmp_path / "core", WindowConfig(target_window_duration=60.0), OverlapConfig())
    assert (tmp_path / "recipe/alm_output.jsonl").read_bytes() == (tmp_path / "core/alm_output.jsonl").read_bytes()


def test_without_output_dir_everything_is_in_memory(fixtures_dir: Path, tmp_path: Path) -> None:
    result = prepare_alm(fixtures_dir / "nested_manifests", num_jobs=2, progress=False)["all"]
    assert len(result["cuts"]) == 100 and len(result["recordings"]) == 20
    assert result["cuts"].is_lazy is False


def test_options_are_passed_and_misspelt_ones_refused(sample_manifest: Path) -> None:
    few = prepare_alm(sample_manifest, progress=False, overlap_percentage=0, target_window_duration=60.0)
    assert all(54.0 <= c.duration <= 66.0 for c in few["all"]["cuts"])
    with pytest.raises(TypeError, match="target_window"):
        prepare_alm(sample_manifest, progress=False, target_window=60.0)


def test_bad_lines_fail_or_are_rejected(sample_manifest: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(sample_manifest.read_bytes() + b'{"audio_filepath": "a.wav", "segments": []}\n')
    with pytest.raises(ManifestError) as err:
        prepare_alm(bad, tmp_path / "fail", progress=False)
    assert (err.value.line, err.value.field) == (6, "audio_sample_rate")
    result = prepare_alm(bad, tmp_path / "skip", on_error="skip", progress=False)
    assert len(result["all"]["recordings"]) == 5
    rejects = [orjson.loads(x) for x in (tmp_path / "skip/rejects.jsonl").read_bytes().splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(6, "audio_sample_rate")]


def test_everything_rejected_gives_empty_manifests(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"not json\n")
    part = prepare_alm(bad, tmp_path / "out", on_error="skip", progress=False)["all"]
    assert len(part["recordings"]) == 0 and len(part["cuts"].to_eager()) == 0


def test_windows_past_a_short_recording_are_fixed_away(tmp_path: Path) -> None:
    manifest = write_conversations(tmp_path / "data", count=1, seconds=260.0)
    entry = orjson.loads(manifest.read_bytes())
    entry["duration"] = 200.0  # the manifest claims less audio than its segments cover
    manifest.write_bytes(orjson.dumps(entry) + b"\n")
    out = tmp_path / "out"
    part = prepare_alm(manifest, out, progress=False)["all"]
    fixes = orjson.loads((out / "prepare_summary.json").read_bytes())["lhotse_fixes"]
    assert fixes["supervisions_removed"] > 0 and fixes["windows_removed"] > 0
    kept = part["cuts"].to_eager()
    assert len(kept) > 0 and all(c.end <= 200.0 for c in kept)
    _validate_written(out)


def test_rate_and_duration_from_audio_headers(tmp_path: Path) -> None:
    manifest = write_conversations(tmp_path / "data", omit=("audio_sample_rate", "duration"))
    part = prepare_alm(manifest, tmp_path / "out", num_jobs=2, progress=False)["all"]
    assert {r.sampling_rate for r in part["recordings"]} == {16000}
    assert {r.duration for r in part["recordings"]} == {260.0}
    assert len(part["cuts"].to_eager()) > 0
    with pytest.raises(ManifestError, match="audio_sample_rate"):
        prepare_alm(manifest, tmp_path / "off", read_audio_headers=False, progress=False)


def test_estimated_bandwidth_decides_which_audio_gives_windows(tmp_path: Path) -> None:
    """Narrow-band audio (noise low-passed at 4 kHz) falls below min_bandwidth=8000; full-band 16 kHz reaches 8000."""
    narrow = write_conversations(tmp_path / "narrow", count=1, cutoff=4000, with_bandwidth=False)
    wide = write_conversations(tmp_path / "wide", count=1, with_bandwidth=False)
    assert len(prepare_alm(wide, progress=False)["all"]["cuts"]) == 0  # no metrics: bandwidth counts as 0
    kept = prepare_alm(wide, tmp_path / "w", estimate_bandwidth=True, progress=False)["all"]["cuts"].to_eager()
    assert len(kept) > 0
    bandwidths = {s.custom["metrics"]["bandwidth"] for c in kept for s in c.supervisions}
    assert bandwidths == {8000}
    assert len(prepare_alm(narrow, estimate_bandwidth=True, progress=False)["all"]["cuts"]) == 0
    line = orjson.loads((tmp_path / "w/alm_output.jsonl").read_bytes().splitlines()[0])
    assert line["windows"] and all(s["metrics"]["bandwidth"] == 8000 for w in line["windows"] for s in w["segments"])
