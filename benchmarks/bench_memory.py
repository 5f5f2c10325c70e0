"""Peak memory and wall time of the main job, per process, as the input grows.

Runs the pipeline (``luigi --module luigi_tasks AlmWindows --local-scheduler``) or
``run_job`` (``--runner job``) as a child process on generated input (the reference
sample repeated, as ``bench_job.py`` makes it) and prints the wall time and the peak
RSS of every process of the job: the luigi process (scheduling, discovery, merge) and
each forked task process. Peaks are read from ``/proc/PID/status`` (``VmHWM``, the
kernel's high-water mark) while the processes live, and checked against
``getrusage(RUSAGE_CHILDREN)``, the largest peak of every descendant that exited.

    python benchmarks/bench_memory.py --entries 10000 --entries 100000
    python benchmarks/bench_memory.py --gigabytes 2 --words     # one ~2 GB manifest
    python benchmarks/bench_memory.py --entries 100000 --runner job --workers 2

Output is written under ``--tmp`` and removed after each run; 100,000 entries write
about 6 GB.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_job import CHILD, ROOT, SHARED_SAMPLE, make_input  # noqa: E402

POLL_S = 0.02


def _status(pid: int) -> dict[str, int]:
    """The kB figures of ``/proc/PID/status`` (peak RSS and the current split)."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0])
    return values


class Sampler(threading.Thread):
    """Polls the process tree under ``root``: the last high-water mark seen per pid."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peaks: dict[int, dict[str, int]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            time.sleep(POLL_S)

    def sample(self) -> None:
        parents: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as f:
                        parents[int(name)] = int(f.read().rpartition(")")[2].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
        tree = {self.root}
        grew = True
        while grew:
            new = {pid for pid, ppid in parents.items() if ppid in tree and pid not in tree}
            tree |= new
            grew = bool(new)
        for pid in tree:
            try:
                status = _status(pid)
            except (OSError, ValueError):
                continue
            if "VmHWM" not in status:
                continue
            seen = self.peaks.setdefault(pid, {"VmHWM": 0, "RssAnon": 0, "RssFile": 0})
            seen["VmHWM"] = max(seen["VmHWM"], status["VmHWM"])
            seen["RssAnon"] = max(seen["RssAnon"], status.get("RssAnon", 0))
            seen["RssFile"] = max(seen["RssFile"], status.get("RssFile", 0))


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, dict[int, dict[str, int]], float, int]:
    """Wall time, per-process peaks, the peak over all descendants (MiB) and the root pid."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    if proc.returncode:
        sys.exit(f"exit {proc.returncode}\n{out[-2000:]}\n{err[-4000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is a running maximum: a run below an earlier one shows 0 here.
    return wall, sampler.peaks, (after / 1024 if after > before else 0.0), proc.pid


def report(label: str, wall: float, peaks: dict[int, dict[str, int]], children_max: float, root: int) -> None:
    """The figures of one run: the root process (luigi's, or run_job's parent) and the
    processes under it (task processes, or run_job's workers)."""
    largest = max((p["VmHWM"] for p in peaks.values()), default=0) / 1024
    tasks = [p["VmHWM"] / 1024 for pid, p in peaks.items() if pid != root]
    print(f"{label}")
    print(f"  wall               {wall:.2f} s")
    if root in peaks:
        m = peaks[root]
        print(f"  main process       {m['VmHWM'] / 1024:.0f} MiB peak (anon {m['RssAnon'] / 1024:.0f}, file {m['RssFile'] / 1024:.0f} MiB at most)")
    if tasks:
        print(f"  child processes    {len(tasks)}, peak {min(tasks):.0f}-{max(tasks):.0f} MiB")
    print(f"  largest process    {max(largest, children_max):.0f} MiB (polled {largest:.0f}, getrusage {children_max:.0f})")


def pipeline_command(inp: Path, out: Path, workers: int, partition_bytes: int) -> list[str]:
    args = [sys.executable, "-m", "luigi", "--module", "luigi_tasks", "AlmWindows", "--manifest-path", str(inp),
            "--output-dir", str(out), "--local-scheduler", "--workers", str(workers)]
    return args + (["--partition-bytes", str(partition_bytes)] if partition_bytes else [])


def job_command(inp: Path, out: Path, jobs: int) -> list[str]:
    args = json.dumps({"input": str(inp), "out": str(out), "jobs": jobs, "lhotse": True})
    return [sys.executable, "-c", CHILD, args]


def make_sized_input(path: Path, gigabytes: float, sample: Path, words: bool) -> int:
    """About ``gigabytes`` of manifest: the sample repeated; returns the entries written."""
    probe = path.with_suffix(".probe")
    make_input(probe, 100, sample, words)
    per_entry = probe.stat().st_size / 100
    probe.unlink()
    entries = int(gigabytes * 1e9 / per_entry)
    make_input(path, entries, sample, words)
    return entries


@click.command()
@click.option("--entries", "sizes", multiple=True, type=int, help="Entries to generate (repeatable).")
@click.option("--gigabytes", type=float, default=None, help="Instead: one manifest of about this size.")
@click.option("--words/--no-words", default=False, help="Give every segment word alignments.")
@click.option("--runner", type=click.Choice(["pipeline", "job"]), default="pipeline", show_default=True)
@click.option("--workers", default=2, show_default=True, help="luigi --workers / run_job jobs.")
@click.option("--partition-bytes", default=0, show_default=True, help="Pipeline partition size (0: automatic).")
@click.option("--tmp", type=click.Path(path_type=Path), default=None, help="Where input and output go.")
@click.option("--keep-input/--no-keep-input", default=False, help="Keep the generated input (for repeated runs).")
@click.option("--input", "given", type=click.Path(exists=True, path_type=Path), default=None, help="Use this input.")
def main(sizes: tuple[int, ...], gigabytes: Optional[float], words: bool, runner: str, workers: int,
         partition_bytes: int, tmp: Optional[Path], keep_input: bool, given: Optional[Path]) -> None:
    sample = SHARED_SAMPLE if SHARED_SAMPLE.exists() else ROOT / "alm_lhotse" / "data" / "sample_manifest.jsonl"
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    runs: list[tuple[str, Optional[int]]] = [(f"{n:,} entries", n) for n in sizes]
    if gigabytes is not None or given is not None:
        runs.append(("given input" if given else f"one {gigabytes:g} GB manifest", None))
    base = Path(tempfile.mkdtemp(dir=tmp))
    try:
        for label, entries in runs:
            inp = given or base / "input.jsonl"
            if given is None:
                if entries is None:
                    entries = make_sized_input(inp, gigabytes or 0.0, sample, words)
                else:
                    make_input(inp, entries, sample, words)
            out = base / "out"
            command = pipeline_command(inp, out, workers, partition_bytes) if runner == "pipeline" else job_command(inp, out, workers)
            wall, peaks, children_max, root = measure(command, base, env)
            size = inp.stat().st_size / 2**20
            report(f"{label} ({size:,.0f} MiB input{', words' if words else ''}), {runner}, {workers} workers",
                   wall, peaks, children_max, root)
            shutil.rmtree(out, ignore_errors=True)
            if given is None and not keep_input:
                inp.unlink()
    finally:
        if not keep_input:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
