"""Our outputs read by NVIDIA NeMo's own Lhotse dataloader (``get_lhotse_dataloader_from_config``):

- ``alm_windows_nemo.jsonl`` as ``manifest_filepath``: every window arrives with its
  offset, duration and text, and its audio equals the window cut's, sample for sample;
- the transcript view (``lhotse/alm_cuts_transcripts_all.jsonl.gz``) as ``cuts_path`` of a
  ``lhotse_as_conversation`` input, and the NeMo manifest as its ``manifest_filepath``:
  every turn's words reach the training example.

NeMo is not a dependency (``nemo_toolkit[asr]`` is 2.2 GB): without it these tests skip,
on CI too. docs/training.md says which versions were verified.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet
from lhotse.utils import compute_num_samples

from alm_lhotse import OverlapConfig, WindowConfig, run_job
from alm_lhotse.lhotse_io import write_transcript_view

try:
    from nemo.collections.common.data.lhotse.dataloader import get_lhotse_dataloader_from_config
except ImportError:
    pytestmark = pytest.mark.skip(reason="nemo_toolkit[asr] is not installed (2.2 GB; see docs/training.md)")

NEMO_FILE = "alm_windows_nemo.jsonl"
CUTS_FILE = "lhotse/alm_cuts_windows_all.jsonl.gz"
VIEW_FILE = "lhotse/alm_cuts_transcripts_all.jsonl.gz"
# Short windows keep the audio small; rates other than 16 kHz and times off the sample
# grid check that NeMo cuts the window where we do.
WCFG = WindowConfig(target_window_duration=10.0, tolerance=0.2)
OCFG = OverlapConfig(overlap_target_duration=10.0)
RATES = {"talk_48k": 48000, "talk_22k": 22050, "talk_16k": 16000}
SPEAKERS = ("alice", "bob", "carol")


def _entry(path: Path, rate: int, seed: int) -> dict[str, Any]:
    """A 37.3 s recording of noise (int16 PCM, so samples compare exactly) and turns of
    1.3-2.9 s by three speakers, starting off the sample grid."""
    rng = np.random.default_rng(seed)
    duration = 37.3
    sf.write(path, rng.integers(-20000, 20000, int(duration * rate), dtype=np.int16), rate, subtype="PCM_16")
    segments, t, k = [], 0.123457, 0
    while t + 3.0 < duration:
        end = round(t + rng.uniform(1.3, 2.9), 5)
        words = [f"{path.stem}_w{k}_{j}" for j in range(3)]
        segments.append(
            {"start": t, "end": end, "speaker": SPEAKERS[k % 3], "text": " ".join(words), "metrics": {"bandwidth": 8000}}
        )
        t, k = round(end + rng.uniform(0.01, 0.4), 5), k + 1
    return {"audio_filepath": str(path), "audio_sample_rate": rate, "duration": duration, "segments": segments}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nemo_loader")
    entries = [_entry(root / f"{name}.wav", rate, seed) for seed, (name, rate) in enumerate(RATES.items())]
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    out = root / "out"
    run_job(manifest, out, WCFG, OCFG)
    write_transcript_view(out / CUTS_FILE, out / VIEW_FILE)
    return out


class _Cuts(torch.utils.data.Dataset):
    """NeMo's dataset contract: a sampled CutSet in, a batch out; here the cuts themselves."""

    def __getitem__(self, cuts: CutSet) -> CutSet:
        return cuts


def _nemo_read(config: dict[str, Any]) -> list[Any]:
    """Every example NeMo's dataloader yields for ``config``, in order, read once."""
    config = {"batch_size": 2, "shuffle": False, "num_workers": 0, "seed": 0, "force_finite": True, **config}
    loader = get_lhotse_dataloader_from_config(config, global_rank=0, world_size=1, dataset=_Cuts())
    return [example for batch in loader for example in batch]


def _windows(out: Path) -> list[Any]:
    return list(CutSet.from_file(out / CUTS_FILE))


def test_every_rate_gives_windows(outputs: Path) -> None:
    rates = {cut.recording.sampling_rate for cut in _windows(outputs)}
    assert rates == set(RATES.values())


@pytest.mark.parametrize("sample_rate", sorted(set(RATES.values())))
def test_nemo_manifest_read_by_nemo(outputs: Path, sample_rate: int) -> None:
    """NeMo resamples every example to its config's ``sample_rate`` (default 16000).
    Windows of a recording at that rate arrive as exactly the source samples over the
    window (the window cut's audio); the others as our window cut resampled the same way,
    up to their last sample: NeMo puts the window's ends on the source's sample grid before
    resampling, which can round the resampled length one sample the other way."""
    windows = _windows(outputs)
    lines = [json.loads(line) for line in (outputs / NEMO_FILE).read_text().splitlines()]
    read = _nemo_read({"manifest_filepath": str(outputs / NEMO_FILE), "sample_rate": sample_rate})
    assert len(read) == len(windows) == len(lines) > 3
    for cut, window, line in zip(read, windows, lines):
        assert cut.custom["id"] == window.id == line["id"]
        assert (window.start, window.duration) == (line["offset"], line["duration"])
        assert cut.recording.sources[0].source == window.recording.sources[0].source
        rate = window.sampling_rate
        assert abs(cut.start - window.start) < 1 / rate and abs(cut.duration - window.duration) < 1 / rate
        (sup,) = cut.supervisions
        assert sup.text == line["text"] == " ".join(s.text for s in window.supervisions)
        assert (sup.start, sup.duration) == (0, cut.duration)
        theirs = cut.load_audio()
        assert cut.sampling_rate == sample_rate
        if rate == sample_rate:
            source, _ = sf.read(window.recording.sources[0].source, dtype="float32", always_2d=True)
            start = compute_num_samples(window.start, rate)
            assert np.array_equal(theirs, window.load_audio()), window.id
            assert np.array_equal(theirs[0], source[start : start + window.num_samples, 0]), window.id
        else:
            ours = window.resample(sample_rate).load_audio()
            common = min(theirs.shape[1], ours.shape[1])
            assert abs(theirs.shape[1] - ours.shape[1]) <= 1, window.id
            assert np.array_equal(theirs[:, :common], ours[:, :common]), window.id


def _assert_every_turn(text: str, window: Any, tagged: bool) -> None:
    """Every turn's words, in order, in ``text``; with tags, each speaker change marked."""
    words = text.split()
    plain = [w for w in words if not (w.startswith("[") and w.endswith("]"))]
    assert plain == [w for s in window.supervisions for w in s.text.split()]
    if tagged:
        turns = window.supervisions
        changes = [s.speaker for k, s in enumerate(turns) if k == 0 or s.speaker != turns[k - 1].speaker]
        assert [w[1:-1] for w in words if w not in plain] == changes


CONVERSATION = {"type": "lhotse_as_conversation", "audio_locator_tag": "<|audio|>", "token_equivalent_duration": 0.08}


@pytest.mark.parametrize("source", ["cuts_path", "manifest_filepath"])
def test_conversation_input_gets_every_turn(outputs: Path, source: str) -> None:
    path = outputs / (VIEW_FILE if source == "cuts_path" else NEMO_FILE)
    entry = {**CONVERSATION, source: str(path), "tags": {"context": "Transcribe the conversation."}}
    read = _nemo_read({"input_cfg": [entry]})
    windows = _windows(outputs)
    assert len(read) == len(windows)
    for conversation, window in zip(read, windows):
        roles = [(type(turn).__name__, turn.role) for turn in conversation.turns]
        assert roles == [("TextTurn", "user"), ("AudioTurn", "user"), ("TextTurn", "assistant")]
        context, audio, answer = conversation.turns
        assert context.value == "Transcribe the conversation."
        assert abs(audio.cut.duration - window.duration) < 1 / window.sampling_rate
        _assert_every_turn(answer.value, window, tagged=source == "cuts_path")
