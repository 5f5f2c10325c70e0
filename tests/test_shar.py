"""Shar export: read back with CutSet.from_shar and compare sample by sample with the source audio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import numpy as np
import orjson
import pytest
import soundfile as sf
from lhotse import CutSet, Recording
from lhotse.qa import validate
from lhotse.utils import compute_num_samples

from alm_lhotse import shar as shar_module
from alm_lhotse.recipe import manifest_paths, prepare_alm
from alm_lhotse.shar import SharExportError, export_shar, state_dir_for
from tests.test_audio import write_conversations

SHAR_KEYS = {"shard_origin", "shar_epoch"}


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Windows over three 16-bit WAV conversations of 260 s at 16 kHz."""
    root = tmp_path_factory.mktemp("shar")
    manifest = write_conversations(root / "data", count=3)
    prepare_alm(manifest, root / "out", progress=False, overlap_percentage=90)
    return manifest_paths(root / "out")["cuts"]


def source_window(cut: Any) -> np.ndarray:
    """(channels, samples) of the source file over the window's span, read independently."""
    data, rate = sf.read(cut.recording.sources[0].source, dtype="float32", always_2d=True)
    first = compute_num_samples(cut.start, rate)
    return data[first : first + compute_num_samples(cut.duration, rate)].T


def test_read_back_equals_the_source_samples(windows: Path, tmp_path: Path) -> None:
    source = CutSet.from_file(windows).to_eager()
    assert len(source) >= 5
    summary = export_shar(windows, tmp_path / "shar", shard_size=2, progress=False)
    assert summary["written"] == len(source) and summary["shards"] == -(-len(source) // 2)
    assert sorted(p.name for p in (tmp_path / "shar").iterdir())[:2] == ["cuts.000000.jsonl.gz", "cuts.000001.jsonl.gz"]
    back = list(CutSet.from_shar(in_dir=tmp_path / "shar"))
    assert [c.id for c in back] == list(source.ids)
    for orig, cut in zip(source, back):
        audio = cut.load_audio()
        assert audio.dtype == np.float32
        np.testing.assert_array_equal(audio, source_window(orig))
        assert cut.start == 0 and cut.duration == orig.duration
        assert cut.supervisions == orig.supervisions  # window-relative times and words, unchanged
        assert {k: v for k, v in cut.custom.items() if k not in SHAR_KEYS} == orig.custom
        validate(cut, read_data=True)


def test_words_are_relative_to_the_window_start(windows: Path, tmp_path: Path) -> None:
    export_shar(windows, tmp_path / "shar", progress=False)
    cut = next(iter(CutSet.from_shar(in_dir=tmp_path / "shar")))
    for sup in cut.supervisions:
        assert sup.start == pytest.approx(sup.custom["source_start"] - cut.custom["window_start"])
        assert sup.alignment["word"][0].start == pytest.approx(sup.start)
        assert -1e-9 <= sup.start and sup.end <= cut.duration + 1e-9


def _stereo_windows(tmp_path: Path) -> Path:
    manifest = write_conversations(tmp_path / "stereo", count=1, channels=2, ext="flac", rate=22050)
    prepare_alm(manifest, tmp_path / "out", progress=False)
    return manifest_paths(tmp_path / "out")["cuts"]


def test_stereo_is_kept_as_multicut_or_mixed_to_mono(tmp_path: Path) -> None:
    cuts_path = _stereo_windows(tmp_path)
    source = CutSet.from_file(cuts_path).to_eager()
    export_shar(cuts_path, tmp_path / "keep", progress=False)
    export_shar(cuts_path, tmp_path / "mono", mono=True, audio_format="wav", progress=False)
    for orig, kept, mixed in zip(
        source, CutSet.from_shar(in_dir=tmp_path / "keep"), CutSet.from_shar(in_dir=tmp_path / "mono")
    ):
        expected = source_window(orig)
        assert type(kept).__name__ == "MultiCut" and kept.channel == [0, 1]
        np.testing.assert_array_equal(kept.load_audio(), expected)
        assert type(mixed).__name__ == "MonoCut"
        np.testing.assert_allclose(mixed.load_audio(), expected.mean(axis=0, keepdims=True), atol=1 / 32768)


def test_resampling_matches_lhotse_resampling_of_the_source(windows: Path, tmp_path: Path) -> None:
    source = CutSet.from_file(windows).to_eager().subset(first=2)
    export_shar(source, tmp_path / "shar", sampling_rate=8000, progress=False)
    for orig, cut in zip(source, CutSet.from_shar(in_dir=tmp_path / "shar")):
        assert cut.sampling_rate == 8000 and cut.num_samples == compute_num_samples(orig.duration, 8000)
        rec = Recording.from_file(orig.recording.sources[0].source).resample(8000)
        expected = rec.load_audio(offset=orig.start, duration=orig.duration)
        np.testing.assert_allclose(cut.load_audio(), expected, atol=2 / 32768)


def _with_broken_audio(windows: Path, tmp_path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The windows, with the first pointing at a missing file and the third at a corrupt one."""
    cuts = [c.to_dict() for c in CutSet.from_file(windows)]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    cuts[0]["recording"]["sources"][0]["source"] = str(tmp_path / "missing.wav")
    cuts[2]["recording"]["sources"][0]["source"] = str(corrupt)
    return cuts, [cuts[0]["id"], cuts[2]["id"]]


def test_missing_audio_fails_naming_window_and_file(windows: Path, tmp_path: Path) -> None:
    cuts, bad_ids = _with_broken_audio(windows, tmp_path)
    with pytest.raises(SharExportError) as err:
        export_shar(cuts, tmp_path / "shar", progress=False)
    assert bad_ids[0] in str(err.value) and "missing.wav" in str(err.value) and "does not exist" in str(err.value)
    with pytest.raises(SharExportError, match="corrupt.wav"):
        export_shar(cuts[1:], tmp_path / "shar2", num_jobs=2, shard_size=1, progress=False)


def test_skip_lists_rejects_and_leaves_no_gap(windows: Path, tmp_path: Path) -> None:
    cuts, bad_ids = _with_broken_audio(windows, tmp_path)
    summary = export_shar(cuts, tmp_path / "shar", shard_size=1, on_error="skip", progress=False)
    assert summary["rejected"] == 2 and summary["written"] == len(cuts) - 2
    rejects = [orjson.loads(x) for x in Path(summary["rejects_path"]).read_bytes().splitlines()]
    assert [r["window"] for r in rejects] == bad_ids and "missing.wav" in rejects[0]["audio_filepath"]
    back = list(CutSet.from_shar(in_dir=tmp_path / "shar"))
    assert [c.id for c in back] == [c["id"] for c in cuts if c["id"] not in bad_ids]


def test_window_longer_than_its_audio_is_an_error(windows: Path, tmp_path: Path) -> None:
    cut = CutSet.from_file(windows)[0].to_dict()
    cut["start"] = 250.0
    with pytest.raises(SharExportError, match="window needs samples"):
        export_shar([cut], tmp_path / "shar", progress=False)


def _shard_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_killed_export_resumes_to_the_same_shards(windows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export_shar(windows, tmp_path / "fresh", shard_size=2, progress=False)
    real = shar_module.write_shard
    calls = {"n": 0}

    def dies_on_third(job: shar_module.ShardJob) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(job)

    monkeypatch.setattr(shar_module, "write_shard", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        export_shar(windows, tmp_path / "resumed", shard_size=2, progress=False)
    assert len(list((tmp_path / "resumed").glob("cuts.*"))) == 2
    monkeypatch.setattr(shar_module, "write_shard", real)
    summary = export_shar(windows, tmp_path / "resumed", shard_size=2, progress=False)
    assert summary["resumed_shards"] == 2
    assert _shard_bytes(tmp_path / "resumed") == _shard_bytes(tmp_path / "fresh")
    again = export_shar(windows, tmp_path / "resumed", shard_size=2, progress=False)
    assert again["resumed_shards"] == again["shards"]


def test_other_options_into_the_same_directory_are_refused(windows: Path, tmp_path: Path) -> None:
    export_shar(windows, tmp_path / "shar", shard_size=2, progress=False)
    with pytest.raises(ValueError, match="other parameters"):
        export_shar(windows, tmp_path / "shar", shard_size=3, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other/file.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        export_shar(windows, tmp_path / "other", progress=False)


def test_luigi_task_exports_the_pipeline_windows(tmp_path: Path) -> None:
    from luigi_tasks.shar import AlmShar

    manifest = write_conversations(tmp_path / "data", count=2)
    task = AlmShar(manifest_path=str(manifest), output_dir=str(tmp_path / "out"), shard_size=1, overlap_percentage=90.0)
    assert luigi.build([task], local_scheduler=True, detailed_summary=True).status.name == "SUCCESS"
    assert task.complete()
    source = CutSet.from_file(task.requires().cuts_path).to_eager()
    assert len(source) >= 2
    assert task.shar_path.parent == tmp_path / "out" and state_dir_for(task.shar_path).is_dir()
    for orig, cut in zip(source, CutSet.from_shar(in_dir=task.shar_path)):
        np.testing.assert_array_equal(cut.load_audio(), source_window(orig))
    other = AlmShar(manifest_path=str(manifest), output_dir=str(tmp_path / "out"), shard_size=2, overlap_percentage=90.0)
    assert other.shar_path != task.shar_path and not other.complete()
