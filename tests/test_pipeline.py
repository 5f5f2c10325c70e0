"""The Luigi pipeline as users run it: a ``luigi`` process, its exit code and its outputs."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from itertools import islice
from pathlib import Path
from typing import Any, Optional

import pytest

from alm_lhotse.sample import sample_entries
from tests.conftest import ORACLE, ROOT, oracle_expected, oracle_totals, require_shared

FINAL_FILES = (
    "alm_output.jsonl",
    "rejects.jsonl",
    "lhotse/alm_recordings_all.jsonl.gz",
    "lhotse/alm_supervisions_all.jsonl.gz",
    "lhotse/alm_cuts_windows_all.jsonl.gz",
)
RECIPES = ROOT / "recipes"
TIMEOUT_S = 300


def luigi_cmd(*args: str, workers: int = 1, local: bool = True) -> list[str]:
    cmd = [sys.executable, "-m", "luigi", "--module", "luigi_tasks", "AlmWindows", *args, "--workers", str(workers)]
    return cmd + ["--local-scheduler"] if local else cmd


def clean_env(env: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The test's environment without a developer's LUIGI_CONFIG_PATH, plus ``env``."""
    full = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    full.update(env or {})
    return full


def run_luigi(
    *args: str, cwd: Path, workers: int = 1, env: Optional[dict[str, str]] = None, expect: Optional[int] = 0
) -> subprocess.CompletedProcess:
    """One pipeline run in its own process; checks the exit code unless ``expect`` is None."""
    proc = subprocess.run(
        luigi_cmd(*args, workers=workers), cwd=cwd, env=clean_env(env), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    if expect is not None:
        assert proc.returncode == expect, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def final_bytes(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in FINAL_FILES}


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def summary_without_timings(out: Path) -> dict[str, Any]:
    data = summary(out)
    data.pop("timings")
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_repeated_sample(path: Path, entries: int) -> Path:
    """The bundled sample repeated with distinct audio paths: a moderately sized input."""
    base = sample_entries()
    with open(path, "w") as f:
        for i in range(entries):
            entry = dict(base[i % len(base)])
            entry["audio_filepath"] = f"/data/repeat/{i:06d}_{Path(entry['audio_filepath']).name}"
            f.write(json.dumps(entry) + "\n")
    return path


def ran_tasks(proc: subprocess.CompletedProcess, family: str) -> int:
    """How many tasks of ``family`` this luigi process ran (from its log)."""
    return sum(1 for line in proc.stderr.splitlines() if f") running   {family}(" in line)


# --- the quick start and the bundled sample ---------------------------------------------


def test_quick_start_runs_the_bundled_sample_from_any_directory(tmp_path: Path) -> None:
    proc = run_luigi(cwd=tmp_path)
    out = tmp_path / "alm_output"
    assert "PIPELINE COMPLETE" in proc.stdout
    assert "output_windows (after overlap): 3" in proc.stdout
    for name in FINAL_FILES:
        assert (out / name).is_file(), name
    s = summary(out)
    assert (s["entries"], s["windows"], s["filtered_windows"]) == (4, 31, 3)
    assert set(s) >= {"entries", "windows", "filtered_windows", "filtered_dur", "truncation_events", "timings"}
    assert set(s["timings"]) >= {"discovery_s", "read_convert_s", "windows_overlap_s", "export_parts_s", "merge_s"}
    assert "windows: 100%" in proc.stderr  # the job's progress bar
    assert "DEBUG:" not in proc.stderr and "INFO:" not in proc.stderr  # luigi's chatter is off
    audio = [Path(e["audio_filepath"]) for e in read_jsonl(out / "sample_data" / "sample_manifest.jsonl")]
    assert all(p.is_absolute() and p.is_file() for p in audio)

    before = final_bytes(out)
    again = run_luigi("--log-level", "INFO", cwd=tmp_path)
    assert "up to date" in again.stdout
    assert ran_tasks(again, "AlmPart") == 0 and ran_tasks(again, "AlmWindows") == 0
    assert final_bytes(out) == before


def test_lhotse_manifests_load(tmp_path: Path) -> None:
    from lhotse import CutSet, RecordingSet, SupervisionSet, load_manifest

    run_luigi(cwd=tmp_path)
    lhotse_dir = tmp_path / "alm_output" / "lhotse"
    recordings = load_manifest(lhotse_dir / "alm_recordings_all.jsonl.gz")
    supervisions = load_manifest(lhotse_dir / "alm_supervisions_all.jsonl.gz")
    cuts = CutSet.from_file(lhotse_dir / "alm_cuts_windows_all.jsonl.gz")
    assert isinstance(recordings, RecordingSet) and len(recordings) == 4
    assert isinstance(supervisions, SupervisionSet) and len(supervisions) > 0
    assert len(cuts) == 3
    cut = next(iter(cuts))
    assert 108 <= cut.duration <= 132
    assert cut.load_audio().shape[1] == cut.num_samples


# --- parity with the reference through the pipeline, parameters from CLI and recipes ----


def _oracle_case(name: str) -> dict[str, Any]:
    return next(c for c in json.loads((ORACLE / "cases.json").read_text())["cases"] if c["name"] == name)


def _assert_matches_oracle(out: Path, case: dict[str, Any]) -> None:
    got = read_jsonl(out / "alm_output.jsonl")
    expected = read_jsonl(oracle_expected(case))
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected), 1):
        assert g == e, f"{case['name']}: entry {i} differs"
    s = summary(out)
    for key, value in oracle_totals(case, expected).items():
        assert s[key] == value, key


def test_reference_fixture_and_nested_directory(tmp_path: Path, fixtures_dir: Path, sample_manifest: Path) -> None:
    run_luigi("--manifest-path", str(sample_manifest), "--output-dir", "s", cwd=tmp_path)
    _assert_matches_oracle(tmp_path / "s", _oracle_case("sample_default"))

    proc = run_luigi("--manifest-path", str(fixtures_dir / "nested_manifests"), "--output-dir", "n", cwd=tmp_path, workers=2)
    s = summary(tmp_path / "n")
    assert (s["files"], s["entries"], s["windows"], s["filtered_windows"], s["filtered_dur"]) == (4, 20, 724, 100, 12142.0)
    assert "output_windows (after overlap): 100" in proc.stdout
    single = read_jsonl(tmp_path / "s" / "alm_output.jsonl")
    assert read_jsonl(tmp_path / "n" / "alm_output.jsonl") == single * 4


@pytest.mark.parametrize(
    "case, recipe, extra",
    [
        ("seed1_default", "default.cfg", []),
        ("seed1_t60", "window_60s.cfg", []),
        ("seed1_spk23_ov0", "speakers_2_3.cfg", ["--overlap-percentage", "0"]),
        ("seed1_spk23_ov0", "overlap_0.cfg", ["--min-speakers", "2", "--max-speakers", "3"]),
    ],
)
def test_recipes_match_the_reference(tmp_path: Path, case: str, recipe: str, extra: list[str]) -> None:
    require_shared()
    c = _oracle_case(case)
    env = {"LUIGI_CONFIG_PATH": str(RECIPES / recipe)}
    run_luigi("--manifest-path", str(ORACLE / c["input"]), "--output-dir", "out", *extra, cwd=tmp_path, env=env)
    _assert_matches_oracle(tmp_path / "out", c)


def test_every_parameter_from_the_command_line(tmp_path: Path) -> None:
    require_shared()
    c = _oracle_case("seed1_head50_notrunc_ov100")
    with gzip.open(ORACLE / c["input"], "rt") as f:
        (tmp_path / "head50.jsonl").write_text("".join(islice((x for x in f if x.strip()), c["input_first_n"])))
    run_luigi(
        "--manifest-path", "head50.jsonl", "--output-dir", "out",
        "--truncation", "false", "--overlap-percentage", "100", "--drop-fields", ",", "--drop-fields-top-level", "words",
        "--target-window-duration", "120", "--tolerance", "0.1", "--min-sample-rate", "16000",
        "--min-bandwidth", "8000", "--overlap-target-duration", "120",
        cwd=tmp_path,
    )
    _assert_matches_oracle(tmp_path / "out", c)
    window = summary(tmp_path / "out")["parameters"]["window"]
    assert window["truncation"] is False and window["drop_fields"] == "" and window["drop_fields_top_level"] == "words"


def test_odd_data_is_counted_and_sort_segments_is_passed(tmp_path: Path) -> None:
    require_shared()
    c = _oracle_case("seed2_edge_default")
    run_luigi("--manifest-path", str(ORACLE / c["input"]), "--output-dir", "edge", cwd=tmp_path)
    _assert_matches_oracle(tmp_path / "edge", c)
    s = summary(tmp_path / "edge")
    assert s["unsorted_entries"] > 0
    assert {"overlapping_segment_entries", "duplicate_window_entries", "low_sample_rate_entries"} <= set(s)

    run_luigi("--manifest-path", str(ORACLE / c["input"]), "--output-dir", "edge", "--sort-segments", cwd=tmp_path)
    assert summary(tmp_path / "edge")["parameters"]["window"]["sort_segments"] is True


def test_config_file_section(tmp_path: Path) -> None:
    (tmp_path / "luigi.cfg").write_text("[AlmWindows]\ntarget_window_duration = 60\ntolerance = 0.15\noutput_dir = cfg_out\n")
    run_luigi(cwd=tmp_path)
    window = summary(tmp_path / "cfg_out")["parameters"]["window"]
    assert (window["target_window_duration"], window["tolerance"]) == (60.0, 0.15)


# --- checkpoints: parameter changes, added files ----------------------------------------


def test_parameter_change_regenerates_and_reuses_discovery(tmp_path: Path) -> None:
    run_luigi(cwd=tmp_path)
    out = tmp_path / "alm_output"
    first = final_bytes(out)
    plans = sorted((out / ".work" / "discovery").iterdir())

    proc = run_luigi(
        "--target-window-duration", "60", "--tolerance", "0.15", "--overlap-target-duration", "60", "--log-level", "INFO",
        cwd=tmp_path,
    )
    assert ran_tasks(proc, "AlmPart") == 1 and ran_tasks(proc, "AlmDiscover") == 0
    assert sorted((out / ".work" / "discovery").iterdir()) == plans
    assert final_bytes(out) != first
    assert summary(out)["parameters"]["window"]["target_window_duration"] == 60.0
    assert summary(out)["filtered_windows"] == 7

    run_luigi(cwd=tmp_path)
    assert final_bytes(out) == first
    assert summary(out)["filtered_windows"] == 3


def test_added_input_files_are_picked_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_repeated_sample(data / "a.jsonl", 4)
    run_luigi("--manifest-path", "data", "--output-dir", "out", cwd=tmp_path)
    assert summary(tmp_path / "out")["entries"] == 4
    write_repeated_sample(data / "b.jsonl", 8)
    run_luigi("--manifest-path", "data", "--output-dir", "out", cwd=tmp_path)
    s = summary(tmp_path / "out")
    assert (s["files"], s["entries"]) == (2, 12)


# --- error policy and exit codes --------------------------------------------------------


def _bad_manifest(path: Path) -> list[str]:
    lines = [json.dumps(e) for e in sample_entries()]
    bad = dict(sample_entries()[1])
    bad["audio_sample_rate"] = "sixteen thousand"
    lines.insert(2, json.dumps(bad))
    path.write_text("\n".join(lines) + "\n")
    return lines


def test_on_error_fail_names_the_line_and_leaves_no_outputs(tmp_path: Path) -> None:
    _bad_manifest(tmp_path / "bad.jsonl")
    proc = run_luigi("--manifest-path", "bad.jsonl", "--output-dir", "out", cwd=tmp_path, expect=30)
    message = next(line for line in proc.stderr.splitlines() if line.startswith("ERROR: bad manifest line"))
    assert "bad.jsonl:3" in message and "audio_sample_rate" in message
    for name in (*FINAL_FILES, "summary.json"):
        assert not (tmp_path / "out" / name).exists()


def test_on_error_skip_writes_rejects(tmp_path: Path) -> None:
    lines = _bad_manifest(tmp_path / "bad.jsonl")
    proc = run_luigi("--manifest-path", "bad.jsonl", "--output-dir", "out", "--on-error", "skip", cwd=tmp_path)
    out = tmp_path / "out"
    rejects = read_jsonl(out / "rejects.jsonl")
    assert len(rejects) == 1
    assert rejects[0]["line"] == 3 and rejects[0]["source"].endswith("bad.jsonl")
    assert rejects[0]["field"] == "audio_sample_rate" and rejects[0]["reason"]
    assert rejects[0]["raw"] == lines[2]
    s = summary(out)
    assert (s["entries"], s["rejected"]) == (4, 1)
    assert "rejected entries: 1" in proc.stdout
    assert len(read_jsonl(out / "alm_output.jsonl")) == 4


def test_missing_input_fails(tmp_path: Path) -> None:
    proc = run_luigi("--manifest-path", "nowhere.jsonl", cwd=tmp_path, expect=35)
    assert "nowhere.jsonl" in proc.stderr and "no such manifest" in proc.stderr


def test_invalid_parameter_fails(tmp_path: Path) -> None:
    proc = run_luigi("--overlap-percentage", "150", cwd=tmp_path, expect=35)
    assert "overlap_percentage" in proc.stderr


def test_unwritable_output_directory_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    proc = run_luigi("--output-dir", "a_file/out", cwd=tmp_path, expect=None)
    assert proc.returncode != 0
    assert "not writable" in proc.stderr
    if os.geteuid() != 0:  # root writes into read-only directories anyway
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        proc = run_luigi("--output-dir", "ro", cwd=tmp_path, expect=None)
        assert proc.returncode != 0 and "not writable" in proc.stderr
        assert not (ro / "alm_output.jsonl").exists()


def test_exit_codes_are_overridable_by_config(tmp_path: Path) -> None:
    _bad_manifest(tmp_path / "bad.jsonl")
    (tmp_path / "codes.cfg").write_text("[retcode]\ntask_failed = 0\n")
    env = {"LUIGI_CONFIG_PATH": str(tmp_path / "codes.cfg")}
    run_luigi("--manifest-path", "bad.jsonl", "--output-dir", "out", cwd=tmp_path, env=env, expect=0)


def test_failed_merge_leaves_no_final_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk during the merge: the error says so and no final output survives. The
    partitions' outputs (the staged window streams among them) stay, so the next run
    merges them again and ends byte-identical to a clean run."""
    import errno

    import luigi

    from luigi_tasks import merge

    def full_disk(part_dirs: Any, out: Path, names: Any, convert_dirs: Any = None) -> None:
        (out / "rejects.jsonl").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    manifest = write_repeated_sample(tmp_path / "in.jsonl", 12)
    args = ("--manifest-path", str(manifest), "--partition-bytes", "65536")
    run_luigi(*args, "--output-dir", "ref", cwd=tmp_path)
    monkeypatch.setattr(merge, "merge_parts", full_disk)
    task = merge.AlmWindows(manifest_path=str(manifest), output_dir=str(tmp_path / "out"), partition_bytes=65536)
    result = luigi.build([task], local_scheduler=True, detailed_summary=True, log_level="ERROR")
    assert not result.scheduling_succeeded
    for name in (*FINAL_FILES, "summary.json", ".alm_state.json"):
        assert not (tmp_path / "out" / name).exists()
    monkeypatch.undo()
    run_luigi(*args, "--output-dir", "out", cwd=tmp_path)
    assert final_bytes(tmp_path / "out") == final_bytes(tmp_path / "ref")
