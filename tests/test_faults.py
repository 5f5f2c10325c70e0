"""Faults while writing: full disk, read-only output, concurrent runs into one directory.

A failed write raises ``OutputError`` (an ``OSError``) naming the output directory and
leaves no output file behind; two concurrent runs leave one run's complete outputs.
Real faults are used where the machine allows: a tiny or read-only tmpfs needs root
(skipped otherwise), a file size limit (``RLIMIT_FSIZE``) works for everyone.
"""

from __future__ import annotations

import errno
import gzip
import json
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
import pytest

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.errors import OutputError
from alm_lhotse.execution.runner import run_job
from alm_lhotse.outputs.streams import FINAL_NAMES
from alm_lhotse.sample import sample_entries

WCFG = WindowConfig()
OCFG = OverlapConfig()
FINAL_FILES = tuple(FINAL_NAMES.values())
SMALL = 64 * 1024


def files_below(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1 MB of input whose outputs are several times larger than ``SMALL``."""
    path = tmp_path_factory.mktemp("in") / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in sample_entries() * 16))
    return path


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a tmpfs with the given options; skip when this process may not mount."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        target = tmp_path / f"mnt{len(mounted)}"
        target.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", str(target)], check=True)


def _expect_output_error(manifest: Path, out: Path, code: int, jobs: int = 1) -> None:
    with pytest.raises(OutputError) as info:
        run_job(manifest, out, WCFG, OCFG, jobs=jobs, partition_bytes=200_000)
    assert info.value.errno == code
    assert f"cannot write the outputs into {out}: {os.strerror(code)}; no output was kept" in str(info.value)
    assert isinstance(info.value, OSError)
    if out.exists():
        assert files_below(out) == []


@pytest.mark.parametrize("jobs", [1, 3])
def test_full_disk(manifest: Path, mount_tmpfs: Callable[[str], Path], jobs: int) -> None:
    disk = mount_tmpfs(f"size={SMALL}")
    _expect_output_error(manifest, disk / "out", errno.ENOSPC, jobs)
    assert files_below(disk) == []


def test_full_disk_keeps_earlier_outputs(manifest: Path, mount_tmpfs: Callable[[str], Path], tmp_path: Path) -> None:
    """Outputs of an earlier, smaller run survive a rerun that runs out of space."""
    disk = mount_tmpfs(f"size={SMALL * 4}")
    small = tmp_path / "small.jsonl"
    small.write_bytes(orjson.dumps(sample_entries()[0]) + b"\n")
    run_job(small, disk, WCFG, OCFG)
    before = {name: (disk / name).read_bytes() for name in FINAL_FILES}
    with pytest.raises(OutputError):
        run_job(manifest, disk, WCFG, OCFG)
    assert {name: (disk / name).read_bytes() for name in FINAL_FILES} == before


def in_child(call: Callable[[], Any]) -> dict[str, Any]:
    """Run ``call`` in a forked child (to change its limits or user); return the error it
    raised as ``error`` (class name, None if none), ``message`` and ``errno``."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            call()
            result = {"error": None}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent as data
            result = {"error": type(exc).__name__, "message": str(exc), "errno": getattr(exc, "errno", None)}
        os.write(write_fd, json.dumps(result).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_file_size_limit_works_like_a_full_disk(manifest: Path, tmp_path: Path) -> None:
    """Without root: RLIMIT_FSIZE makes writes past 64 KiB fail (EFBIG), as a full disk would."""
    out = tmp_path / "out"

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (SMALL, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        run_job(manifest, out, WCFG, OCFG)

    result = in_child(limited)
    assert result["error"] == "OutputError", result
    assert result["errno"] == errno.EFBIG
    assert f"cannot write the outputs into {out}" in result["message"]
    assert files_below(out) == []


def test_read_only_output_directory(manifest: Path, mount_tmpfs: Callable[[str], Path], tmp_path: Path) -> None:
    """Root ignores permission bits, so as root a read-only mount stands in for chmod."""
    if os.geteuid() == 0:
        read_only = mount_tmpfs("ro,size=64k")
    else:
        read_only = tmp_path / "ro"
        read_only.mkdir()
        read_only.chmod(0o555)
    code = errno.EROFS if os.geteuid() == 0 else errno.EACCES
    _expect_output_error(manifest, read_only, code)
    _expect_output_error(manifest, read_only / "out", code)
    assert not (read_only / "out").exists()


def test_output_directory_under_a_file(manifest: Path, tmp_path: Path) -> None:
    """A path that cannot become a directory, for any user."""
    (tmp_path / "file").write_text("x")
    _expect_output_error(manifest, tmp_path / "file" / "out", errno.ENOTDIR)


def _outputs(directory: Path) -> dict[str, bytes]:
    return {name: gzip.decompress((directory / name).read_bytes()) if name.endswith(".gz")
            else (directory / name).read_bytes() for name in FINAL_FILES}


def test_concurrent_runs_leave_one_complete_run(manifest: Path, tmp_path: Path) -> None:
    """Two runs with different inputs into one directory at once: the result is exactly
    one run's outputs, never a mix, and no temporaries remain."""
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in sample_entries()[:2] * 5))
    expected = []
    for name, path in (("a", manifest), ("b", other)):
        run_job(path, tmp_path / name, WCFG, OCFG)
        expected.append(_outputs(tmp_path / name))
    ctx = multiprocessing.get_context("fork")
    for attempt in range(3):
        out = tmp_path / f"shared{attempt}"
        runs = [ctx.Process(target=run_job, args=(p, out, WCFG, OCFG), kwargs={"jobs": 2}) for p in (manifest, other)]
        for run in runs:
            run.start()
        for run in runs:
            run.join(120)
            assert run.exitcode == 0
        assert _outputs(out) in expected
        assert files_below(out) == sorted([*FINAL_FILES, ".alm.lock"])


_LOCK_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(300)
"""


def test_commit_waits_for_the_directory_lock(manifest: Path, tmp_path: Path) -> None:
    """While another process (say, the Luigi pipeline) holds the lock, no final file
    appears; the lock is released by ending its holder, as the kernel does for a crash."""
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(out / ".alm.lock")],
        stdout=subprocess.PIPE, text=True,
    )
    run = multiprocessing.get_context("fork").Process(target=run_job, args=(manifest, out, WCFG, OCFG))
    try:
        assert holder.stdout.readline().strip() == "locked"
        run.start()
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".alm_output.jsonl.tmp") for p in out.iterdir()):
            assert time.monotonic() < deadline and run.is_alive()
            time.sleep(0.05)
        time.sleep(1.0)
        assert run.is_alive()
        assert not (out / "alm_output.jsonl").exists()
    finally:
        holder.kill()
        holder.wait(60)
    run.join(120)
    assert run.exitcode == 0
    assert files_below(out) == sorted([*FINAL_FILES, ".alm.lock"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from alm_lhotse.cli import main; main()", "prepare", "alm", *args, "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_cli_output_errors_are_one_line(manifest: Path, mount_tmpfs: Callable[[str], Path], tmp_path: Path) -> None:
    """``lhotse-alm prepare alm`` into a path under a file or on a read-only filesystem:
    one ``Error:`` line naming the directory and the reason, no traceback."""
    (tmp_path / "file").write_text("x")
    read_only = mount_tmpfs("ro,size=64k") if os.geteuid() == 0 else tmp_path / "ro"
    if os.geteuid() != 0:
        read_only.mkdir()
        read_only.chmod(0o555)
    for out in (tmp_path / "file" / "out", read_only / "out", read_only):
        done = _cli(str(manifest), str(out))
        assert done.returncode == 1
        assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
        assert done.stderr.startswith(f"Error: cannot write the outputs into {out}: ")


@pytest.mark.parametrize("option", [("--tolerance", "abc"), ("--min-speakers", "4", "--max-speakers", "2"), ("--bogus",)])
def test_cli_parameter_errors_are_one_line(manifest: Path, tmp_path: Path, option: tuple[str, ...]) -> None:
    done = _cli(str(manifest), str(tmp_path / "out"), *option)
    assert done.returncode == 2
    assert done.stderr.startswith("Error: ") and len(done.stderr.splitlines()) == 1, done.stderr
    assert not (tmp_path / "out").exists()
