"""Benchmark the Luigi pipeline end to end: ``luigi --module luigi_tasks AlmWindows``.

Input is generated as in ``bench_job.py`` (the reference sample repeated with distinct
``audio_filepath`` values). Reports the wall time of a cold run (fresh output directory),
of a no-op re-run (everything complete) and of a re-run with another window parameter
(``--max-speakers 3``: the conversion is reused), each as a whole ``luigi`` process.

    python benchmarks/bench_pipeline.py --entries 10000 --workers 2
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_job import ROOT, SHARED_SAMPLE, make_input  # noqa: E402


def run_luigi(args: list[str], cwd: Path) -> float:
    """Wall time of one luigi process; exits with its output when it fails."""
    started = time.perf_counter()
    proc = subprocess.run(["luigi", "--module", "luigi_tasks", *args], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"luigi exited {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return wall


@click.command()
@click.option("--entries", default=10000, show_default=True, help="Entries to generate.")
@click.option("--workers", default=2, show_default=True, help="luigi --workers.")
@click.option("--sample", type=click.Path(exists=True, path_type=Path), default=None)
def main(entries: int, workers: int, sample: Path | None) -> None:
    if sample is None:
        sample = SHARED_SAMPLE if SHARED_SAMPLE.exists() else ROOT / "alm_lhotse" / "data" / "sample_manifest.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        inp = tmp_path / "input.jsonl"
        make_input(inp, entries, sample)
        out = tmp_path / "out"
        args = ["AlmWindows", "--manifest-path", str(inp), "--output-dir", str(out),
                "--local-scheduler", "--workers", str(workers)]
        cold = run_luigi(args, tmp_path)
        noop = run_luigi(args, tmp_path)
        summary = json.loads((out / "summary.json").read_text())
        out_mb = (out / "alm_output.jsonl").stat().st_size / 2**20
        changed = run_luigi([*args, "--max-speakers", "3"], tmp_path)
    print(f"entries            {summary['entries']}")
    print(f"windows            {summary['windows']} -> {summary['filtered_windows']} after overlap")
    print(f"filtered_dur       {summary['filtered_dur']}")
    print(f"partitions         {summary['partitions']}   workers: {workers}   cpus: {os.cpu_count()}")
    print(f"output             {out_mb:.0f} MiB")
    print(f"cold run (wall)    {cold:.2f} s")
    print(f"no-op re-run       {noop:.2f} s")
    print(f"window param re-run {changed:.2f} s")
    stages = {k: round(v, 2) for k, v in summary["timings"].items() if isinstance(v, (int, float))}
    print(f"stage time (sum)   {json.dumps(stages)}")


if __name__ == "__main__":
    main()
