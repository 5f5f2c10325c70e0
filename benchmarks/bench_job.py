"""Benchmark the whole job: read -> windows -> overlap -> write, on the sample repeated.

The reference fixture (``../shared/fixtures/nemo_curator_alm/sample_input.jsonl``, else the
sample bundled with the package) is repeated with distinct ``audio_filepath`` values. The
job runs in a child process so the figures are its own: wall time, entries/s, windows/s
and peak RSS (the largest process of the job).

    python benchmarks/bench_job.py --entries 10000 --jobs 1
    python benchmarks/bench_job.py --entries 50000 --jobs 2 --lhotse
    python benchmarks/bench_job.py --entries 10000 --jobs 2 --words   # with word alignments
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = ROOT.parent / "shared" / "fixtures" / "nemo_curator_alm" / "sample_input.jsonl"

CHILD = """
import json, sys, time
from pathlib import Path
from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.execution.runner import run_job
args = json.loads(sys.argv[1])
t = time.perf_counter()
s = run_job(Path(args["input"]), Path(args["out"]), WindowConfig(), OverlapConfig(),
            jobs=args["jobs"], lhotse=args["lhotse"])
s["job_s"] = time.perf_counter() - t
print(json.dumps(s))
"""


def add_words(entry: dict) -> dict:
    """Word alignments for every segment: its text split on spaces, evenly timed."""
    segments = []
    for seg in entry["segments"]:
        tokens = (seg.get("text") or "x").split() or ["x"]
        step = (seg["end"] - seg["start"]) / len(tokens)
        times = [round(seg["start"] + k * step, 3) for k in range(len(tokens) + 1)]
        words = [{"word": t, "start": times[k], "end": times[k + 1]} for k, t in enumerate(tokens)]
        segments.append({**seg, "words": words})
    return {**entry, "segments": segments}


def make_input(path: Path, entries: int, sample: Path, words: bool = False) -> None:
    lines = [json.loads(x) for x in sample.read_text().splitlines() if x.strip()]
    if words:
        lines = [add_words(entry) for entry in lines]
    with open(path, "w") as f:
        for i in range(entries):
            entry = dict(lines[i % len(lines)])
            entry["audio_filepath"] = f"/data/bench/{i:07d}_{Path(entry['audio_filepath']).name}"
            f.write(json.dumps(entry) + "\n")


@click.command()
@click.option("--entries", default=10000, show_default=True, help="Entries to generate.")
@click.option("--jobs", default=1, show_default=True, help="Worker processes.")
@click.option("--lhotse/--no-lhotse", default=False, show_default=True, help="Also write Lhotse manifests.")
@click.option("--words/--no-words", default=False, show_default=True, help="Give every segment word alignments.")
@click.option("--sample", type=click.Path(exists=True, path_type=Path), default=None)
def main(entries: int, jobs: int, lhotse: bool, words: bool, sample: Path | None) -> None:
    if sample is None:
        sample = SHARED_SAMPLE if SHARED_SAMPLE.exists() else ROOT / "alm_lhotse" / "data" / "sample_manifest.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "input.jsonl"
        make_input(inp, entries, sample, words)
        args = json.dumps({"input": str(inp), "out": str(Path(tmp) / "out"), "jobs": jobs, "lhotse": lhotse})
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, args], capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode:
            sys.exit(proc.stderr)
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        out_mb = (Path(tmp) / "out" / "alm_output.jsonl").stat().st_size / 2**20
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"entries            {summary['entries']}")
    print(f"windows            {summary['windows']} -> {summary['filtered_windows']} after overlap")
    print(f"filtered_dur       {summary['filtered_dur']}")
    print(f"jobs               {jobs}   lhotse manifests: {lhotse}")
    print(f"output             {out_mb:.0f} MiB")
    print(f"wall (process)     {wall:.2f} s   (job {summary['job_s']:.2f} s)")
    print(f"entries/s          {summary['entries'] / wall:,.0f}")
    print(f"windows/s          {summary['windows'] / wall:,.0f}")
    print(f"peak RSS           {peak:.0f} MiB")
    print(f"stage time (sum)   {json.dumps({k: round(v, 2) for k, v in summary['timings'].items()})}")


if __name__ == "__main__":
    main()
