"""Benchmark storage: local runs of two code trees alternately (no regression for plain
paths), and the same job with its manifest and outputs in S3 (moto's local server).

Each figure is one cold ``luigi ... AlmWindows --workers N --local-scheduler`` process
(fresh output location): its wall time and the largest resident set of any of its
processes.

    python benchmarks/bench_storage.py --entries 10000 --rounds 3 --old ../main
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_job import ROOT, SHARED_SAMPLE, make_input  # noqa: E402

_MEASURE = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); rc = subprocess.run(sys.argv[1:], "
    "stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True); w = time.perf_counter() - t; "
    "sys.stderr.write(rc.stderr[-3000:] if rc.returncode else ''); "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(w, u.ru_utime + u.ru_stime, u.ru_maxrss); sys.exit(rc.returncode)"
)


def run(code: Path, args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, CPU s of its process tree, peak RSS MiB) of one luigi process with
    ``code`` first on the path (the S3 server's own CPU is not counted)."""
    cmd = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "luigi", "--module", "luigi_tasks", *args]
    proc = subprocess.run(cmd, cwd=cwd, env={**env, "PYTHONPATH": str(code)}, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"luigi exited {proc.returncode}\n{proc.stderr[-4000:]}")
    wall, cpu, rss_kib = proc.stdout.split()
    return float(wall), float(cpu), int(rss_kib) / 1024


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    sys.exit("moto_server did not start")


def show(label: str, figures: list[tuple[float, float, float]]) -> None:
    walls = ", ".join(f"{w:.2f}" for w, _, _ in figures)
    print(f"{label:26s} wall median {statistics.median(w for w, _, _ in figures):6.2f} s ({walls})  "
          f"CPU median {statistics.median(c for _, c, _ in figures):6.2f} s  peak RSS {max(r for *_, r in figures):4.0f} MiB")


@click.command()
@click.option("--entries", default=10000, show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--old", type=click.Path(exists=True, path_type=Path), default=None, help="Code tree to compare with.")
@click.option("--endpoint", default=None, help="An S3 endpoint to use instead of starting moto_server.")
def main(entries: int, workers: int, rounds: int, old: Optional[Path], endpoint: Optional[str]) -> None:
    sample = SHARED_SAMPLE if SHARED_SAMPLE.exists() else ROOT / "alm_lhotse" / "data" / "sample_manifest.jsonl"
    server = None
    if endpoint is None:
        server, endpoint = start_moto()
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
           "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "bench")}
    env.pop("LUIGI_CONFIG_PATH", None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            inp = tmp_path / "input.jsonl"
            make_input(inp, entries, sample)
            os.environ.update({k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
            import s3fs

            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            store = s3fs.S3FileSystem()
            store.mkdir(bucket)
            store.put_file(str(inp), f"{bucket}/in/input.jsonl")
            print(f"{entries} entries, {inp.stat().st_size / 2**20:.0f} MiB of input, --workers {workers}, "
                  f"{rounds} rounds, cpus {os.cpu_count()}")
            trees = [("old", old), ("new", ROOT)] if old else [("new", ROOT)]
            figures: dict[str, list[tuple[float, float, float]]] = {}
            for i in range(rounds):
                jobs = [(f"local -> local ({name})", code, str(inp), str(tmp_path / f"{name}{i}")) for name, code in trees]
                jobs += [
                    ("s3 -> local", ROOT, f"s3://{bucket}/in/input.jsonl", str(tmp_path / f"s3in{i}")),
                    ("s3 -> s3", ROOT, f"s3://{bucket}/in/input.jsonl", f"s3://{bucket}/out{i}"),
                ]
                for label, code, manifest, out in jobs:
                    args = ["AlmWindows", "--manifest-path", manifest, "--output-dir", out,
                            "--local-scheduler", "--workers", str(workers)]
                    figures.setdefault(label, []).append(run(code, args, tmp_path, env))
            for label, values in figures.items():
                show(label, values)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait()


if __name__ == "__main__":
    main()
