"""Resuming after SIGKILL, a central scheduler with two workers, and concurrent runs."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.s3_server import free_port
from tests.test_pipeline import (
    TIMEOUT_S,
    clean_env,
    final_bytes,
    luigi_cmd,
    run_luigi,
    summary,
    summary_without_timings,
    write_repeated_sample,
)

# About 9 MB of input: some 17 partitions of 512 KiB, a few seconds of work in all.
ENTRIES = 480
PARTITION_ARGS = ("--partition-bytes", str(512 * 1024))


def _input(tmp_path: Path) -> Path:
    return write_repeated_sample(tmp_path / "input.jsonl", ENTRIES)


def _reference(tmp_path: Path, manifest: Path) -> Path:
    run_luigi("--manifest-path", str(manifest), "--output-dir", "ref", *PARTITION_ARGS, cwd=tmp_path)
    return tmp_path / "ref"


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def test_sigkill_mid_run_then_resume_is_byte_identical(tmp_path: Path) -> None:
    manifest = _input(tmp_path)
    ref = _reference(tmp_path, manifest)
    out = tmp_path / "out"
    args = ("--manifest-path", str(manifest), "--output-dir", str(out), *PARTITION_ARGS)
    parts = out / ".work" / "parts"
    proc = subprocess.Popen(
        luigi_cmd(*args, workers=2), cwd=tmp_path, env=clean_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    finished = lambda: parts.is_dir() and any(not p.name.startswith(".") for p in parts.iterdir())  # noqa: E731
    try:
        assert _wait_for(finished, TIMEOUT_S, proc), "no partition finished before the run ended"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / ".alm_state.json").exists(), "the run finished before it could be killed"

    resumed = run_luigi(*args, cwd=tmp_path, workers=2)
    assert "PIPELINE COMPLETE" in resumed.stdout
    assert final_bytes(out) == final_bytes(ref)
    assert summary_without_timings(out) == summary_without_timings(ref)
    assert not list(parts.glob(".*.tmp-*")), "temp directories of the killed run were not cleaned up"


def test_killed_merge_is_redone(tmp_path: Path) -> None:
    """Final outputs without the state marker (a merge killed half-way) are never trusted."""
    manifest = _input(tmp_path)
    ref = _reference(tmp_path, manifest)
    (ref / ".alm_state.json").unlink()
    (ref / "alm_output.jsonl").write_bytes(b"half a merge")
    (ref / "lhotse" / ".alm_cuts_windows_all.jsonl.gz.tmp-1").write_bytes(b"temp")
    run_luigi("--manifest-path", str(manifest), "--output-dir", "again", *PARTITION_ARGS, cwd=tmp_path)
    run_luigi("--manifest-path", str(manifest), "--output-dir", "ref", *PARTITION_ARGS, cwd=tmp_path)
    assert final_bytes(ref) == final_bytes(tmp_path / "again")
    assert not list((ref / "lhotse").glob(".*"))


def tasks_run(logs: list[tuple[str, str]]) -> Counter:
    """How often each pipeline task ran, from the (stdout, stderr) of workers on luigid."""
    return Counter(
        m.group(1)
        for _, err in logs
        for m in re.finditer(r"\) running   ((?:AlmPart|AlmWindows|AlmDiscover)\(.*\))$", err, re.M)
    )


def start_luigid(tmp_path: Path, port: int) -> subprocess.Popen:
    """A central scheduler on 127.0.0.1:``port``, answering when this returns; stop it with
    ``os.killpg(server.pid, signal.SIGTERM)``."""
    server = subprocess.Popen(
        [sys.executable, "-c", "from luigi.cmdline import luigid; luigid()", "--address", "127.0.0.1",
         "--port", str(port), "--state-path", str(tmp_path / "state.pickle"), "--logdir", str(tmp_path)],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    return server


def test_two_workers_on_luigid_run_each_task_once(tmp_path: Path) -> None:
    manifest = _input(tmp_path)
    ref = _reference(tmp_path, manifest)
    port = free_port()
    server = start_luigid(tmp_path, port)
    try:
        args = ("--manifest-path", str(manifest), "--output-dir", "dist", *PARTITION_ARGS,
                "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), "--no-lock", "--worker-keep-alive")
        workers = [
            subprocess.Popen(luigi_cmd(*args, local=False), cwd=tmp_path, env=clean_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        logs = [w.communicate(timeout=TIMEOUT_S) for w in workers]
        assert [w.returncode for w in workers] == [0, 0], logs
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    ran = tasks_run(logs)
    assert ran, "no worker ran anything"
    assert max(ran.values()) == 1, [t for t, n in ran.items() if n > 1]
    # a first run converts and builds each partition's windows in one task
    assert sum(1 for t in ran if t.startswith("AlmPart(")) == summary(ref)["partitions"]
    assert final_bytes(tmp_path / "dist") == final_bytes(ref)


def test_concurrent_runs_into_one_directory(tmp_path: Path) -> None:
    manifest = _input(tmp_path)
    ref = _reference(tmp_path, manifest)
    args = ("--manifest-path", str(manifest), "--output-dir", "both", *PARTITION_ARGS, "--no-lock")
    runs = [
        subprocess.Popen(luigi_cmd(*args, workers=w), cwd=tmp_path, env=clean_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in (1, 2)
    ]
    logs = [r.communicate(timeout=TIMEOUT_S) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], logs
    assert final_bytes(tmp_path / "both") == final_bytes(ref)


def test_a_run_waits_for_the_lock_holder(tmp_path: Path) -> None:
    manifest = _input(tmp_path)
    count = summary(_reference(tmp_path, manifest))["partitions"]
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".alm.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        # Logs go to files: an unread pipe fills up and blocks the run before the lock.
        logs = [open(tmp_path / name, "w") for name in ("stdout.log", "stderr.log")]
        proc = subprocess.Popen(
            luigi_cmd("--manifest-path", str(manifest), "--output-dir", str(out), *PARTITION_ARGS),
            cwd=tmp_path, env=clean_env(), stdout=logs[0], stderr=logs[1],
        )
        parts = out / ".work" / "parts"
        all_parts = lambda: parts.is_dir() and len(list(parts.glob("[!.]*"))) == count  # noqa: E731
        assert _wait_for(all_parts, TIMEOUT_S, proc), "the partitions did not finish"
        time.sleep(1.0)
        assert proc.poll() is None, "the run did not wait for the lock"
        assert not (out / "alm_output.jsonl").exists()
    proc.wait(timeout=TIMEOUT_S)
    stdout, stderr = ((tmp_path / name).read_text() for name in ("stdout.log", "stderr.log"))
    for log in logs:
        log.close()
    assert proc.returncode == 0, stderr
    assert "waiting for another run" in stderr
    assert "PIPELINE COMPLETE" in stdout
