"""The NeMo manifest of the windows (alm_windows_nemo.jsonl) and the transcript view:
both against the window cuts they stand for."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lhotse import CutSet, MonoCut

from alm_lhotse import OverlapConfig, WindowConfig, native, run_job
from alm_lhotse.core.entry import process_entry
from alm_lhotse.lhotse_io import transcript_view, turns_of
from alm_lhotse.outputs.nemo_manifest import NEMO, nemo_lines, transcript_text, window_nemo_dict
from alm_lhotse.outputs.registry import ProcessedEntry
from alm_lhotse.outputs.streams import FINAL_NAMES, OUTPUTS
from alm_lhotse.recipe import prepare_alm
from tests.conftest import require_kernel, require_shared
from tests.test_kernel import sorted_entries
from tests.test_properties import PROPERTY, entries

NEMO_FILE = "alm_windows_nemo.jsonl"
CUTS_FILE = "lhotse/alm_cuts_windows_all.jsonl.gz"


def _lines(path: Path) -> list[dict[str, Any]]:
    """Read as NeMo's manifest loaders do: one JSON object per line."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _plain(cut: MonoCut) -> str:
    return " ".join(s.text.strip() for s in cut.supervisions if s.text and s.text.strip())


def _edge_input(tmp_path: Path) -> Path:
    """The oracle's edge cases plus an entry with a zero-length segment inside a window
    and a last segment truncated at a word."""
    import gzip

    oracle = require_shared() / "oracle"
    lines = gzip.decompress((oracle / "random_seed2_edge.input.jsonl.gz").read_bytes())
    words = [{"word": f"w{k}", "start": 100.0 + 2 * k, "end": 101.0 + 2 * k} for k in range(20)]
    entry = {
        "audio_filepath": "/data/edge.wav",
        "audio_sample_rate": 16000,
        "segments": [
            {"start": 0.0, "end": 50.0, "speaker": "a", "text": "first turn", "metrics": {"bandwidth": 8000}},
            {"start": 50.0, "end": 50.0, "speaker": "b", "text": "zero", "metrics": {"bandwidth": 8000}},
            {"start": 50.0, "end": 100.0, "speaker": "b", "text": "second turn", "metrics": {"bandwidth": 8000}},
            {
                "start": 100.0, "end": 140.0, "speaker": "a", "metrics": {"bandwidth": 8000},
                "text": " ".join(w["word"] for w in words), "words": words,
            },
        ],
    }  # fmt: skip
    path = tmp_path / "edge.jsonl"
    path.write_bytes(lines + json.dumps(entry).encode() + b"\n")
    return path


def test_registered_as_a_window_output() -> None:
    assert NEMO in OUTPUTS and NEMO.stage == "windows"
    assert FINAL_NAMES[NEMO.name] == NEMO_FILE


@pytest.mark.parametrize("jobs", [1, 2])
def test_manifest_matches_the_window_cuts(fixtures_dir: Path, tmp_path: Path, jobs: int) -> None:
    run_job(fixtures_dir / "sample_input.jsonl", tmp_path, WindowConfig(), OverlapConfig(), jobs=jobs, partition_bytes=4000)
    _check_against_cuts(tmp_path)


def test_manifest_with_truncated_and_zero_length_segments(tmp_path: Path) -> None:
    run_job(_edge_input(tmp_path), tmp_path / "out", WindowConfig(), OverlapConfig(), on_error="skip")
    lines = _check_against_cuts(tmp_path / "out")
    edge = [line for line in lines if line["audio_filepath"] == "/data/edge.wav"]
    assert len(edge) == 1
    assert [s["text"] for s in edge[0]["segments"]][:2] == ["first turn", "second turn"]
    last = edge[0]["segments"][-1]["text"]
    assert last.startswith("w0 ") and not last.endswith("w19")  # truncated at a word
    assert edge[0]["text"].startswith("first turn second turn w0 ")


def _check_against_cuts(out: Path) -> list[dict[str, Any]]:
    lines = _lines(out / NEMO_FILE)
    cuts = list(CutSet.from_file(out / CUTS_FILE))
    assert len(lines) == len(cuts) > 0
    for line, cut in zip(lines, cuts):
        assert line["id"] == cut.id
        assert line["audio_filepath"] == cut.custom["audio_filepath"] == cut.recording.sources[0].source
        # JSON numbers, the cut's own (an integer start in the input stays an integer)
        assert type(line["offset"]) in (int, float) and line["offset"] == cut.start
        assert type(line["duration"]) in (int, float) and line["duration"] == cut.duration
        assert isinstance(line["text"], str) and line["text"] == _plain(cut)
        assert len(line["segments"]) == len(cut.supervisions)
        for seg, sup in zip(line["segments"], cut.supervisions):
            assert (seg["speaker"], seg["text"]) == (sup.speaker, sup.text)
            assert seg["start"] == sup.start
            assert seg["end"] == pytest.approx(sup.end, abs=1e-9)
            assert seg["start"] < seg["end"]  # (an unsorted entry's window may hold earlier turns)
    return lines


ODD_TEXTS = ["plain", None, " padded\t", "\u3000ideographic space\u3000", 'say "hi"\n', "   ", "", "ünï 😀", 7, ["a"]]
ODD_SPEAKERS = ["A", "B", "", None, 0, 3, 2.5, True, "no-speaker", "A"]


@given(
    entry=st.one_of(entries(), sorted_entries()),
    texts=st.lists(st.sampled_from(ODD_TEXTS), min_size=1, max_size=6),
    speakers=st.lists(st.sampled_from(ODD_SPEAKERS), min_size=1, max_size=6),
    tags=st.booleans(),
    int_shift=st.booleans(),
)
@PROPERTY
def test_compiled_manifest_lines_match_python(
    entry: dict, texts: list, speakers: list, tags: bool, int_shift: bool
) -> None:
    """The kernel's lines equal orjson of ``window_nemo_dict`` byte for byte: odd texts
    (padded, blank, non-str), odd speakers (empty, numbers, repeated), integer
    times, truncated parts, both tag modes, every window (kept or not)."""
    require_kernel()
    for k, seg in enumerate(entry["segments"]):
        seg["text"] = texts[k % len(texts)]
        if seg.get("speaker"):
            seg["speaker"] = speakers[k % len(speakers)]
        if int_shift and seg["start"] == int(seg["start"]):
            seg["start"] = int(seg["start"])
    wcfg = WindowConfig(target_window_duration=20, tolerance=0.5, min_speakers=1, nemo_speaker_tags=tags)
    try:
        result = _pure(process_entry, entry, wcfg, OverlapConfig(target_duration=20), False)
    except Exception:  # noqa: BLE001 - builder rejects (odd speakers); not this test's concern
        return
    result.kept = [True] * len(result.kept)  # every window, kept or not
    p = ProcessedEntry(entry, "m.jsonl:1", result.built.segments, result, wcfg, frozenset())
    compiled = nemo_lines(p)
    assert compiled == _pure(nemo_lines, p)
    tag = "[{speaker}]" if tags else None
    expected = b"".join(
        orjson.dumps(window_nemo_dict(w, result.built.segments, _rec_id(p), entry["audio_filepath"], tag)) + b"\n"
        for w in result.built.windows
    )
    assert compiled == expected


def _rec_id(p: ProcessedEntry) -> str:
    from alm_lhotse.outputs.lhotse_outputs import entry_recording

    return p.shared("recording", entry_recording)["id"]


def _pure(fn: Any, *args: Any) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(native, "_PURE_PYTHON", True)
        return fn(*args)


def test_speaker_tags(fixtures_dir: Path, tmp_path: Path) -> None:
    sample = fixtures_dir / "sample_input.jsonl"
    run_job(sample, tmp_path / "plain", WindowConfig(), OverlapConfig())
    run_job(sample, tmp_path / "tags", WindowConfig(nemo_speaker_tags=True), OverlapConfig())
    plain, tagged = _lines(tmp_path / "plain" / NEMO_FILE), _lines(tmp_path / "tags" / NEMO_FILE)
    assert [p["segments"] for p in plain] == [t["segments"] for t in tagged]
    for p, t in zip(plain, tagged):
        assert "[" not in p["text"]
        assert t["text"].startswith(f"[{t['segments'][0]['speaker']}] ")
        speakers = {s["speaker"] for s in t["segments"]}
        assert {f"[{s}]" for s in speakers} == {w for w in t["text"].split() if w.startswith("[")}
        assert " ".join(w for w in t["text"].split() if not w.startswith("[")) == " ".join(p["text"].split())
    # The other outputs do not depend on the option.
    for name in FINAL_NAMES.values():
        if name != NEMO_FILE:
            assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "tags" / name).read_bytes()


def test_speaker_tags_key_results_apart() -> None:
    assert "nemo_speaker_tags" not in WindowConfig().to_dict()
    assert WindowConfig(nemo_speaker_tags=True).to_dict()["nemo_speaker_tags"] is True


def test_transcript_text_rules() -> None:
    turns = [("a", " hi "), ("a", "there"), ("b", ""), ("b", None), (None, "aside"), ("b", "yes"), ("a", "no")]
    assert transcript_text(turns) == "hi there aside yes no"
    assert transcript_text(turns, "[{speaker}]") == "[a] hi there aside [b] yes [a] no"
    assert transcript_text([], "[{speaker}]") == ""


def test_prepare_alm_writes_the_manifest(fixtures_dir: Path, tmp_path: Path) -> None:
    result = prepare_alm(fixtures_dir / "sample_input.jsonl", tmp_path, progress=False, nemo_speaker_tags=True)
    lines = _lines(tmp_path / NEMO_FILE)
    cuts = list(result["all"]["cuts"])
    assert [line["id"] for line in lines] == [c.id for c in cuts]
    assert all(line["text"].startswith("[") for line in lines)


def test_transcript_view_as_nemo_conversation_reader(fixtures_dir: Path, tmp_path: Path) -> None:
    run_job(fixtures_dir / "sample_input.jsonl", tmp_path, WindowConfig(), OverlapConfig())
    cuts = CutSet.from_file(tmp_path / CUTS_FILE)
    view = pickle.loads(pickle.dumps(transcript_view(cuts)))
    lines = _lines(tmp_path / NEMO_FILE)
    for cut, seen, line in zip(cuts, view, lines):
        (whole,) = seen.supervisions
        assert (whole.start, whole.duration) == (0, cut.duration)
        text = whole.text  # what lhotse_as_conversation reads: the first supervision's text
        for sup in cut.supervisions:
            assert f"[{sup.speaker}]" in text
            assert sup.text.strip() in text
        words = [w for w in text.split() if not w.startswith("[")]
        assert words == [w for s in cut.supervisions for w in s.text.split()]
        assert [t.to_dict() for t in turns_of(whole)] == [s.to_dict() for s in cut.supervisions]
        assert seen.id == cut.id and seen.start == cut.start and seen.duration == cut.duration
        assert transcript_text([(s.speaker, s.text) for s in cut.supervisions]) == line["text"]
    plain = next(iter(transcript_view(cuts, speaker_tag=None)))
    assert plain.supervisions[0].text == lines[0]["text"]


# --- the transcript view as a final output of the pipeline ---------------------------------

TRANSCRIPTS_FILE = "lhotse/alm_cuts_transcripts_all.jsonl.gz"


def _published(out: Path) -> dict[str, bytes]:
    """Every final output but the summary (it holds timings and the parameters)."""
    return {name: (out / name).read_bytes() for name in FINAL_NAMES.values()}


def test_pipeline_writes_the_view_only_when_asked(fixtures_dir: Path, tmp_path: Path) -> None:
    from tests.test_params import luigi_run

    manifest = str(fixtures_dir / "sample_input.jsonl")
    plain = luigi_run("--manifest-path", manifest, "--output-dir", "plain", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert not (tmp_path / "plain" / TRANSCRIPTS_FILE).exists()
    assert "transcript" not in json.loads((tmp_path / "plain" / "summary.json").read_text())["parameters"]

    cfg = tmp_path / "view.cfg"
    cfg.write_text("[AlmWindows]\ntranscript_view = true\ntranscript_speaker_tag = <{speaker}>:\n")
    out = tmp_path / "view"
    viewed = luigi_run("--manifest-path", manifest, "--output-dir", "view", cwd=tmp_path, env={"LUIGI_CONFIG_PATH": str(cfg)})
    assert viewed.returncode == 0, viewed.stderr
    cuts = CutSet.from_file(out / CUTS_FILE)
    written = list(CutSet.from_file(out / TRANSCRIPTS_FILE))
    expected = list(transcript_view(cuts, "<{speaker}>:"))
    assert [c.to_dict() for c in written] == [c.to_dict() for c in expected] and written
    assert all(c.supervisions[0].text.startswith(f"<{c.supervisions[0].custom['turns'][0]['speaker']}>: ") for c in written)
    assert _published(out) == _published(tmp_path / "plain")  # the other outputs do not depend on it
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"]["transcript"] == {"transcript_view": True, "transcript_speaker_tag": "<{speaker}>:"}

    # Turned off, the next run's set of outputs has no view: the earlier one goes.
    again = luigi_run("--manifest-path", manifest, "--output-dir", "view", "--transcript-view", "false", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert not (out / TRANSCRIPTS_FILE).exists() and _published(out) == _published(tmp_path / "plain")
    # Plain text on the command line (an explicitly empty tag).
    bare = luigi_run(
        "--manifest-path", manifest, "--output-dir", "view", "--transcript-view", "--transcript-speaker-tag=", cwd=tmp_path
    )
    assert bare.returncode == 0, bare.stderr
    texts = [c.supervisions[0].text for c in CutSet.from_file(out / TRANSCRIPTS_FILE)]
    assert texts == [line["text"] for line in _lines(out / NEMO_FILE)]


def test_view_keys_the_job_only_when_written() -> None:
    """Every job without the view keeps the key it had before the option existed; with
    it, the key depends on the tag."""
    from alm_lhotse.config import TranscriptConfig, params_digest
    from alm_lhotse.storage import key_of
    from luigi_tasks import AlmWindows
    from luigi_tasks.parameters import FORMAT_VERSION

    task = AlmWindows()
    before = key_of([FORMAT_VERSION, params_digest(task.window_config(), task.overlap_config()), task.on_error])
    assert task.results_digest() == before
    assert AlmWindows(transcript_speaker_tag="").results_digest() == before
    keys = {AlmWindows(transcript_view=True, transcript_speaker_tag=tag).results_digest() for tag in ("", "[{speaker}]")}
    assert len(keys) == 2 and before not in keys
    assert "transcript" not in AlmWindows().parameters_record()
    assert TranscriptConfig().to_dict() == {} and TranscriptConfig(transcript_view=True).speaker_tag == "[{speaker}]"


@pytest.mark.parametrize("tag", ["{spk}", "{0}", "[{speaker", "{speaker.name}"])
def test_bad_speaker_tag_is_one_error_line(tmp_path: Path, tag: str) -> None:
    from tests.test_params import assert_one_error_line, luigi_run

    proc = luigi_run("--output-dir", "out", "--transcript-view", f"--transcript-speaker-tag={tag}", cwd=tmp_path)
    assert proc.returncode == 35
    assert_one_error_line(proc.stderr, "ERROR:", "transcript_speaker_tag", "{speaker}")
    assert not (tmp_path / "out" / TRANSCRIPTS_FILE).exists()


@pytest.mark.parametrize("tag", ["[{speaker}]", None, "{speaker}:"])
def test_written_view_is_the_transform(tmp_path: Path, tag: Any) -> None:
    """``write_transcript_view`` (lines, the pipeline's and the CLI's) gives the cuts the
    lazy transform gives, truncated and zero-length turns, odd speakers and word alignments
    included."""
    from alm_lhotse.lhotse_io import write_transcript_view

    run_job(_edge_input(tmp_path), tmp_path / "out", WindowConfig(drop_fields=""), OverlapConfig(), on_error="skip")
    cuts = tmp_path / "out" / CUTS_FILE
    written = write_transcript_view(cuts, tmp_path / "view.jsonl.gz", tag)
    expected = [c.to_dict() for c in transcript_view(CutSet.from_file(cuts), tag)]
    assert [c.to_dict() for c in CutSet.from_file(written)] == expected and len(expected) > 3
    assert any(s.alignment for c in CutSet.from_file(cuts) for s in c.supervisions)


def test_cli_transcript_view(fixtures_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from alm_lhotse.cli import cli

    args = ["prepare", "alm", str(fixtures_dir / "sample_input.jsonl"), str(tmp_path / "out"), "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "--transcript-view", "--transcript-speaker-tag", ""])
    assert result.exit_code == 0, result.output
    texts = [c.supervisions[0].text for c in CutSet.from_file(tmp_path / "out" / TRANSCRIPTS_FILE)]
    assert texts == [line["text"] for line in _lines(tmp_path / "out" / NEMO_FILE)] and texts
    bad = CliRunner().invoke(cli, [*args, "--transcript-view", "--transcript-speaker-tag", "{who}"])
    assert bad.exit_code == 2 and "transcript-speaker-tag" in bad.output and "{speaker}" in bad.output
