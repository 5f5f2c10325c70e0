"""docs/training.md runs as written: its shell commands, then its Python code, in a fresh directory."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


def _run_command(line: str, cwd: Path) -> None:
    """Run one documented command; ``lhotse-alm`` is run through this interpreter's console script."""
    argv = shlex.split(line)
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0] == "lhotse-alm":
        exe = Path(sys.executable).with_name("lhotse-alm")
        argv = ([str(exe)] if exe.exists() else [sys.executable, "-m", "alm_lhotse"]) + argv[1:]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{line}\n{done.stderr}"


def test_training_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    commands = [line for block in _blocks("bash") for line in block.splitlines() if line.strip()]
    assert commands and any(c.startswith("lhotse-alm shar export-alm") for c in commands)
    for line in commands:
        _run_command(line, tmp_path)
    code = "\n".join(_blocks("python"))
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():  # the page uses no deprecated Lhotse API
        warnings.filterwarnings("error", category=DeprecationWarning, module=r"lhotse(\.|$)")
        exec(compile(code, str(DOC), "exec"), {"__name__": "training_example"})
    printed = capsys.readouterr().out
    assert "torch.Size([" in printed and "speaker_" in printed
