"""Audio-aware conversion: header facts and bandwidth estimation on synthetic audio.

``write_conversations`` is shared by the recipe, Shar and CLI tests: deterministic
noise audio plus a manifest of three speakers taking turns, with word timings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import orjson
import pytest
import soundfile as sf

from alm_lhotse.audio import AudioCompletion, estimate_bandwidth, read_header
from alm_lhotse.errors import InvalidEntry
from alm_lhotse.reading.reader import parse_entry


def band_limited_noise(seconds: float, rate: int, cutoff: Optional[float], seed: int, channels: int = 1) -> np.ndarray:
    """White noise with every frequency above ``cutoff`` removed (brick-wall, in the FFT domain)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((int(seconds * rate), channels))
    if cutoff is not None:
        spectrum = np.fft.rfft(x, axis=0)
        spectrum[np.fft.rfftfreq(len(x), 1 / rate) > cutoff] = 0
        x = np.fft.irfft(spectrum, len(x), axis=0)
    return (0.25 * x / np.abs(x).max()).astype(np.float32)


def conversation_segments(duration: float, turn: float = 4.5, with_bandwidth: bool = True) -> list[dict[str, Any]]:
    segments = []
    t, k = 0.0, 0
    while t + turn <= duration:
        start, end = round(t, 2), round(t + turn - 0.5, 2)
        seg: dict[str, Any] = {
            "start": start,
            "end": end,
            "speaker": f"spk{k % 3}",
            "text": f"alpha{k} beta{k}",
            "words": [
                {"word": f"alpha{k}", "start": start, "end": round(start + 1.0, 2)},
                {"word": f"beta{k}", "start": round(start + 1.5, 2), "end": end},
            ],
        }
        if with_bandwidth:
            seg["metrics"] = {"bandwidth": 8000}
        segments.append(seg)
        t += turn
        k += 1
    return segments


def write_conversations(
    directory: Path,
    count: int = 2,
    seconds: float = 260.0,
    rate: int = 16000,
    channels: int = 1,
    ext: str = "wav",
    cutoff: Optional[float] = None,
    omit: tuple[str, ...] = (),
    with_bandwidth: bool = True,
) -> Path:
    """``count`` audio files and a manifest over them; ``omit`` drops top-level fields."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        path = directory / f"conv{i}.{ext}"
        sf.write(path, band_limited_noise(seconds, rate, cutoff, seed=i, channels=channels), rate, subtype="PCM_16")
        entry = {
            "audio_filepath": str(path),
            "audio_sample_rate": rate,
            "duration": seconds,
            "segments": conversation_segments(seconds, with_bandwidth=with_bandwidth),
        }
        lines.append(orjson.dumps({k: v for k, v in entry.items() if k not in omit}))
    manifest = directory / "manifest.jsonl"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    return manifest


@pytest.mark.parametrize("rate, cutoff", [(16000, 4000), (32000, 4000), (32000, 8000), (44100, 8000)])
def test_bandwidth_of_low_passed_noise(rate: int, cutoff: int) -> None:
    estimate = estimate_bandwidth(band_limited_noise(3.0, rate, cutoff, seed=1), rate)
    assert cutoff <= estimate <= cutoff + 100


def test_bandwidth_of_full_band_noise_is_nyquist_and_silence_is_zero() -> None:
    assert estimate_bandwidth(band_limited_noise(2.0, 16000, None, seed=2), 16000) == 8000
    assert estimate_bandwidth(np.zeros(16000, dtype=np.float32), 16000) == 0


def test_bandwidth_of_short_and_stereo_audio() -> None:
    short = band_limited_noise(0.05, 32000, 4000, seed=3)  # fewer samples than one frame
    assert 4000 <= estimate_bandwidth(short, 32000) <= 4200
    stereo = band_limited_noise(1.0, 32000, 8000, seed=4, channels=2)
    assert 8000 <= estimate_bandwidth(stereo, 32000) <= 8100


def test_header_is_read_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "a.flac"
    sf.write(path, band_limited_noise(1.5, 22050, None, seed=0, channels=2), 22050)
    header = read_header(str(path))
    assert (header.sample_rate, header.frames, header.channels) == (22050, 33075, 2)
    assert header.duration == 1.5


def test_missing_rate_and_duration_come_from_the_header(tmp_path: Path) -> None:
    manifest = write_conversations(tmp_path, count=1, seconds=20.0, rate=22050, omit=("audio_sample_rate", "duration"))
    raw = manifest.read_bytes().splitlines()[0]
    entry = parse_entry(raw, AudioCompletion())
    assert entry["audio_sample_rate"] == 22050 and entry["duration"] == 20.0
    with pytest.raises(InvalidEntry, match="missing required field"):
        parse_entry(raw, AudioCompletion(read_headers=False))


def test_null_rate_is_filled_but_given_values_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(8000, dtype=np.float32), 16000)
    entry = AudioCompletion()({"audio_filepath": str(path), "audio_sample_rate": None, "duration": 7.0, "segments": []})
    assert entry["audio_sample_rate"] == 16000 and entry["duration"] == 7.0


def test_missing_audio_leaves_the_entry_to_validation(tmp_path: Path) -> None:
    raw = orjson.dumps({"audio_filepath": str(tmp_path / "nope.wav"), "segments": []})
    with pytest.raises(InvalidEntry) as err:
        parse_entry(raw, AudioCompletion())
    assert err.value.field == "audio_sample_rate"


def test_unreadable_audio_is_rejected_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF not really audio")
    with pytest.raises(InvalidEntry) as err:
        AudioCompletion()({"audio_filepath": str(path), "segments": []})
    assert err.value.field == "audio_filepath" and str(path) in err.value.reason


def test_bandwidth_is_estimated_only_where_missing(tmp_path: Path) -> None:
    manifest = write_conversations(tmp_path, count=1, seconds=20.0, rate=32000, cutoff=4000, with_bandwidth=False)
    entry = orjson.loads(manifest.read_bytes().splitlines()[0])
    entry["segments"][0]["metrics"] = {"bandwidth": 1234, "snr": 9}
    entry["segments"][1]["metrics"] = {"snr": 3}
    done = AudioCompletion(estimate_bandwidth=True)(entry)
    assert done["segments"][0]["metrics"] == {"bandwidth": 1234, "snr": 9}
    assert done["segments"][1]["metrics"]["snr"] == 3
    for seg in done["segments"][1:]:
        assert 4000 <= seg["metrics"]["bandwidth"] <= 4200


def test_bandwidth_without_audio_rejects_the_entry(tmp_path: Path) -> None:
    entry = {
        "audio_filepath": str(tmp_path / "gone.wav"),
        "audio_sample_rate": 16000,
        "segments": [{"start": 0.0, "end": 1.0, "metrics": {"bandwidth": 9000}}, {"start": 1.0, "end": 2.0}],
    }
    with pytest.raises(InvalidEntry) as err:
        AudioCompletion(estimate_bandwidth=True)(entry)
    assert err.value.field == "segments[1].metrics.bandwidth" and "gone.wav" in err.value.reason


def test_segment_after_the_audio_end_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    entry = {"audio_filepath": str(path), "audio_sample_rate": 16000, "segments": [{"start": 5.0, "end": 6.0}]}
    with pytest.raises(InvalidEntry) as err:
        AudioCompletion(estimate_bandwidth=True)(entry)
    assert err.value.field == "segments[0].start"
