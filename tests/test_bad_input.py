"""Bad input through the Python API: every malformed case of issue 5, in both error modes.

For each bad line: ``read_entries`` and ``run_job(on_error="fail")`` stop with a
``ManifestError`` naming file, line, field and reason and leave no output file behind;
``run_job(on_error="skip")`` writes one exact record to ``rejects.jsonl``, counts it, and
produces for the good lines exactly what a run on the file without the bad line produces.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Optional

import orjson
import pytest

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.errors import ManifestError
from alm_lhotse.execution.runner import run_job
from alm_lhotse.outputs.streams import FINAL_NAMES
from alm_lhotse.reading.reader import read_entries
from alm_lhotse.sample import sample_entries
from tests.test_faults import in_child

WCFG = WindowConfig()
OCFG = OverlapConfig()
COMPAT = "alm_output.jsonl"
REJECTS = "rejects.jsonl"
FINAL_FILES = tuple(FINAL_NAMES.values())
LHOTSE_FILES = tuple(name for name in FINAL_FILES if name.startswith("lhotse/"))
NOBODY = 65534
# Recording ids hash the file and line an entry came from; everything else must match.
_ID_HASH = re.compile(rb"-[0-9a-f]{12}")


def good_lines() -> list[bytes]:
    """Three valid entries that produce windows at the default parameters."""
    return [orjson.dumps(e) for e in sample_entries()[:3]]


def mutate(change: Any) -> bytes:
    """A copy of the first good entry, changed by ``change(entry)``, as one JSON line."""
    entry = sample_entries()[0]
    change(entry)
    return json.dumps(entry).encode()


def _set(path: str, value: Any) -> Any:
    """A mutation setting a dotted/indexed field (``segments.1.end``) to ``value``."""
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]

    def change(entry: dict) -> None:
        obj = entry
        for k in keys[:-1]:
            obj = obj[k]
        obj[keys[-1]] = value

    return change


def _del(key: str) -> Any:
    return lambda entry: entry.pop(key)


def _end_before_start(entry: dict) -> None:
    seg = entry["segments"][1]
    seg["end"] = seg["start"] - 0.5


def _replace(old: bytes, new: bytes) -> bytes:
    line = mutate(lambda e: None)
    assert old in line
    return line.replace(old, new, 1)


# (id, bad line, field named in the error, words the reason must contain)
BAD_LINES: list[tuple[str, bytes, Optional[str], str]] = [
    ("invalid-json", b'{"audio_filepath": "a.wav", "segments": [', None, "invalid JSON"),
    ("invalid-json-trailing-garbage", mutate(lambda e: None) + b" x", None, "invalid JSON"),
    ("not-object-list", b"[1, 2, 3]", None, "not a JSON object but list"),
    ("not-object-string", b'"audio.wav"', None, "not a JSON object but str"),
    ("not-object-number", b"42", None, "not a JSON object but int"),
    ("not-object-null", b"null", None, "not a JSON object but null"),
    ("missing-audio_filepath", mutate(_del("audio_filepath")), "audio_filepath", "missing"),
    ("missing-segments", mutate(_del("segments")), "segments", "missing"),
    ("missing-audio_sample_rate", mutate(_del("audio_sample_rate")), "audio_sample_rate", "missing"),
    ("rate-string", mutate(_set("audio_sample_rate", "16000")), "audio_sample_rate", "must be a positive number"),
    ("rate-null", mutate(_set("audio_sample_rate", None)), "audio_sample_rate", "must be a positive number"),
    ("rate-list", mutate(_set("audio_sample_rate", [16000])), "audio_sample_rate", "must be a positive number"),
    ("rate-bool", mutate(_set("audio_sample_rate", True)), "audio_sample_rate", "must be a positive number"),
    ("rate-zero", mutate(_set("audio_sample_rate", 0)), "audio_sample_rate", "must be a positive number"),
    ("path-null", mutate(_set("audio_filepath", None)), "audio_filepath", "must be a non-empty string"),
    ("path-list", mutate(_set("audio_filepath", ["a.wav"])), "audio_filepath", "must be a non-empty string"),
    ("path-empty", mutate(_set("audio_filepath", "")), "audio_filepath", "must be a non-empty string"),
    ("duration-string", mutate(_set("duration", "12.5")), "duration", "must be a non-negative number"),
    ("duration-null", mutate(_set("duration", None)), "duration", "must be a non-negative number"),
    ("duration-negative", mutate(_set("duration", -3.0)), "duration", "must be a non-negative number"),
    ("segments-string", mutate(_set("segments", "none")), "segments", "must be a list, got str"),
    ("segments-null", mutate(_set("segments", None)), "segments", "must be a list, got null"),
    ("segments-object", mutate(_set("segments", {"start": 0})), "segments", "must be a list, got dict"),
    ("segment-null", mutate(_set("segments.2", None)), "segments[2]", "must be an object, got null"),
    ("segment-list", mutate(_set("segments.2", [0, 1])), "segments[2]", "must be an object, got list"),
    ("start-string", mutate(_set("segments.3.start", "1.5")), "segments[3].start", "must be a number, got str"),
    ("end-null", mutate(_set("segments.3.end", None)), "segments[3].end", "must be a number, got null"),
    ("end-missing", mutate(lambda e: e["segments"][3].pop("end")), "segments[3].end", "missing"),
    ("start-list", mutate(_set("segments.0.start", [1])), "segments[0].start", "must be a number, got list"),
    ("speaker-number", mutate(_set("segments.1.speaker", 7)), "segments[1].speaker", "must be a string or null"),
    ("text-number", mutate(_set("segments.1.text", 7)), "segments[1].text", "must be a string"),
    ("words-string", mutate(_set("segments.1.words", "hi")), "segments[1].words", "must be a list"),
    ("word-end-string", mutate(_set("segments.1.words.0.end", "x")), "segments[1].words[0].end", "must be a number"),
    ("metrics-null", mutate(_set("segments.1.metrics", None)), "segments[1].metrics", "must be an object"),
    ("bandwidth-string", mutate(_set("segments.1.metrics.bandwidth", "8000")),
     "segments[1].metrics.bandwidth", "must be a number"),
    ("start-nan", mutate(_set("segments.1.start", float("nan"))), "segments[1].start", "NaN or Infinity"),
    ("end-infinity", mutate(_set("segments.4.end", float("inf"))), "segments[4].end", "NaN or Infinity"),
    ("rate-minus-infinity", mutate(_set("audio_sample_rate", float("-inf"))), "audio_sample_rate", "NaN or Infinity"),
    ("duration-nan", mutate(_set("duration", float("nan"))), "duration", "NaN or Infinity"),
    ("float-overflow", _replace(b'"audio_sample_rate": 16000', b'"audio_sample_rate": 1e999'),
     "audio_sample_rate", "NaN or Infinity"),
    ("huge-int", _replace(b'"audio_sample_rate": 16000', b'"audio_sample_rate": 1' + b"0" * 400),
     "audio_sample_rate", "integer too large"),
    ("start-negative", mutate(_set("segments.2.start", -1.0)), "segments[2].start", "must not be negative"),
    ("word-start-negative", mutate(_set("segments.0.words.0.start", -0.25)),
     "segments[0].words[0].start", "must not be negative"),
    ("end-before-start", mutate(_end_before_start), "segments[1].end", "is before start"),
    ("invalid-utf8", _replace(b'"audio_filepath": "', b'"audio_filepath": "\xff\xfe'), None, "invalid UTF-8"),
    ("lone-surrogate", _replace(b'"audio_filepath": "', b'"audio_filepath": "\\ud800'), None, "surrogate"),
    ("bom-not-at-file-start", b"\xef\xbb\xbf" + mutate(lambda e: None), None, "invalid JSON"),
]


def write(path: Path, lines: list[bytes], sep: bytes = b"\n") -> Path:
    path.write_bytes(b"".join(line + sep for line in lines))
    return path


def output_files(directory: Path) -> list[str]:
    """Every file below ``directory`` (hidden temporaries included); none if it is absent."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def normalized_outputs(directory: Path) -> dict[str, bytes]:
    """Final outputs except rejects, Lhotse ids (which hash the source line) masked."""
    out = {COMPAT: (directory / COMPAT).read_bytes()}
    for name in LHOTSE_FILES:
        out[name] = _ID_HASH.sub(b"-<id>", gzip.decompress((directory / name).read_bytes()))
    return out


def rejects(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (directory / REJECTS).read_bytes().splitlines()]


def reject_record(source: Path, line: int, field: Optional[str], reason: str, raw: bytes) -> dict[str, Any]:
    """The record we expect in rejects.jsonl (the reason checked separately)."""
    record: dict[str, Any] = {"source": str(source), "line": line, "field": field, "reason": reason}
    try:
        record["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return record


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Outputs of the good lines alone: what every skip run must reproduce."""
    tmp = tmp_path_factory.mktemp("clean")
    run_job(write(tmp / "in.jsonl", good_lines()), tmp / "out", WCFG, OCFG)
    return normalized_outputs(tmp / "out")


def test_good_lines_make_windows(clean_run: dict[str, bytes]) -> None:
    """Guard: the comparisons below are only meaningful if the good lines have windows."""
    entries = [json.loads(x) for x in clean_run[COMPAT].splitlines()]
    assert len(entries) == 3
    assert all(e["filtered_windows"] for e in entries)


@pytest.mark.parametrize("bad,field,reason", [c[1:] for c in BAD_LINES], ids=[c[0] for c in BAD_LINES])
def test_read_entries_names_file_line_field(tmp_path: Path, bad: bytes, field: Optional[str], reason: str) -> None:
    good = good_lines()
    path = write(tmp_path / "in.jsonl", [good[0], bad, good[1]])
    entries = read_entries(path)
    assert next(entries)["audio_filepath"] == json.loads(good[0])["audio_filepath"]
    with pytest.raises(ManifestError) as info:
        next(entries)
    err = info.value
    assert (err.source, err.line, err.field) == (str(path), 2, field)
    assert reason in err.reason
    where = f"{path}:2: field '{field}': " if field else f"{path}:2: "
    assert str(err) == where + err.reason


@pytest.mark.parametrize("bad,field,reason", [c[1:] for c in BAD_LINES], ids=[c[0] for c in BAD_LINES])
def test_run_job_fail_leaves_no_output(tmp_path: Path, bad: bytes, field: Optional[str], reason: str) -> None:
    good = good_lines()
    path = write(tmp_path / "in.jsonl", [good[0], good[1], bad, good[2]])
    with pytest.raises(ManifestError) as info:
        run_job(path, tmp_path / "out", WCFG, OCFG, on_error="fail")
    assert (info.value.source, info.value.line, info.value.field) == (str(path), 3, field)
    assert reason in info.value.reason
    assert output_files(tmp_path / "out") == []


@pytest.mark.parametrize("bad,field,reason", [c[1:] for c in BAD_LINES], ids=[c[0] for c in BAD_LINES])
def test_run_job_skip_rejects_exactly_the_bad_line(
    tmp_path: Path, clean_run: dict[str, bytes], bad: bytes, field: Optional[str], reason: str
) -> None:
    good = good_lines()
    path = write(tmp_path / "in.jsonl", [good[0], bad, good[1], good[2]])
    summary = run_job(path, tmp_path / "out", WCFG, OCFG, on_error="skip")
    assert (summary["entries"], summary["rejected"]) == (3, 1)
    [record] = rejects(tmp_path / "out")
    assert reason in record["reason"]
    assert record == reject_record(path, 2, field, record["reason"], bad)
    assert normalized_outputs(tmp_path / "out") == clean_run


def test_skip_many_bad_lines_in_order_across_partitions_and_workers(tmp_path: Path, clean_run: dict[str, bytes]) -> None:
    """Rejects keep input order and true line numbers however the input is split."""
    good = good_lines()
    bads = [c[1] for c in BAD_LINES]
    lines = bads[:10] + [good[0]] + bads[10:30] + [good[1]] + bads[30:] + [good[2]]
    path = write(tmp_path / "in.jsonl", lines)
    expected = [(i, line) for i, line in enumerate(lines, 1) if line not in good]
    for jobs, partition_bytes in ((1, None), (2, 2000), (3, 700)):
        out = tmp_path / f"out-{jobs}"
        summary = run_job(path, out, WCFG, OCFG, jobs=jobs, on_error="skip", partition_bytes=partition_bytes)
        assert (summary["entries"], summary["rejected"]) == (3, len(bads))
        got = rejects(out)
        assert [(r["line"], r.get("raw", "").encode() or base64.b64decode(r["raw_base64"])) for r in got] == expected
        assert normalized_outputs(out) == clean_run


def test_fail_reports_the_first_bad_line_with_workers(tmp_path: Path) -> None:
    """With several processes the error is still the first bad line of the input."""
    good = good_lines()
    lines = good * 4 + [b"{oops"] + good + [b"[]"] + good
    path = write(tmp_path / "in.jsonl", lines)
    with pytest.raises(ManifestError) as info:
        run_job(path, tmp_path / "out", WCFG, OCFG, jobs=3, partition_bytes=5000)
    assert info.value.line == 13
    assert output_files(tmp_path / "out") == []


def test_workers_stop_by_themselves_after_a_failed_chunk(tmp_path: Path) -> None:
    """A bad line in the first of many chunks: the other workers give up their chunks
    (none waits for a turn that never comes, none is killed mid-write) and have exited
    when the error reaches the caller."""
    import multiprocessing

    good = good_lines()
    path = write(tmp_path / "in.jsonl", [b"{oops"] + good * 30)
    with pytest.raises(ManifestError) as info:
        run_job(path, tmp_path / "out", WCFG, OCFG, jobs=3, partition_bytes=2000)
    assert info.value.line == 1
    assert multiprocessing.active_children() == []
    assert output_files(tmp_path / "out") == []


def test_fail_keeps_previous_complete_outputs(tmp_path: Path) -> None:
    """A failed rerun never truncates or mixes into the outputs of an earlier good run."""
    good = good_lines()
    out = tmp_path / "out"
    run_job(write(tmp_path / "good.jsonl", good), out, WCFG, OCFG)
    before = {name: (out / name).read_bytes() for name in FINAL_FILES}
    with pytest.raises(ManifestError):
        run_job(write(tmp_path / "bad.jsonl", good + [b"nope"]), out, WCFG, OCFG)
    assert {name: (out / name).read_bytes() for name in FINAL_FILES} == before
    assert output_files(out) == sorted([*FINAL_FILES, ".alm.lock"])


def test_invalid_utf8_reject_keeps_the_exact_bytes(tmp_path: Path) -> None:
    bad = _replace(b'"audio_filepath": "', b'"audio_filepath": "\xc3\x28')
    path = write(tmp_path / "in.jsonl", [bad])
    run_job(path, tmp_path / "out", WCFG, OCFG, on_error="skip")
    [record] = rejects(tmp_path / "out")
    assert "raw" not in record
    assert base64.b64decode(record["raw_base64"]) == bad


def test_on_error_value_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path / "in.jsonl", good_lines())
    with pytest.raises(ValueError, match="on_error"):
        run_job(path, tmp_path / "out", WCFG, OCFG, on_error="ignore")


# Valid files in unusual encodings: processed exactly like the plain file.


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda lines: b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n", id="bom"),
        pytest.param(lambda lines: b"\r\n".join(lines) + b"\r\n", id="crlf"),
        pytest.param(lambda lines: b"\xef\xbb\xbf" + b"\r\n".join(lines), id="bom-crlf-no-final-newline"),
        pytest.param(lambda lines: b"\n\n" + b"\n  \n".join(lines) + b"\n\n", id="blank-lines"),
        pytest.param(lambda lines: gzip.compress(b"\xef\xbb\xbf" + b"\r\n".join(lines)), id="gzip-bom-crlf"),
    ],
)
def test_encoding_variants_equal_plain_file(tmp_path: Path, clean_run: dict[str, bytes], variant: Any) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(variant(good_lines()))
    summary = run_job(path, tmp_path / "out", WCFG, OCFG, on_error="fail")
    assert (summary["entries"], summary["rejected"]) == (3, 0)
    assert normalized_outputs(tmp_path / "out") == clean_run
    assert len(list(read_entries(path))) == 3


def test_crlf_line_numbers_in_errors(tmp_path: Path) -> None:
    good = good_lines()
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good[0] + b"\r\n\r\n" + good[1] + b"\r\n{bad\r\n")
    with pytest.raises(ManifestError, match=r":4: invalid JSON"):
        list(read_entries(path))


# A line over 10 MB: no line length limit; valid is processed, invalid is rejected whole.

BIG = 11 * 1024 * 1024


def test_valid_line_over_10_mb_is_processed(tmp_path: Path) -> None:
    good = good_lines()
    big = mutate(_set("notes", "x" * BIG))
    path = write(tmp_path / "in.jsonl", [good[0], big, good[1]])
    summary = run_job(path, tmp_path / "out", WCFG, OCFG, lhotse=False)
    assert (summary["entries"], summary["rejected"]) == (3, 0)
    second = json.loads((tmp_path / "out" / COMPAT).read_bytes().splitlines()[1])
    assert len(second["notes"]) == BIG
    assert second["filtered_windows"]


def test_invalid_line_over_10_mb_is_rejected_whole(tmp_path: Path, clean_run: dict[str, bytes]) -> None:
    good = good_lines()
    big = b'{"audio_filepath": "' + b"x" * BIG
    path = write(tmp_path / "in.jsonl", [good[0], good[1], big, good[2]])
    with pytest.raises(ManifestError, match=r":3: invalid JSON"):
        run_job(path, tmp_path / "fail", WCFG, OCFG)
    run_job(path, tmp_path / "out", WCFG, OCFG, on_error="skip")
    [record] = rejects(tmp_path / "out")
    assert (record["line"], record["raw"].encode()) == (3, big)
    assert normalized_outputs(tmp_path / "out") == clean_run


# Problems with the input set itself: an error before any work, in both modes.


def test_empty_file_is_zero_entries(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    blank = write(tmp_path / "blank.jsonl", [b"", b"   ", b"\r"])
    assert list(read_entries([empty, blank])) == []
    summary = run_job([empty, blank], tmp_path / "out", WCFG, OCFG)
    assert (summary["entries"], summary["rejected"]) == (0, 0)
    assert all((tmp_path / "out" / name).exists() for name in FINAL_FILES)
    assert (tmp_path / "out" / COMPAT).read_bytes() == b""


def test_empty_file_next_to_good_ones(tmp_path: Path, clean_run: dict[str, bytes]) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(b"")
    write(tmp_path / "in" / "b.jsonl", good_lines())
    run_job(tmp_path / "in", tmp_path / "out", WCFG, OCFG)
    assert normalized_outputs(tmp_path / "out") == clean_run


def _input_set_error(paths: Any, out: Path, match: str) -> None:
    """The same ManifestError from the reader and from run_job in both modes; no outputs."""
    with pytest.raises(ManifestError, match=match):
        list(read_entries(paths))
    for mode in ("fail", "skip"):
        with pytest.raises(ManifestError, match=match):
            run_job(paths, out, WCFG, OCFG, on_error=mode)
        assert output_files(out) == []


def test_directory_without_manifests(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "notes.txt").write_text("not a manifest")
    _input_set_error(tmp_path / "in", tmp_path / "out", r"in: no manifest files \(.jsonl, .json, .jsonl.gz\) found")


def test_no_inputs_at_all(tmp_path: Path) -> None:
    _input_set_error([], tmp_path / "out", "no input manifests given")


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    good = write(tmp_path / "good.jsonl", good_lines())
    _input_set_error([good, tmp_path / "typo.jsonl"], tmp_path / "out", r"typo.jsonl: no such manifest file")


def test_dangling_symlink_in_directory(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "a.jsonl", good_lines())
    os.symlink("gone.jsonl", tmp_path / "in" / "b.jsonl")
    _input_set_error(tmp_path / "in", tmp_path / "out", r"b.jsonl: broken symlink")


def test_symlink_loop_file_under_directory(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "a.jsonl", good_lines())
    os.symlink("b.jsonl", tmp_path / "in" / "b.jsonl")
    _input_set_error(tmp_path / "in", tmp_path / "out", r"b.jsonl: symlink loop")


def test_symlink_loop_of_directories_reads_each_file_once(tmp_path: Path, clean_run: dict[str, bytes]) -> None:
    """Directory links back to an ancestor (and link cycles) are walked once, not forever."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    write(tmp_path / "in" / "sub" / "a.jsonl", good_lines())
    os.symlink("..", tmp_path / "in" / "sub" / "parent")
    os.symlink(tmp_path / "in", tmp_path / "in" / "self")
    os.symlink("cycle2", tmp_path / "in" / "cycle1")
    os.symlink("cycle1", tmp_path / "in" / "cycle2")
    assert len(list(read_entries(tmp_path / "in"))) == 3
    summary = run_job(tmp_path / "in", tmp_path / "out", WCFG, OCFG)
    assert summary["entries"] == 3
    assert normalized_outputs(tmp_path / "out") == clean_run


def test_fifo_named_like_a_manifest_is_refused(tmp_path: Path) -> None:
    """A pipe would block the reader forever; it is reported instead."""
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "a.jsonl", good_lines())
    os.mkfifo(tmp_path / "in" / "b.jsonl")
    _input_set_error(tmp_path / "in", tmp_path / "out", r"b.jsonl: not a regular file")


def test_truncated_gzip_names_file_and_line(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(line + b"\n" for line in good_lines() * 40))
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    for mode in ("fail", "skip"):
        with pytest.raises(ManifestError, match=r"in.jsonl.gz:\d+: cannot read manifest"):
            run_job(path, tmp_path / "out", WCFG, OCFG, on_error=mode)
        assert output_files(tmp_path / "out") == []


def _errors_as_nobody(path: Path, out: Path) -> list[str]:
    """Messages of read_entries and run_job (both modes) in forked children running as
    ``nobody``: root reads any file, so only an unprivileged process sees the denial."""

    def as_nobody(call: Any) -> str:
        def run() -> None:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            call()

        return in_child(run)["message"]

    return [
        as_nobody(lambda: list(read_entries(path))),
        as_nobody(lambda: run_job(path, out, WCFG, OCFG, on_error="fail")),
        as_nobody(lambda: run_job(path, out, WCFG, OCFG, on_error="skip")),
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    """Permission denied names the file, in both modes, before any output is written."""
    if os.geteuid() != 0:
        path = write(tmp_path / "in.jsonl", good_lines())
        path.chmod(0)
        _input_set_error(path, tmp_path / "out", re.escape(f"{path}: cannot open manifest: Permission denied"))
        return
    with tempfile.TemporaryDirectory() as open_dir:
        base = Path(open_dir)
        base.chmod(0o777)
        if any(os.stat(parent).st_mode & 0o001 == 0 for parent in base.parents):
            pytest.skip(f"{base.parent} is not searchable by other users; the unprivileged probe cannot reach it")
        path = write(base / "in.jsonl", good_lines())
        path.chmod(0)
        expected = f"{path}: cannot open manifest: Permission denied"
        assert _errors_as_nobody(path, base / "out") == [expected] * 3
        assert output_files(base / "out") == []


def test_read_error_mid_file_names_the_file(tmp_path: Path) -> None:
    """An I/O error while reading (here: /proc/self/mem, unreadable even for root)."""
    mem = Path("/proc/self/mem")
    if not mem.exists():
        pytest.skip("needs Linux /proc to produce a real read error")
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "a.jsonl", good_lines())
    os.symlink(mem, tmp_path / "in" / "b.jsonl")
    _input_set_error(tmp_path / "in", tmp_path / "out", r"b.jsonl(:1)?: cannot (open|read) manifest: ")
