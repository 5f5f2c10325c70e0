"""Kills at fixed moments: before each storage step of a run that replaces an earlier
run's outputs, by SIGKILL, SIGTERM and SIGINT. Right after the kill the final outputs
are one run's complete set (old or new); a re-run then ends byte-identical to an
uninterrupted run. The moments are counted steps, not times, so every trial is repeatable.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alm_lhotse.storage import JOURNAL_NAME
from tests.test_pipeline import FINAL_FILES, TIMEOUT_S, clean_env, final_bytes, run_luigi, summary_without_timings, write_repeated_sample

HARNESS = Path(__file__).with_name("kill_at_step.py")
ROOT = HARNESS.parent.parent
ENTRIES = 120
COMMON = ("--partition-bytes", str(128 * 1024))
OLD = ("--overlap-percentage", "0")  # the earlier run's parameters
NEW = ("--overlap-percentage", "50")


def _luigi_args(manifest: Path, out: Path, params: tuple[str, ...]) -> list[str]:
    return ["--module", "luigi_tasks", "AlmWindows", "--local-scheduler", "--manifest-path", str(manifest),
            "--output-dir", str(out), *COMMON, *params]


def _harness(step: int, sig: str, log: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = clean_env({"PYTHONPATH": str(ROOT)})
    cmd = [sys.executable, str(HARNESS), str(step), sig, str(log), "--", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def _files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in FINAL_FILES if (out / name).exists()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The input, the earlier run's outputs, an uninterrupted new run, and the steps of
    the new run over the earlier outputs."""
    tmp = tmp_path_factory.mktemp("kills")
    manifest = write_repeated_sample(tmp / "input.jsonl", ENTRIES)
    run_luigi("--manifest-path", str(manifest), "--output-dir", "old", *COMMON, *OLD, cwd=tmp)
    run_luigi("--manifest-path", str(manifest), "--output-dir", "new", *COMMON, *NEW, cwd=tmp)
    shutil.copytree(tmp / "old", tmp / "counted")
    log = tmp / "steps.log"
    done = _harness(0, "SIGKILL", log, _luigi_args(manifest, tmp / "counted", NEW), tmp)
    assert done.returncode == 0, done.stderr
    assert _files(tmp / "counted") == final_bytes(tmp / "new")
    return {"tmp": tmp, "manifest": manifest, "old": tmp / "old", "new": tmp / "new", "log": log}


def _steps(runs: dict[str, Path]) -> tuple[int, list[int]]:
    """How many steps there are, and which of them touch the final outputs (the merge)."""
    lines = runs["log"].read_text().splitlines()
    work = str(runs["tmp"] / "counted" / ".work")
    merge = [i + 1 for i, line in enumerate(lines) if not line.split(" ", 1)[1].startswith(work)]
    return len(lines), merge


def _moments(runs: dict[str, Path], sig: str) -> list[int]:
    """SIGKILL before every step of the merge (and the one after it); SIGTERM and SIGINT,
    which wait for the renames, at its first, middle and last step; a few earlier moments."""
    total, merge = _steps(runs)
    assert merge, "the run published nothing"
    window = list(range(merge[0] - 1, min(total, merge[-1] + 1) + 1))
    if sig != "SIGKILL":
        window = [window[0], window[len(window) // 2], window[-1]]
    earlier = range(1, merge[0] - 1, max(1, merge[0] // (4 if sig == "SIGKILL" else 2)))
    return sorted({*earlier, *window} - {0})


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_kill_at_each_step_leaves_one_set_and_resumes_byte_identical(runs: dict[str, Path], sig: str) -> None:
    old, new = _files(runs["old"]), final_bytes(runs["new"])
    for step in _moments(runs, sig):
        out = runs["tmp"] / f"{sig}-{step}"
        shutil.copytree(runs["old"], out)
        killed = _harness(step, sig, runs["tmp"] / "unused.log", _luigi_args(runs["manifest"], out, NEW), runs["tmp"])
        assert killed.returncode != 0, f"step {step}: the run was not stopped"
        journal = (out / JOURNAL_NAME).exists()
        if sig != "SIGKILL" or not journal:
            assert not journal, f"{sig} at step {step} left a publish half done"
            assert _files(out) in (old, new), f"{sig} at step {step} left a mix of two runs' outputs"
        resumed = run_luigi(*_luigi_args(runs["manifest"], out, NEW)[4:], cwd=runs["tmp"])
        assert resumed.returncode == 0
        assert final_bytes(out) == new, f"{sig} at step {step}: the resumed outputs differ"
        assert summary_without_timings(out) == summary_without_timings(runs["new"])
        assert not (out / JOURNAL_NAME).exists()
        shutil.rmtree(out)


@pytest.mark.parametrize("killed_before", range(1, 5))
def test_a_set_killed_half_way_is_rolled_forward(tmp_path: Path, killed_before: int) -> None:
    """The primitive under both the pipeline and ``run_job``: after a kill between any two
    renames, ``finish_publishing`` completes the set; before the journal, the old set stays."""
    import multiprocessing
    import os
    import signal

    from alm_lhotse import storage

    names = ["a.jsonl", "lhotse/b.jsonl.gz", "summary.json"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("old")
        (tmp_path / "new" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "new" / name).write_text("new")

    def publish() -> None:
        real, calls = os.rename, []

        def rename(*args: object) -> None:
            calls.append(args)
            if len(calls) == killed_before:
                os.kill(os.getpid(), signal.SIGKILL)
            real(*args)

        storage.os.rename = rename  # type: ignore[assignment]  # a forked child's own module
        storage.os.replace = rename  # type: ignore[assignment]
        storage.publish_set(tmp_path, [(tmp_path / "new" / n, tmp_path / n) for n in names])

    child = multiprocessing.get_context("fork").Process(target=publish)
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    # The first step is the journal itself: killed before it, nothing changed.
    if killed_before == 1:
        assert {(tmp_path / n).read_text() for n in names} == {"old"}
    else:
        assert (tmp_path / storage.JOURNAL_NAME).exists()
    assert storage.finish_publishing(tmp_path) == (killed_before > 1)
    assert {(tmp_path / n).read_text() for n in names} == ({"old"} if killed_before == 1 else {"new"})
    assert not (tmp_path / storage.JOURNAL_NAME).exists()
