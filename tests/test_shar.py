"""Shar export from Python: read back with CutSet.from_shar and compare with Lhotse's own
loading of each window cut; shards by duration; decode once; errors; resuming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from lhotse import CutSet, Recording
from lhotse.qa import validate
from lhotse.utils import compute_num_samples

from alm_lhotse import audio as audio_module
from alm_lhotse import shar as shar_module
from alm_lhotse.recipe import manifest_paths, prepare_alm
from alm_lhotse.shar import (
    SharDirError,
    SharExportError,
    export_shar,
    nothing_written_warning,
    state_dir_for,
)
from alm_lhotse.shar_options import SharOptions
from tests.test_audio import write_conversations

SHAR_KEYS = {"shard_origin", "shar_epoch"}


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Overlapping windows over three 16-bit WAV conversations of 260 s at 16 kHz."""
    root = tmp_path_factory.mktemp("shar")
    manifest = write_conversations(root / "data", count=3)
    prepare_alm(manifest, root / "out", progress=False, overlap_percentage=90)
    return manifest_paths(root / "out")["cuts"]


def _durations(shar_dir: Path) -> list[list[float]]:
    """Window durations per shard, in shard order."""
    shards: dict[str, list[float]] = {}
    for cut in CutSet.from_shar(in_dir=shar_dir):
        shards.setdefault(str(cut.custom["shard_origin"]), []).append(cut.duration)
    return [shards[k] for k in sorted(shards)]


def test_read_back_equals_lhotse_loading_of_each_window(windows: Path, tmp_path: Path) -> None:
    source = CutSet.from_file(windows).to_eager()
    assert len(source) >= 5
    summary = export_shar(windows, tmp_path / "shar", shard_duration=250, progress=False)
    assert summary["written"] == summary["windows"] == len(source) and summary["shards"] >= 2
    assert summary["hours"] == pytest.approx(sum(c.duration for c in source) / 3600)
    back = list(CutSet.from_shar(in_dir=tmp_path / "shar"))
    assert [c.id for c in back] == list(source.ids)
    for orig, cut in zip(source, back):
        audio = cut.load_audio()
        assert audio.dtype == np.float32
        np.testing.assert_array_equal(audio, orig.load_audio())  # Lhotse's own slicing of the source
        assert cut.start == 0 and cut.duration == orig.duration
        assert cut.supervisions == orig.supervisions  # window-relative times and words, unchanged
        assert {k: v for k, v in cut.custom.items() if k not in SHAR_KEYS} == orig.custom
        validate(cut, read_data=True)


def test_shards_are_sized_by_audio_duration(windows: Path, tmp_path: Path) -> None:
    source = CutSet.from_file(windows).to_eager()
    longest = max(c.duration for c in source)
    export_shar(windows, tmp_path / "by_duration", shard_duration=300, progress=False)
    shards = _durations(tmp_path / "by_duration")
    assert sum(map(len, shards)) == len(source) and len(shards) >= 2
    for shard in shards[:-1]:  # each closes at the first window that reaches the budget
        assert sum(shard) >= 300 and sum(shard[:-1]) < 300
    assert sum(shards[-1]) < 300 + longest
    export_shar(windows, tmp_path / "capped", shard_duration=10_000, shard_size=2, progress=False)
    assert [len(s) for s in _durations(tmp_path / "capped")] == [2] * (len(source) // 2) + [1] * (len(source) % 2)
    export_shar(windows, tmp_path / "default", progress=False)
    assert len(_durations(tmp_path / "default")) == -(-sum(c.duration for c in source) // 3600)


def test_each_recording_is_decoded_once_per_shard(windows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Overlapping windows share their decoded samples: no sample of a file is read twice."""
    opened: list[Any] = []
    real_open = audio_module.open_audio

    class Counting:
        def __init__(self, path: str) -> None:
            self.inner = real_open(path)
            self.path, self.frames_read = path, 0
            opened.append(self)

        def read(self, frames: int, **kwargs: Any) -> np.ndarray:
            out = self.inner.read(frames, **kwargs)
            self.frames_read += len(out)
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    monkeypatch.setattr(audio_module, "open_audio", Counting)
    source = CutSet.from_file(windows).to_eager()
    export_shar(windows, tmp_path / "shar", shard_duration=1e6, progress=False)
    paths = {c.recording.sources[0].source for c in source}
    assert sorted(o.path for o in opened) == sorted(paths)  # one shard: each file opened once
    for o in opened:
        assert o.frames_read <= o.inner.frames
        cuts = [c for c in source if c.recording.sources[0].source == o.path]
        span = compute_num_samples(max(c.end for c in cuts), 16000) - compute_num_samples(min(c.start for c in cuts), 16000)
        assert o.frames_read == span < sum(c.num_samples for c in cuts)  # the windows overlap


def _stereo_windows(tmp_path: Path, rate: int = 22050, cutoff: Any = None) -> Path:
    manifest = write_conversations(tmp_path / "stereo", count=1, channels=2, ext="flac", rate=rate, cutoff=cutoff)
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
        expected = orig.load_audio()
        assert type(kept).__name__ == "MultiCut" and kept.channel == [0, 1]
        np.testing.assert_array_equal(kept.load_audio(), expected)
        assert type(mixed).__name__ == "MonoCut"
        np.testing.assert_allclose(mixed.load_audio(), expected.mean(axis=0, keepdims=True), atol=1 / 32768)


def test_resampling_with_soxr_is_close_to_lhotse_resampling(tmp_path: Path) -> None:
    """Audio band-limited below both resamplers' pass bands: they agree to a small error."""
    cuts_path = _stereo_windows(tmp_path, rate=48000, cutoff=3000)
    source = CutSet.from_file(cuts_path).to_eager().subset(first=2)
    export_shar(source, tmp_path / "shar", sampling_rate=16000, mono=True, progress=False)
    for orig, cut in zip(source, CutSet.from_shar(in_dir=tmp_path / "shar")):
        assert cut.sampling_rate == 16000 and cut.num_samples == compute_num_samples(orig.duration, 16000)
        rec = Recording.from_file(orig.recording.sources[0].source).resample(16000)
        expected = rec.load_audio(offset=orig.start, duration=orig.duration).mean(axis=0, keepdims=True)
        got = cut.load_audio()
        inner = slice(1600, -1600)  # both treat the window's edges differently
        np.testing.assert_allclose(got[:, inner], expected[:, inner], atol=3e-3)
        assert np.sqrt(np.mean((got - expected) ** 2)) < 0.01 * np.sqrt(np.mean(expected**2))


def test_compact_audio_is_16k_mono_16bit_flac(tmp_path: Path) -> None:
    cuts_path = _stereo_windows(tmp_path, rate=48000)
    full = export_shar(cuts_path, tmp_path / "full", progress=False)
    compact = export_shar(cuts_path, tmp_path / "compact", compact_audio=True, progress=False)
    assert full["written"] == compact["written"] > 0
    size = {name: sum(p.stat().st_size for p in (tmp_path / name).glob("recording.*")) for name in ("full", "compact")}
    assert size["compact"] * 4 < size["full"]
    for cut in CutSet.from_shar(in_dir=tmp_path / "compact"):
        assert type(cut).__name__ == "MonoCut" and cut.sampling_rate == 16000
        assert cut.num_samples == compute_num_samples(cut.duration, 16000) == cut.load_audio().shape[1]
    with pytest.raises(ValueError, match="compact_audio"):
        export_shar(cuts_path, tmp_path / "bad", compact_audio=True, audio_format="wav", progress=False)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"shard_duration": 0}, "shard_duration must be a number > 0"),
        ({"shard_size": -1}, "shard_size must be an integer >= 0"),
        ({"audio_format": "mp3"}, "audio_format must be one of flac, wav"),
        ({"sampling_rate": -8000}, "sampling_rate must be an integer >= 0"),
        ({"on_error": "ignore"}, "audio_on_error must be one of fail, skip"),
    ],
)
def test_bad_options_are_refused_before_any_work(windows: Path, tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        export_shar(windows, tmp_path / "shar", progress=False, **options)
    assert not (tmp_path / "shar").exists() and not state_dir_for(tmp_path / "shar").exists()


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
    summary = export_shar(cuts, tmp_path / "shar", shard_size=2, on_error="skip", progress=False)
    assert summary["rejected"] == 2 and summary["written"] == len(cuts) - 2
    rejects = [orjson.loads(x) for x in Path(summary["rejects_path"]).read_bytes().splitlines()]
    assert [r["window"] for r in rejects] == bad_ids and "missing.wav" in rejects[0]["audio_filepath"]
    back = list(CutSet.from_shar(in_dir=tmp_path / "shar"))
    assert [c.id for c in back] == [c["id"] for c in cuts if c["id"] not in bad_ids]


def test_nothing_written_is_said_loudly(windows: Path, tmp_path: Path) -> None:
    cuts, _ = _with_broken_audio(windows, tmp_path)
    summary = export_shar(cuts[:1], tmp_path / "shar", on_error="skip", progress=False)
    assert summary["shards"] == 0 and summary["written"] == 0
    assert nothing_written_warning(summary) == "WARNING: the Shar export wrote nothing: all 1 windows were rejected; 0 shards"
    empty = export_shar([], tmp_path / "empty", progress=False)
    assert "no windows to export" in nothing_written_warning(empty)


def test_window_longer_than_its_audio_is_an_error(windows: Path, tmp_path: Path) -> None:
    cut = CutSet.from_file(windows)[0].to_dict()
    cut["start"] = 250.0
    with pytest.raises(SharExportError, match="window needs samples"):
        export_shar([cut], tmp_path / "shar", progress=False)


def _shard_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_killed_export_resumes_shard_by_shard(windows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export_shar(windows, tmp_path / "fresh", shard_size=2, progress=False)
    real = shar_module.write_shard
    calls = {"n": 0}

    def dies_on_third(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

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
    with pytest.raises(SharDirError, match="other parameters"):
        export_shar(windows, tmp_path / "shar", shard_size=3, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other/file.txt").write_text("x")
    with pytest.raises(SharDirError, match="not empty"):
        export_shar(windows, tmp_path / "other", progress=False)


def test_options_are_declared_once() -> None:
    options = SharOptions(on_error="skip", sampling_rate=8000)
    assert options.audio_on_error == "skip" and options.target_rate(16000) == 8000
    assert SharOptions(compact_audio=True).target_rate(48000) == 16000 and SharOptions().target_rate(48000) == 48000
