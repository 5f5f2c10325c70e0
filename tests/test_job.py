"""run_job: the same outputs whatever the process count, chunk size and write-out size."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from alm_lhotse import ManifestError, OverlapConfig, WindowConfig, run_job
from alm_lhotse.execution import runner as job_module
from alm_lhotse.errors import InvalidEntry
from alm_lhotse.execution.loop import process_slices
from alm_lhotse.execution.partitions import plan_partitions
from alm_lhotse.outputs.compat import COMPAT
from alm_lhotse.outputs.registry import WINDOWS, Output, ProcessedEntry
from alm_lhotse.outputs.streams import CONVERT_STREAMS, FINAL_NAMES, STREAMS, WINDOW_STREAMS, Sinks
from alm_lhotse.outputs.streams import OUTPUTS as OUTPUTS_REGISTERED
from alm_lhotse.reading.discovery import discover_manifests
from alm_lhotse.reading.reader import ManifestLine

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


def test_outputs_are_registered_once() -> None:
    """Every output has its own part file and final file; gzip outputs are named so."""
    assert len({o.name for o in OUTPUTS_REGISTERED}) == len({o.final for o in OUTPUTS_REGISTERED}) == 6
    assert all(o.gzip == o.final.endswith(".gz") for o in OUTPUTS_REGISTERED)
    assert set(CONVERT_STREAMS) | set(WINDOW_STREAMS) == set(STREAMS) == set(FINAL_NAMES)
    assert not set(CONVERT_STREAMS) & set(WINDOW_STREAMS)


def test_a_registered_output_gets_every_entry_and_reject(fixtures_dir: Path, tmp_path: Path) -> None:
    """A new output plugs in as one ``Output`` with its writer: the loop hands it each
    processed entry (windows built for a windows-stage output) and each rejected line."""
    manifest = tmp_path / "in.jsonl"
    manifest.write_bytes((fixtures_dir / "sample_input.jsonl").read_bytes() + b'{"segments": []}\n')

    def write(target: io.BytesIO, p: ProcessedEntry) -> None:
        assert p.result is not None and p.wants(extra) and not p.wants(COMPAT)
        target.write(b"%d\n" % len(p.result.kept_windows))

    def reject(target: io.BytesIO, line: ManifestLine, error: InvalidEntry) -> None:
        target.write(b"rejected %d\n" % line.line)

    extra = Output(name="extra.txt", final="extra.txt", stage=WINDOWS, write=write, reject=reject)
    target = io.BytesIO()
    target.close = lambda: None  # type: ignore[method-assign]
    out = Sinks({"extra.txt": target}, (*OUTPUTS_REGISTERED, extra))
    slices = plan_partitions(discover_manifests(manifest), 1 << 20, max_partitions=None)[0]
    counts = process_slices(slices, WindowConfig(), OverlapConfig(), out, on_error="skip")
    lines = target.getvalue().splitlines()
    assert lines[-1] == b"rejected 6" and counts.rejected == 1
    assert sum(map(int, lines[:-1])) == counts.filtered_windows == 25 and len(lines) == 6
