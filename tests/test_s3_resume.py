"""Checkpoints in the bucket: a run killed with SIGKILL resumes and ends byte-identical,
a re-run is a no-op, and two workers sharing only luigid and the bucket (different
working and temp directories, as on two machines) run each task once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from tests.s3_server import S3Server, free_port, s3_server  # noqa: F401 - the fixture
from tests.test_pipeline import TIMEOUT_S, clean_env, final_bytes, luigi_cmd, ran_tasks, run_luigi, write_repeated_sample
from tests.test_pipeline_resume import ENTRIES, PARTITION_ARGS, start_luigid, tasks_run
from tests.test_s3 import download, s3  # noqa: F401 - the fixture


def _job(s3: S3Server, tmp_path: Path) -> tuple[str, str, Path]:
    """A manifest in a new bucket, the output URL beside it, and a local run's outputs."""
    manifest = write_repeated_sample(tmp_path / "input.jsonl", ENTRIES)
    bucket = s3.bucket()
    s3.filesystem().put_file(str(manifest), f"{bucket}/in/input.jsonl")
    run_luigi("--manifest-path", str(manifest), "--output-dir", "ref", *PARTITION_ARGS, cwd=tmp_path)
    return f"s3://{bucket}/in/input.jsonl", f"s3://{bucket}/out", tmp_path / "ref"


def killed_after_a_partition(args: tuple[str, ...], env: dict[str, str], store: Any, out: str, cwd: Path) -> None:
    """A run into the store ``out`` (``store`` its fsspec filesystem), killed with SIGKILL
    as soon as one partition's checkpoint is complete there."""
    parts = f"{out.split('://', 1)[1]}/.work/parts"
    proc = subprocess.Popen(luigi_cmd(*args, workers=2), cwd=cwd, env=clean_env(env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not any(k.endswith("/task.json") for k in store.find(parts)):
            assert proc.poll() is None and time.monotonic() < deadline, "no partition finished before the run ended"
            time.sleep(0.05)
            store.invalidate_cache()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_sigkill_then_resume_on_s3_is_byte_identical(s3: S3Server, tmp_path: Path) -> None:
    manifest, out, ref = _job(s3, tmp_path)
    args = ("--manifest-path", manifest, "--output-dir", out, *PARTITION_ARGS)
    store = s3.filesystem()
    killed_after_a_partition(args, s3.env, store, out, tmp_path)
    marker = f"{out.split('://', 1)[1]}/.alm_state.json"
    assert not store.exists(marker), "the run finished before it could be killed"
    # a merge killed while holding the lock: its holder is dead, so the lock is broken
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = orjson.dumps({"host": socket.gethostname(), "pid": dead.pid, "time": time.time()})
    store.pipe_file(f"{out.split('://', 1)[1]}/.alm.lock", lock)
    # and the final object it was streaming, never completed
    bucket = out.split("://", 1)[1].split("/")[0]
    store.call_s3("create_multipart_upload", Bucket=bucket, Key="out/alm_output.jsonl")

    resumed = run_luigi(*args, cwd=tmp_path, workers=2, env=s3.env)
    assert "PIPELINE COMPLETE" in resumed.stdout
    assert final_bytes(download(s3, out, tmp_path / "got")) == final_bytes(ref)
    store.invalidate_cache()
    assert not store.exists(f"{out.split('://', 1)[1]}/.alm.lock")
    assert not store.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads")
    again = run_luigi(*args, cwd=tmp_path, workers=2, env=s3.env)
    assert ran_tasks(again, "AlmPart") == 0 and ran_tasks(again, "AlmWindows") == 0
    assert f"outputs in {out} are up to date" in again.stdout


def on_two_machines(args: tuple[str, ...], env: dict[str, str], tmp_path: Path) -> dict[str, int]:
    """Two luigi workers in working and temp directories of their own, as on two machines,
    sharing only a luigid started here and the store ``env`` points at; how often each
    task ran."""
    port = free_port()
    server = start_luigid(tmp_path, port)
    try:
        shared = ("--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), "--no-lock", "--worker-keep-alive")
        workers = []
        for name in ("machine1", "machine2"):
            home = tmp_path / name
            (home / "tmp").mkdir(parents=True)
            workers.append(subprocess.Popen(luigi_cmd(*args, *shared, local=False), cwd=home,
                                            env=clean_env({**env, "TMPDIR": str(home / "tmp")}),
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        logs = [w.communicate(timeout=TIMEOUT_S) for w in workers]
        assert [w.returncode for w in workers] == [0, 0], logs
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return tasks_run(logs)


def test_two_workers_sharing_only_luigid_and_the_bucket(s3: S3Server, tmp_path: Path) -> None:
    manifest, out, ref = _job(s3, tmp_path)
    ran = on_two_machines(("--manifest-path", manifest, "--output-dir", out, *PARTITION_ARGS), s3.env, tmp_path)
    assert ran and max(ran.values()) == 1, [t for t, n in ran.items() if n > 1]
    partitions = orjson.loads((ref / "summary.json").read_bytes())["partitions"]
    assert sum(1 for t in ran if t.startswith("AlmPart(")) == partitions > 1
    assert final_bytes(download(s3, out, tmp_path / "got")) == final_bytes(ref)
