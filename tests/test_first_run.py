"""A first run as a new user does it: mistakes said at once in one line, and what was done."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from alm_lhotse.sample import sample_entries
from tests.test_pipeline import TIMEOUT_S, clean_env, luigi_cmd, run_luigi


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ERROR:")]


def test_missing_config_file_is_reported_before_any_work(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "luigi.cfg"
    proc = run_luigi("--output-dir", "out", cwd=tmp_path, env={"LUIGI_CONFIG_PATH": str(missing)}, expect=35)
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1 and str(missing) in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_no_scheduler_gives_a_hint_within_seconds(tmp_path: Path) -> None:
    port = _free_port()
    cmd = luigi_cmd("--output-dir", "out", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), local=False)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert time.monotonic() - started < 15
    assert proc.returncode == 35, proc.stderr
    errors = _error_lines(proc.stderr)
    assert errors == [
        f"ERROR: no luigi scheduler at 127.0.0.1:{port}: add --local-scheduler, or start luigid (see docs/pipeline.md)"
    ]
    assert not (tmp_path / "out").exists()


def test_scheduler_port_from_config_file_is_checked(tmp_path: Path) -> None:
    port = _free_port()
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text(f"[core]\ndefault_scheduler_host = localhost\ndefault_scheduler_port = {port}\n")
    cmd = luigi_cmd("--output-dir", "out", local=False)
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=clean_env({"LUIGI_CONFIG_PATH": str(cfg)}), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 35, proc.stderr
    assert _error_lines(proc.stderr) == [
        f"ERROR: no luigi scheduler at localhost:{port}: add --local-scheduler, or start luigid (see docs/pipeline.md)"
    ]


def test_importing_the_package_never_checks_the_scheduler(tmp_path: Path) -> None:
    """Only the ``luigi`` command is checked; Python code importing the tasks is left alone."""
    code = "import luigi_tasks; print('imported')"
    env = clean_env({"LUIGI_CONFIG_PATH": str(tmp_path / "missing.cfg")})
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "imported", proc.stderr


def test_noop_rerun_says_outputs_are_up_to_date(tmp_path: Path) -> None:
    first = run_luigi("--output-dir", "out", cwd=tmp_path, workers=2)
    assert "up to date" not in first.stdout
    again = run_luigi("--output-dir", "out", cwd=tmp_path)
    lines = [line for line in again.stdout.splitlines() if "up to date" in line]
    assert lines == [f"outputs in {tmp_path / 'out'} are up to date: nothing to do"]
    assert "PIPELINE COMPLETE" not in again.stdout


def _shar(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "luigi", "--module", "luigi_tasks", "AlmShar", *args, "--local-scheduler"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_shar_says_what_it_wrote_and_where(tmp_path: Path) -> None:
    proc = _shar(tmp_path, "--output-dir", "out", "--shar-dir", "shards")
    assert f"Shar export: 1 shards, 3 windows written to {tmp_path / 'shards'}" in proc.stdout
    assert "WARNING:" not in proc.stderr


def test_shar_warns_when_no_window_was_kept(tmp_path: Path) -> None:
    proc = _shar(tmp_path, "--output-dir", "out", "--shar-dir", "shards", "--target-window-duration", "10000")
    assert "Shar export: 0 shards, 0 windows written" in proc.stdout
    assert "WARNING: the Shar export wrote nothing: AlmWindows kept no windows" in proc.stderr


def test_shar_warns_when_every_window_was_rejected(tmp_path: Path) -> None:
    manifest = tmp_path / "no_audio.jsonl"
    with open(manifest, "w") as f:
        for i, entry in enumerate(sample_entries()):
            f.write(json.dumps({**entry, "audio_filepath": str(tmp_path / "absent" / f"{i}.flac")}) + "\n")
    proc = _shar(tmp_path, "--manifest-path", str(manifest), "--output-dir", "out", "--shar-dir", "shards",
                 "--audio-on-error", "skip")
    assert "Shar export: 0 shards, 0 windows written" in proc.stdout and "3 rejected" in proc.stdout
    assert "WARNING: the Shar export wrote nothing: all 3 windows were rejected" in proc.stderr
