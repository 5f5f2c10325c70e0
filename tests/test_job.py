"""run_job: the same outputs whatever the process count, chunk size and write-out size."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from alm_lhotse import ManifestError, OverlapConfig, WindowConfig, run_job
from alm_lhotse.execution import runner as job_module
from alm_lhotse.outputs.streams import FINAL_NAMES

OUTPUTS = sorted(FINAL_NAMES.values())


def _outputs(directory: Path) -> dict[str, bytes]:
    """Output contents; gzip streams decompressed (their member boundaries follow the chunks)."""
    read = {True: lambda p: gzip.decompress(p.read_bytes()), False: Path.read_bytes}
    return {name: read[name.endswith(".gz")](directory / name) for name in OUTPUTS}


def test_outputs_identical_across_jobs_and_chunks(fixtures_dir: Path, tmp_path: Path) -> None:
    nested = fixtures_dir / "nested_manifests"
    runs = [(1, None), (2, 20_000), (2, 1), (1, 50_000)]
    results = []
    for k, (jobs, chunk) in enumerate(runs):
        summary = run_job(nested, tmp_path / str(k), WindowConfig(), OverlapConfig(), jobs=jobs, partition_bytes=chunk)
        assert (summary["windows"], summary["filtered_windows"], summary["filtered_dur"]) == (724, 100, 12142.0)
        results.append(_outputs(tmp_path / str(k)))
    assert all(r == results[0] for r in results[1:])
    assert results[0]["alm_output.jsonl"].count(b"\n") == 20


def test_failure_leaves_no_outputs(fixtures_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "in" / "z_bad.jsonl"
    bad.parent.mkdir()
    bad.write_text('{"audio_filepath": "a.wav", "segments": []}\n')
    (tmp_path / "in" / "a.jsonl").write_bytes((fixtures_dir / "sample_input.jsonl").read_bytes())
    for jobs in (1, 2):
        with pytest.raises(ManifestError, match="z_bad.jsonl:1: field 'audio_sample_rate'"):
            run_job(tmp_path / "in", tmp_path / "out", WindowConfig(), OverlapConfig(), jobs=jobs, partition_bytes=1)
        left = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] if (tmp_path / "out").exists() else []
        assert left == []


def test_large_chunks_write_in_parts_with_the_same_result(
    fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzipped manifest is one chunk however large; it hands over its output in parts
    (here after every entry) and the outputs are those of a run that does not."""
    manifests = tmp_path / "in"
    manifests.mkdir()
    sample = (fixtures_dir / "sample_input.jsonl").read_bytes()
    (manifests / "a.jsonl.gz").write_bytes(gzip.compress(sample * 3))
    (manifests / "b.jsonl").write_bytes(sample)
    expected = run_job(manifests, tmp_path / "whole", WindowConfig(), OverlapConfig(), jobs=1)
    monkeypatch.setattr(job_module, "FLUSH_BYTES", 1)
    for jobs in (1, 2):
        out = tmp_path / f"parts{jobs}"
        summary = run_job(manifests, out, WindowConfig(), OverlapConfig(), jobs=jobs, partition_bytes=5_000)
        assert summary["windows"] == expected["windows"]
        assert _outputs(out) == _outputs(tmp_path / "whole")
