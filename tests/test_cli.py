"""lhotse-alm as a new user runs it: installed console script, stock Lhotse commands, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from lhotse import CutSet

from alm_lhotse.cli import cli
from alm_lhotse.config import OverlapConfig, WindowConfig
from tests.test_audio import write_conversations


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The console script in a fresh process, as a shell user would call it."""
    exe = Path(sys.executable).with_name("lhotse-alm")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "alm_lhotse"]
    return subprocess.run(command + list(args), cwd=cwd, capture_output=True, text=True, timeout=300)


def test_prepare_then_stock_lhotse_commands(sample_manifest: Path, tmp_path: Path) -> None:
    done = run("prepare", "alm", str(sample_manifest), "out", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "5 entries -> 181 windows -> 25 kept (3035.5 s)" in done.stdout
    lhotse_dir = tmp_path / "out/lhotse"
    pair = run(
        "validate-pair",
        str(lhotse_dir / "alm_recordings_all.jsonl.gz"),
        str(lhotse_dir / "alm_supervisions_all.jsonl.gz"),
        cwd=tmp_path,
    )
    assert pair.returncode == 0, pair.stderr
    described = run("cut", "describe", str(lhotse_dir / "alm_cuts_windows_all.jsonl.gz"), cwd=tmp_path)
    assert described.returncode == 0 and "Cuts count:" in described.stdout and "25" in described.stdout


def test_bad_line_fails_with_file_line_field_and_reason(sample_manifest: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(sample_manifest.read_bytes() + b'{"audio_filepath": "a.wav", "audio_sample_rate": -3, "segments": []}\n')
    failed = run("prepare", "alm", "bad.jsonl", "out", "--no-progress", cwd=tmp_path)
    assert failed.returncode != 0
    assert "bad.jsonl:6: field 'audio_sample_rate': must be a positive number, got -3" in failed.stderr


def test_audio_to_shar_with_ours_and_lhotse_stock_export(tmp_path: Path) -> None:
    write_conversations(tmp_path / "data", count=2, omit=("audio_sample_rate",))
    env_run = lambda *a: run(*a, cwd=tmp_path)  # noqa: E731
    assert env_run("prepare", "alm", "data/manifest.jsonl", "out", "-j", "2", "--overlap-percentage", "90", "--no-progress").returncode == 0
    cuts = "out/lhotse/alm_cuts_windows_all.jsonl.gz"
    ours = env_run("shar", "export-alm", cuts, "shar", "--shard-size", "2", "--no-progress")
    assert ours.returncode == 0, ours.stderr
    windows = CutSet.from_file(tmp_path / cuts).to_eager()
    back = list(CutSet.from_shar(in_dir=tmp_path / "shar"))
    assert [c.id for c in back] == list(windows.ids)
    assert (back[0].load_audio() == windows[0].load_audio()).all()
    (tmp_path / "stock").mkdir()
    stock = env_run("shar", "export", "-a", "flac", "--no-shuffle", cuts, "stock")
    assert stock.returncode == 0, stock.stderr
    assert len(list(CutSet.from_shar(in_dir=tmp_path / "stock"))) == len(windows)


def test_missing_audio_in_shar_export_names_window_and_file(tmp_path: Path) -> None:
    manifest = write_conversations(tmp_path / "data", count=1)
    runner = CliRunner()
    assert runner.invoke(cli, ["prepare", "alm", str(manifest), str(tmp_path / "out"), "--no-progress"]).exit_code == 0
    (tmp_path / "data/conv0.wav").unlink()
    cuts = str(tmp_path / "out/lhotse/alm_cuts_windows_all.jsonl.gz")
    failed = runner.invoke(cli, ["shar", "export-alm", cuts, str(tmp_path / "shar"), "--no-progress"])
    assert failed.exit_code == 1
    assert "window conv0-" in failed.output and "conv0.wav: file does not exist" in failed.output
    skipped = runner.invoke(cli, ["shar", "export-alm", cuts, str(tmp_path / "shar2"), "--on-error", "skip", "--no-progress"])
    assert skipped.exit_code == 0 and "windows rejected: see" in skipped.output


@pytest.mark.parametrize("overlap_target_flag", ["--overlap-target-duration", "--target-duration"])
def test_every_window_and_overlap_option_reaches_the_core(sample_manifest: Path, tmp_path: Path, overlap_target_flag: str) -> None:
    args = [
        "--target-window-duration", "60", "--tolerance", "0.2", "--min-sample-rate", "8000",
        "--min-bandwidth", "7000", "--min-speakers", "1", "--max-speakers", "4", "--no-truncation",
        "--drop-fields", "words,metrics", "--drop-fields-top-level", "segments", "--sort-segments",
        "--overlap-percentage", "25.5", overlap_target_flag, "50",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, ["prepare", "alm", str(sample_manifest), str(tmp_path / "out"), "--no-progress", *args])
    assert result.exit_code == 0, result.output
    summary = orjson.loads((tmp_path / "out/prepare_summary.json").read_bytes())
    assert summary["window_config"] == WindowConfig(
        target_window_duration=60.0, tolerance=0.2, min_sample_rate=8000, min_bandwidth=7000, min_speakers=1,
        max_speakers=4, truncation=False, drop_fields="words,metrics", drop_fields_top_level="segments",
        sort_segments=True,
    ).to_dict()  # fmt: skip
    assert summary["overlap_config"] == OverlapConfig(overlap_percentage=25.5, overlap_target_duration=50.0).to_dict()


def test_skip_writes_rejects_and_counts_them(sample_manifest: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"{oops\n" + sample_manifest.read_bytes())
    result = CliRunner().invoke(cli, ["prepare", "alm", str(bad), str(tmp_path / "out"), "--on-error", "skip", "--no-progress"])
    assert result.exit_code == 0
    assert "1 lines rejected" in result.output
    reject = orjson.loads((tmp_path / "out/rejects.jsonl").read_bytes())
    assert reject["line"] == 1 and reject["source"] == str(bad)


@pytest.mark.parametrize("module", [True, False])
def test_help_lists_our_and_stock_commands(module: bool, tmp_path: Path) -> None:
    if module:
        done = subprocess.run(
            [sys.executable, "-m", "alm_lhotse", "prepare", "--help"], capture_output=True, text=True, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0 and "python -m alm_lhotse prepare" in done.stdout
        assert " alm " in done.stdout and "librispeech" in done.stdout
    else:
        result = CliRunner().invoke(cli, ["shar", "--help"])
        assert "export-alm" in result.output and "export " in result.output
