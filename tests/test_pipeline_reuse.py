"""A parameter change into the same output directory: new outputs, reused conversion."""

from __future__ import annotations

from pathlib import Path

from tests.test_pipeline import (
    final_bytes,
    ran_tasks,
    run_luigi,
    summary,
    summary_without_timings,
    write_repeated_sample,
)

# About 750 KB of input in 256 KiB partitions: three partitions, each converted once.
ENTRIES = 40
PARTITION_ARGS = ("--partition-bytes", str(256 * 1024))


def _conversion_files(out: Path) -> dict[Path, tuple[int, int]]:
    """Every conversion part file with its inode and mtime: a rewrite changes them."""
    files = (p for p in (out / ".work" / "convert").rglob("*") if p.is_file())
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


def _reused(out: Path) -> tuple[int, int]:
    """Partitions whose conversion, and whose windows, the last run found done."""
    reused = summary(out)["timings"]["reused"]
    assert reused["partitions"] == summary(out)["partitions"]
    return reused["conversions"], reused["windows"]


def test_window_parameter_change_reuses_the_conversion(tmp_path: Path) -> None:
    manifest = write_repeated_sample(tmp_path / "in.jsonl", ENTRIES)
    args = ("--manifest-path", str(manifest), *PARTITION_ARGS)
    run_luigi(*args, "--output-dir", "out", cwd=tmp_path, workers=2)
    out = tmp_path / "out"
    first = final_bytes(out)
    partitions = summary(out)["partitions"]
    assert partitions > 1
    converted = _conversion_files(out)
    assert len(converted) == 5 * partitions  # three streams, counts, wall time

    proc = run_luigi(*args, "--output-dir", "out", "--max-speakers", "3", "--log-level", "INFO", cwd=tmp_path)
    assert ran_tasks(proc, "AlmPart") == partitions
    assert _reused(out) == (partitions, 0)  # every partition found its conversion done
    assert _conversion_files(out) == converted
    assert final_bytes(out) != first

    run_luigi(*args, "--output-dir", "fresh", "--max-speakers", "3", cwd=tmp_path)
    assert final_bytes(out) == final_bytes(tmp_path / "fresh")
    assert summary_without_timings(out) == summary_without_timings(tmp_path / "fresh")

    proc = run_luigi(*args, "--output-dir", "out", cwd=tmp_path)
    assert _reused(out) == (partitions, 0)
    assert final_bytes(out) == first
    assert _conversion_files(out) == converted


def test_conversion_parameter_change_converts_again(tmp_path: Path) -> None:
    """``sort_segments`` orders the supervisions: new conversions, the old ones removed."""
    manifest = write_repeated_sample(tmp_path / "in.jsonl", ENTRIES)
    args = ("--manifest-path", str(manifest), *PARTITION_ARGS)
    run_luigi(*args, "--output-dir", "out", cwd=tmp_path)
    out = tmp_path / "out"
    partitions = summary(out)["partitions"]
    before = {p.parent.name for p in _conversion_files(out)}

    proc = run_luigi(*args, "--output-dir", "out", "--sort-segments", "--log-level", "INFO", cwd=tmp_path)
    assert ran_tasks(proc, "AlmPart") == partitions and _reused(out) == (0, 0)
    after = {p.parent.name for p in _conversion_files(out)}
    assert len(after) == partitions and not after & before
    run_luigi(*args, "--output-dir", "fresh", "--sort-segments", cwd=tmp_path)
    assert final_bytes(out) == final_bytes(tmp_path / "fresh")
