"""Benchmark the overlap filter where the reference is quadratic.

The first 50 entries of the oracle's hostile input (``random_seed1``) with
``overlap_percentage=100`` and ``truncation=false``: little is removed, so the
reference's pairwise loop runs long (3.1 s on this project's machine). Prints the
builder and overlap times separately, best of ``--repeat`` runs.

    python benchmarks/bench_overlap.py [--input PATH] [--entries 50]
"""

from __future__ import annotations

import time
from itertools import islice
from pathlib import Path

import click

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.core.overlap import filter_windows
from alm_lhotse.core.windows import build_windows
from alm_lhotse.native import kernel_enabled
from alm_lhotse.reading.reader import read_entries

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ROOT.parent / "shared" / "oracle" / "random_seed1.input.jsonl.gz"


@click.command()
@click.option("--input", "path", type=click.Path(exists=True, path_type=Path), default=HOSTILE, show_default=True)
@click.option("--entries", default=50, show_default=True)
@click.option("--repeat", default=5, show_default=True)
def main(path: Path, entries: int, repeat: int) -> None:
    wcfg = WindowConfig(truncation=False)
    ocfg = OverlapConfig(overlap_percentage=100)
    data = list(islice(read_entries(path), entries))
    best_build = best_overlap = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        built = [build_windows(e, wcfg) for e in data]
        t1 = time.perf_counter()
        kept = 0
        for b in built:
            spans = [(w.end, w.start) for w in b.windows]
            if spans:
                kept += sum(filter_windows(spans, ocfg.threshold, ocfg.target_duration)[1])
        t2 = time.perf_counter()
        best_build = min(best_build, t1 - t0)
        best_overlap = min(best_overlap, t2 - t1)
    windows = sum(len(b.windows) for b in built)
    print(f"entries {len(data)}  windows {windows} -> {kept} kept  (compiled loops: {kernel_enabled()})")
    print(f"builder {best_build * 1000:.1f} ms   overlap filter {best_overlap * 1000:.1f} ms   (reference: 3.1 s)")


if __name__ == "__main__":
    main()
