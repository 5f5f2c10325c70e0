"""Memory stays flat as inputs grow, by construction: scanning a mapped file keeps at
most a block of it resident, and the per-entry loop keeps nothing per entry (the
filtered durations are written out and summed back lazily, in input order)."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path

import orjson
import pytest

from alm_lhotse import native
from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.execution import partitions
from alm_lhotse.execution.loop import (
    DURATIONS_PART,
    Durations,
    read_durations,
    run_partition,
)
from alm_lhotse.execution.partitions import file_slices, plan_partitions, slice_lines
from alm_lhotse.execution.runner import run_job
from alm_lhotse.outputs.streams import CONVERT_STREAMS, WINDOW_STREAMS

SAMPLE = Path(__file__).resolve().parents[1] / "alm_lhotse" / "data" / "sample_manifest.jsonl"
MiB = 1 << 20


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_peak() -> None:
    """Start the kernel's high-water mark of resident memory afresh (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("needs /proc/self/clear_refs (Linux) to measure a peak of resident memory")


def test_scanning_a_large_file_keeps_a_block_of_it_resident(tmp_path: Path) -> None:
    """Planning (in the luigi process) and line counts (in each task) map the file; its
    pages used to stay resident as the scan passed, so the process held the whole input."""
    if sys.platform != "linux":
        pytest.skip("resident memory is read from /proc")
    path = tmp_path / "big.jsonl"
    line = b'{"audio_filepath": "x.wav", "segments": []}\n'
    with open(path, "wb") as f:
        for _ in range(48):
            f.write(line * (MiB // len(line)))
    lines = (MiB // len(line)) * 48
    _reset_peak()
    before = _status_kib("VmRSS")
    slices = [sl for part in plan_partitions([path], 8 * MiB) for sl in part]
    assert sum(slice_lines(sl) for sl in slices) == lines
    assert [slice_lines(sl) for sl in file_slices(path, "big", 64 * MiB)] == [lines]
    grown = (_status_kib("VmHWM") - before) / 1024
    assert len(slices) == 6 and grown < 20, f"resident memory grew by {grown:.0f} MiB while scanning 48 MiB"


@pytest.mark.parametrize("pure", [False, True])
@pytest.mark.parametrize("scan_bytes", [1, 5, 4096, 4097])
def test_block_by_block_scans_count_every_newline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: bool, scan_bytes: int) -> None:
    monkeypatch.setattr(native, "_PURE_PYTHON", pure)
    monkeypatch.setattr(partitions, "SCAN_BYTES", scan_bytes)
    data = b"".join(b"y" * (k % 37) + b"\n" * (1 + k % 3) for k in range(3000))
    path = tmp_path / "m.jsonl"
    path.write_bytes(data)
    for step in (1, 100, 5000, 1 << 20):
        slices = file_slices(path, "m", step)
        for following in slices[1:]:
            assert following.first_line == data[: following.start].count(b"\n") + 1
        assert sum(slice_lines(sl) for sl in slices) == data.count(b"\n")


def test_durations_come_back_in_order_block_by_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Durations, "BLOCK", 3)
    values = [0.1 * k + 1e-9 * k * k for k in range(20)]
    with open(tmp_path / "a", "wb") as a, open(tmp_path / "b", "wb") as b:
        first, second = Durations(a), Durations(b)
        for v in values[:7]:
            first.add(v)
        for v in values[7:]:
            second.add(v)
        first.flush()
        second.flush()
    assert list(read_durations([tmp_path / "a", tmp_path / "b"])) == values
    assert sum(read_durations([tmp_path / "a", tmp_path / "b"])) == sum(values)


def _manifest(path: Path, entries: int) -> Path:
    """The bundled sample repeated (without word alignments, to be quick), distinct paths."""
    samples = [orjson.loads(x) for x in SAMPLE.read_bytes().splitlines() if x.strip()]
    for entry in samples:
        entry["segments"] = [{k: v for k, v in seg.items() if k != "words"} for seg in entry["segments"]]
    with open(path, "wb") as f:
        for k in range(entries):
            entry = samples[k % len(samples)]
            f.write(orjson.dumps({**entry, "audio_filepath": f"/{k}/{entry['audio_filepath']}"}) + b"\n")
    return path


def _kept_after_partition(tmp_path: Path, entries: int) -> int:
    """Bytes of Python objects a partition's pass leaves allocated (its counts included)."""
    inp = _manifest(tmp_path / f"in{entries}.jsonl", entries)
    out = tmp_path / f"out{entries}"
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    counts = run_partition(plan_partitions([inp], 1 << 30)[0], WindowConfig(), OverlapConfig(),
                           {out / "c": CONVERT_STREAMS, out / "w": WINDOW_STREAMS})
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    assert counts.entries == entries and (out / "w" / DURATIONS_PART).stat().st_size == 8 * entries
    return kept


def test_a_partition_keeps_nothing_per_entry(tmp_path: Path) -> None:
    """A list of per-entry values (32 bytes each) kept ~58 KB more after 2,000 entries
    than after 200; what is kept now is the same whatever the partition's size."""
    tracemalloc.start()
    try:
        _kept_after_partition(tmp_path, 50)  # warm caches (interned names, imports)
        small = _kept_after_partition(tmp_path, 200)
        large = _kept_after_partition(tmp_path, 2000)
    finally:
        tracemalloc.stop()
    assert large - small < 24_000, f"{large - small} bytes more kept after 2,000 entries than after 200"


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_job_sums_every_entry_in_input_order(tmp_path: Path, jobs: int) -> None:
    """run_job's total equals sum() over the entries' durations in input order, across
    chunks (its temp file of durations is gone afterwards)."""
    inp = _manifest(tmp_path / "in.jsonl", 300)
    out = tmp_path / "out"
    summary = run_job(inp, out, WindowConfig(), OverlapConfig(), jobs=jobs, lhotse=False, partition_bytes=20_000)
    sequential = tmp_path / "seq"
    counts = run_partition(plan_partitions([inp], 1 << 30)[0], WindowConfig(), OverlapConfig(), {sequential: WINDOW_STREAMS})
    assert summary["filtered_dur"] == sum(read_durations([sequential / DURATIONS_PART]))
    assert summary["entries"] == counts.entries == 300
    assert not [p for p in out.rglob("*") if DURATIONS_PART in p.name]
