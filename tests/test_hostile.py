"""Hostile input of issue 15: values whose derived numbers do not fit the outputs, nesting
past orjson's limits, fractional sample rates, file names that are not UTF-8 and output
directories inside input directories. Each is processed or rejected naming file, line
and field, in both error modes, through ``run_job`` and through the Luigi pipeline."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Optional

import orjson
import pytest

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.errors import ManifestError
from alm_lhotse.execution.runner import run_job
from alm_lhotse.reading.discovery import discover_manifests
from alm_lhotse.reading.reader import (
    MAX_DEPTH, _deep_text_path, _explain_json_error, _find_number, _too_deep, parse_entry, read_entries,
)
from alm_lhotse.sample import sample_entries
from tests.test_bad_input import (  # noqa: F401 (clean_run is a fixture)
    COMPAT,
    clean_run,
    good_lines,
    mutate,
    normalized_outputs,
    output_files,
    reject_record,
    rejects,
    write,
    _set,
)
from tests.test_pipeline import read_jsonl, run_luigi, summary

WCFG = WindowConfig()
OCFG = OverlapConfig()
BIG = 2**63


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep (itself included), built without recursion."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def raw_nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _add(key: str, raw: bytes) -> bytes:
    """The first good entry with ``"key": raw`` added as its last top-level field."""
    line = mutate(lambda e: None)
    return line[:-1] + b', "' + key.encode() + b'": ' + raw + b"}"


def _end_without_duration(value: Any) -> Any:
    def change(entry: dict) -> None:
        entry.pop("duration", None)
        entry["segments"][2]["end"] = value

    return change


def _fast_rate_end_without_duration(value: Any) -> Any:
    """A segment end inside the time limit whose sample count at 2**30 Hz is not."""
    def change(entry: dict) -> None:
        _end_without_duration(value)(entry)
        entry["audio_sample_rate"] = 2**30

    return change


def _segment_time(index: int, key: str, value: Any) -> Any:
    def change(entry: dict) -> None:
        entry["segments"][index][key] = value

    return change


def _word_end(value: Any) -> Any:
    def change(entry: dict) -> None:
        seg = entry["segments"][1]
        seg["words"] = [{"word": "w", "start": seg["start"], "end": value}]

    return change


# (id, bad line, field named in the error, words the reason must contain)
HOSTILE_LINES: list[tuple[str, bytes, Optional[str], str]] = [
    ("rate-1e300", mutate(_set("audio_sample_rate", 1e300)), "audio_sample_rate", "below 2**63"),
    ("rate-2**63", mutate(_set("audio_sample_rate", BIG)), "audio_sample_rate", "below 2**63"),
    ("rate-half", mutate(_set("audio_sample_rate", 0.5)), "audio_sample_rate", "whole number"),
    ("rate-fractional", mutate(_set("audio_sample_rate", 16000.5)), "audio_sample_rate", "whole number"),
    ("rate-denormal", mutate(_set("audio_sample_rate", 5e-324)), "audio_sample_rate", "whole number"),
    ("duration-2e15", mutate(_set("duration", 2e15)), "duration", "2**63 samples"),
    ("duration-max-uint64", mutate(_set("duration", 2**64 - 1)), "duration", "2**63 samples"),
    ("duration-1e308", mutate(_set("duration", 1e308)), "duration", "2**63 samples"),
    ("segment-end-1e300", mutate(_end_without_duration(1e300)), "segments[2].end", "below 2**40 seconds"),
    ("segment-end-2**63-int", mutate(_segment_time(2, "end", 2**63)), "segments[2].end", "below 2**40 seconds"),
    ("segment-end-inf-sum", mutate(_segment_time(0, "end", 1.7e308)), "segments[0].end", "below 2**40 seconds"),
    ("word-end-2**41", mutate(_word_end(2.0**41)), "segments[1].words[0].end", "below 2**40 seconds"),
    ("segment-end-int", mutate(_end_without_duration(2**62)), "segments[2].end", "below 2**40 seconds"),
    ("segment-end-samples", mutate(_fast_rate_end_without_duration(2.0**39)), "segments[2].end", "2**63 samples"),
    ("nested-201", _add("extra", raw_nested(MAX_DEPTH)), "extra[0][0][0][0]", "nested more than 200"),
    ("nested-260", _add("extra", raw_nested(260)), "extra[0][0][0][0]", "nested more than 200"),
    ("nested-1100", _add("extra", raw_nested(1100)), "extra[0][0][0][0]", "nested more than 200"),
    ("nested-100000", _add("extra", raw_nested(100_000)), "extra[0][0][0][0]", "nested more than 200"),
    ("nested-in-segment", mutate(_set("segments.1.extra", {"a": nested(MAX_DEPTH)})),
     "segments[1].extra.a[0]", "nested more than 200"),
    ("nested-list-line", raw_nested(300), None, "not a JSON object but list"),
]
IDS = [c[0] for c in HOSTILE_LINES]
CASES = [c[1:] for c in HOSTILE_LINES]


@pytest.mark.parametrize("bad,field,reason", CASES, ids=IDS)
def test_read_entries_names_the_field(tmp_path: Path, bad: bytes, field: Optional[str], reason: str) -> None:
    path = write(tmp_path / "in.jsonl", [good_lines()[0], bad])
    entries = read_entries(path)
    next(entries)
    with pytest.raises(ManifestError) as info:
        next(entries)
    assert (info.value.source, info.value.line, info.value.field) == (str(path), 2, field)
    assert reason in info.value.reason


@pytest.mark.parametrize("bad,field,reason", CASES, ids=IDS)
def test_run_job_fail_stops_cleanly(tmp_path: Path, bad: bytes, field: Optional[str], reason: str) -> None:
    good = good_lines()
    path = write(tmp_path / "in.jsonl", [good[0], good[1], bad, good[2]])
    with pytest.raises(ManifestError) as info:
        run_job(path, tmp_path / "out", WCFG, OCFG, on_error="fail")
    assert (info.value.line, info.value.field) == (3, field)
    assert reason in info.value.reason
    assert output_files(tmp_path / "out") == []


@pytest.mark.parametrize("bad,field,reason", CASES, ids=IDS)
def test_run_job_skip_rejects_and_processes_the_rest(
    tmp_path: Path, clean_run: dict[str, bytes], bad: bytes, field: Optional[str], reason: str  # noqa: F811
) -> None:
    good = good_lines()
    path = write(tmp_path / "in.jsonl", [good[0], bad, good[1], good[2]])
    result = run_job(path, tmp_path / "out", WCFG, OCFG, jobs=2, on_error="skip", partition_bytes=4000)
    assert (result["entries"], result["rejected"]) == (3, 1)
    [record] = rejects(tmp_path / "out")
    assert reason in record["reason"]
    assert record == reject_record(path, 2, field, record["reason"], bad)
    assert normalized_outputs(tmp_path / "out") == clean_run


# --- what stays accepted, at the edges ---------------------------------------------


def _lhotse(out: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in gzip.decompress((out / "lhotse" / name).read_bytes()).splitlines()]


def test_deepest_accepted_nesting_is_written_everywhere(tmp_path: Path) -> None:
    """Values nested exactly MAX_DEPTH levels (counting the entry) pass through every
    output: the compatible JSONL (also inside ``lost_win_full_data``) and the supervisions."""
    entry = sample_entries()[0]
    entry["extra"] = nested(MAX_DEPTH - 1)
    for seg in entry["segments"]:
        seg["deep"] = nested(MAX_DEPTH - 3)
    path = write(tmp_path / "in.jsonl", [orjson.dumps(entry)])
    assert parse_entry(path.read_bytes().strip())["extra"] == entry["extra"]
    result = run_job(path, tmp_path / "out", WCFG, OCFG, on_error="fail")
    assert (result["entries"], result["rejected"]) == (1, 0)
    [out] = [json.loads(x) for x in (tmp_path / "out" / COMPAT).read_bytes().splitlines()]
    assert out["extra"] == entry["extra"]
    assert out["windows"][0]["segments"][0]["deep"] == nested(MAX_DEPTH - 3)
    assert out["stats"]["lost_win_full_data"][0]["window_segs"][0]["deep"] == nested(MAX_DEPTH - 3)
    sups = _lhotse(tmp_path / "out", "alm_supervisions_all.jsonl.gz")
    assert sups[0]["custom"]["deep"] == nested(MAX_DEPTH - 3)


def test_brackets_inside_strings_do_not_hide_or_fake_depth(tmp_path: Path) -> None:
    """The fast depth test sees brackets in strings; neither unbalanced ones nor ones
    that would cancel real nesting change the verdict."""
    shallow = mutate(_set("segments.0.text", "]]]] [[[[ {{ \\\" [noise] " * 60))
    assert parse_entry(shallow)["segments"][0]["text"].startswith("]]]]")
    masked = _add("extra", b'["' + b"]" * 150 + b'", ' + raw_nested(MAX_DEPTH) + b', "' + b"[" * 150 + b'"]')
    with pytest.raises(Exception) as info:
        parse_entry(masked)
    assert "nested more than 200" in str(info.value)


def test_whole_rates_and_counts_just_inside_64_bits_are_accepted(tmp_path: Path) -> None:
    lines = [
        mutate(_set("audio_sample_rate", 16000.0)),
        mutate(_set("duration", (BIG - 1) // 16000)),
        mutate(_set("segments.2.end", 2.0**40 - 1)),  # the recording lasts `duration`: fine
    ]
    path = write(tmp_path / "in.jsonl", lines)
    result = run_job(path, tmp_path / "out", WCFG, OCFG, on_error="fail")
    assert (result["entries"], result["rejected"]) == (3, 0)
    recs = _lhotse(tmp_path / "out", "alm_recordings_all.jsonl.gz")
    assert [r["sampling_rate"] for r in recs] == [16000, 16000, 16000]
    assert recs[1]["num_samples"] == (BIG - 1) // 16000 * 16000


# --- the JSON error explainer never recurses ----------------------------------------


def test_explainer_survives_any_depth() -> None:
    """Newer orjson refuses 1024+ levels when reading; explaining that must not raise
    RecursionError, however deep the line, and names where it nests too deep."""
    raw = b'{"x": ' + raw_nested(100_000) + b"}"
    error = _explain_json_error(raw, ValueError("recursion limit exceeded"))
    assert error.field == "x[0][0][0][0]" and f"nested more than {MAX_DEPTH}" in error.reason
    value = {"a": nested(100_000)}
    assert _find_number(value, lambda v: True) is None
    deep = nested(5000)
    deep.append(float("nan"))
    assert _find_number({"x": deep}, lambda v: v != v) == "x[1]"


# --- file names and output directories ----------------------------------------------


def test_file_name_not_utf8_is_named_with_its_bytes_escaped(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    write(inputs / "a.jsonl", good_lines())
    with open(os.path.join(os.fsencode(inputs), b"b\xff\xfe.jsonl"), "wb") as f:
        f.write(good_lines()[0] + b"\n")
    for mode in ("fail", "skip"):
        with pytest.raises(ManifestError) as info:
            run_job(inputs, tmp_path / f"out-{mode}", WCFG, OCFG, on_error=mode)
        assert info.value.source == f"{inputs}/b\\xff\\xfe.jsonl"
        assert "not valid UTF-8" in info.value.reason
        assert output_files(tmp_path / f"out-{mode}") == []


def test_discovery_excludes_the_output_directory(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    (inputs / "out" / "lhotse").mkdir(parents=True)
    write(inputs / "a.jsonl", good_lines())
    write(inputs / "out" / "alm_output.jsonl", good_lines())
    write(inputs / "out" / "lhotse" / "x.jsonl", good_lines())
    assert discover_manifests(inputs, exclude=[tmp_path / "in" / ".." / "in" / "out"]) == [inputs / "a.jsonl"]
    assert len(discover_manifests(inputs)) == 3
    with pytest.raises(ManifestError, match="output directory too"):
        discover_manifests(inputs, exclude=[inputs])


@pytest.mark.parametrize("mode", ["fail", "skip"])
def test_run_job_never_reads_its_outputs_back(tmp_path: Path, mode: str) -> None:
    """An output directory inside the input directory: re-runs read the same entries, and
    the output directory given as input is refused before any work."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    write(inputs / "a.jsonl", good_lines())
    first = None
    for _ in range(3):
        result = run_job(inputs, inputs / "out", WCFG, OCFG, on_error=mode)
        assert (result["entries"], result["rejected"]) == (3, 0)
        now = normalized_outputs(inputs / "out")
        assert first is None or now == first
        first = now
    with pytest.raises(ManifestError, match="outputs of an earlier run"):
        run_job(inputs / "out", tmp_path / "elsewhere", WCFG, OCFG, on_error=mode)
    assert not (tmp_path / "elsewhere").exists()


# --- through the Luigi pipeline -----------------------------------------------------


def _hostile_manifest(path: Path) -> list[bytes]:
    good = good_lines()
    hostile = {name: line for name, line, _, _ in HOSTILE_LINES}
    lines = [good[0], hostile["rate-1e300"], good[1], hostile["rate-half"], hostile["nested-1100"], good[2]]
    write(path, lines)
    return lines


def test_pipeline_skip_rejects_hostile_lines_and_rereads_nothing(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    lines = _hostile_manifest(inputs / "bad.jsonl")
    for _ in range(2):
        run_luigi("--manifest-path", "in", "--output-dir", "in/out", "--on-error", "skip", cwd=tmp_path)
        s = summary(inputs / "out")
        assert (s["entries"], s["rejected"]) == (3, 3)
    got = read_jsonl(inputs / "out" / "rejects.jsonl")
    assert [(r["line"], r["field"]) for r in got] == [
        (2, "audio_sample_rate"), (4, "audio_sample_rate"), (5, "extra[0][0][0][0]")
    ]
    assert [r["raw"].encode() for r in got] == [lines[1], lines[3], lines[4]]
    assert len(read_jsonl(inputs / "out" / "alm_output.jsonl")) == 3


def test_pipeline_fail_names_file_line_and_field(tmp_path: Path) -> None:
    _hostile_manifest(tmp_path / "bad.jsonl")
    proc = run_luigi("--manifest-path", "bad.jsonl", "--output-dir", "out", cwd=tmp_path, expect=30)
    message = next(line for line in proc.stderr.splitlines() if line.startswith("ERROR: bad manifest line"))
    assert "bad.jsonl:2" in message and "audio_sample_rate" in message and "below 2**63" in message
    assert not (tmp_path / "out" / "alm_output.jsonl").exists()


@pytest.mark.parametrize("depth", [5, 199, 200, 201, 202, 260])
def test_text_scan_finds_the_walks_path(depth: int) -> None:
    """For lines a parser can still read, the text scan used for deeper ones names the
    same place as the walk over the parsed value (quotes, escapes and brackets in keys
    and strings included)."""
    node: list = []
    value = {"a": 'x"[{\\', 'k"[': {"b": [1, "]]", node]}}
    for _ in range(depth - 4):
        node.append([])
        node = node[-1]
    text = json.dumps(value)
    assert _deep_text_path(text, MAX_DEPTH) == _too_deep(value, MAX_DEPTH)
