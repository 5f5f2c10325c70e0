"""The Shar export as luigi runs it: group tasks on several workers and on luigid, a killed
export resumed shard by shard, parameter errors and missing audio in one line."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import orjson
import pytest
from lhotse import CutSet

from alm_lhotse.shar import state_dir_for
from tests.test_audio import write_conversations
from tests.test_pipeline import TIMEOUT_S, clean_env

SHARDS = ["--shard-duration", "100"]  # every window (about 120 s) a shard of its own


def luigi_shar(
    *args: str, cwd: Path, workers: int = 1, expect: int = 0, local: bool = True, env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "luigi", "--module", "luigi_tasks", "AlmShar", *args, "--workers", str(workers)]
    cmd += ["--local-scheduler"] if local else []
    proc = subprocess.run(cmd, cwd=cwd, env=clean_env(env), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == expect, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_conversations(tmp_path_factory.mktemp("shar_luigi") / "data", count=3)


def shard_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ERROR:")]


def test_two_workers_write_every_window_as_lhotse_loads_it(manifest: Path, tmp_path: Path) -> None:
    proc = luigi_shar("--manifest-path", str(manifest), "--output-dir", "out", "--shar-dir", "shards", *SHARDS,
                      cwd=tmp_path, workers=2)  # fmt: skip
    source = CutSet.from_file(tmp_path / "out/lhotse/alm_cuts_windows_all.jsonl.gz").to_eager()
    back = list(CutSet.from_shar(in_dir=tmp_path / "shards"))
    assert [c.id for c in back] == list(source.ids) and len(back) >= 4
    for orig, cut in zip(source, back):
        np.testing.assert_array_equal(cut.load_audio(), orig.load_audio())
    assert len(list((tmp_path / "shards").glob("recording.*.tar"))) == len(back)
    hours = sum(c.duration for c in source) / 3600
    assert f"Shar export: {len(back)} shards, {len(back)} windows written to {tmp_path / 'shards'}" in proc.stdout
    assert f"{hours:.2f} h of audio" in proc.stdout


KILLER = """
import os, signal, sys
import alm_lhotse.shar_write as w
real, calls = w.publish, [0]
def publish(tmp, final):
    calls[0] += 1
    if calls[0] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    real(tmp, final)
w.publish = publish
from luigi.cmdline import luigi_run
luigi_run(sys.argv[2:])
"""


@pytest.mark.parametrize("kill_at", [3, 6])  # after a shard's tar, after a whole shard and a half
def test_killed_export_resumes_shard_by_shard_to_the_same_bytes(manifest: Path, tmp_path: Path, kill_at: int) -> None:
    common = ["--manifest-path", str(manifest), *SHARDS, "--local-scheduler"]
    luigi_shar(*common[:-1], "--output-dir", "fresh", "--shar-dir", "fresh_shards", cwd=tmp_path)
    args = ["--module", "luigi_tasks", "AlmShar", *common, "--output-dir", "out", "--shar-dir", "shards"]
    killed = subprocess.run([sys.executable, "-c", KILLER, str(kill_at), *args], cwd=tmp_path, env=clean_env(),
                            capture_output=True, timeout=TIMEOUT_S)  # fmt: skip
    assert killed.returncode == -9
    done = list((state_dir_for(tmp_path / "shards") / "done").iterdir())
    assert len(done) == (kill_at - 1) // 2  # shards finished before the kill; groups run in any order
    luigi_shar(*common[:-1], "--output-dir", "out", "--shar-dir", "shards", cwd=tmp_path)
    assert shard_bytes(tmp_path / "shards") == shard_bytes(tmp_path / "fresh_shards")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tasks_ran(output: str, family: str) -> int:
    """How many ``family`` tasks luigi's execution summary lists as run by this worker."""
    section = re.search(r"\* \d+ ran successfully:\n((?:.*\n?)*?)(?:\* |\n\S|\Z)", output)
    return sum(int(n) for n in re.findall(rf"- (\d+) {family}\(", section.group(1))) if section else 0


def test_luigid_with_two_workers_runs_each_group_once(manifest: Path, tmp_path: Path) -> None:
    port = _free_port()
    luigid = subprocess.Popen([sys.executable, "-c", "from luigi.cmdline import luigid; luigid()", "--address",
                               "127.0.0.1", "--port", str(port)], cwd=tmp_path, env=clean_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        cmd = [sys.executable, "-m", "luigi", "--module", "luigi_tasks", "AlmShar", "--manifest-path", str(manifest),
               "--output-dir", "out", "--shar-dir", "shards", *SHARDS, "--shar-groups", "4", "--scheduler-host",
               "127.0.0.1", "--scheduler-port", str(port), "--no-lock", "--worker-keep-alive"]  # fmt: skip
        workers = [subprocess.Popen(cmd, cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True) for _ in range(2)]  # fmt: skip
        outputs = [w.communicate(timeout=TIMEOUT_S)[0] for w in workers]
    finally:
        luigid.terminate()
        luigid.wait(timeout=30)
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert sum(tasks_ran(out, "AlmSharGroup") for out in outputs) == 4, outputs
    assert sum(tasks_ran(out, "AlmShar") for out in outputs) == 1, outputs
    summary = orjson.loads((state_dir_for(tmp_path / "shards") / "summary.json").read_bytes())
    assert summary["written"] == summary["windows"] == len(list(CutSet.from_shar(in_dir=tmp_path / "shards")))


@pytest.mark.parametrize(
    "args, named",
    [
        (["--shard-duration", "0"], "--shard-duration"),
        (["--shard-size", "-2"], "--shard-size"),
        (["--sampling-rate", "abc"], "--sampling-rate"),
        (["--audio-format", "mp3"], "--audio-format"),
        (["--audio-on-error", "ignore"], "--audio-on-error"),
        (["--shar-groups", "0"], "--shar-groups"),
        (["--compact-audio", "--audio-format", "wav"], "compact_audio"),
        (["--min-speakers", "4", "--max-speakers", "2"], "min_speakers"),
    ],
)
def test_bad_parameters_stop_before_any_work(manifest: Path, tmp_path: Path, args: list[str], named: str) -> None:
    proc = luigi_shar("--manifest-path", str(manifest), "--output-dir", "out", "--shar-dir", "shards", *args,
                      cwd=tmp_path, expect=35)  # fmt: skip
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and named in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "shards").exists() and not (tmp_path / "out").exists()


def test_bad_speaker_range_is_refused_when_the_windows_are_complete(manifest: Path, tmp_path: Path) -> None:
    common = ["--manifest-path", str(manifest), "--output-dir", "out", "--shar-dir", "shards"]
    luigi_shar(*common, cwd=tmp_path)
    proc = luigi_shar(*common, "--min-speakers", "4", "--max-speakers", "2", cwd=tmp_path, expect=35)
    assert len(error_lines(proc.stderr)) == 1 and "Traceback" not in proc.stderr


def test_missing_audio_is_one_line_with_the_skip_hint(tmp_path: Path) -> None:
    manifest = write_conversations(tmp_path / "data", count=2)
    (tmp_path / "data/conv1.wav").unlink()
    common = ["--manifest-path", str(manifest), "--output-dir", "out"]
    proc = luigi_shar(*common, "--shar-dir", "shards", cwd=tmp_path, expect=30)
    errors = [line for line in error_lines(proc.stderr) if "Worker" not in line]  # luigi's own "failed" log line
    assert len(errors) == 1 and "conv1.wav: file does not exist" in errors[0], proc.stderr
    assert "--audio-on-error skip" in errors[0] and "Traceback" not in proc.stderr
    proc = luigi_shar(*common, "--shar-dir", "skipped", "--audio-on-error", "skip", cwd=tmp_path)
    summary = orjson.loads((state_dir_for(tmp_path / "skipped") / "summary.json").read_bytes())
    assert summary["rejected"] > 0 and summary["written"] > 0 and summary["windows"] == summary["rejected"] + summary["written"]
    assert f"{summary['rejected']} rejected (see {summary['rejects_path']})" in proc.stdout
    rejects = [orjson.loads(line) for line in Path(summary["rejects_path"]).read_bytes().splitlines()]
    assert {r["audio_filepath"] for r in rejects} == {str(tmp_path / "data/conv1.wav")}
