"""Facts a manifest may leave out, taken from the audio itself (soundfile + numpy only).

The fast core must stay free of Lhotse, so this module imports neither Lhotse nor torch.

* ``read_header``: sample rate, frame count and channel count from the file header,
  without decoding any audio.
* ``estimate_bandwidth``: the highest frequency that carries signal. Method: Hann-windowed
  frames of ``N_FFT`` samples with 50 % overlap, power spectra averaged over all frames
  (Welch's method), then the highest frequency bin whose mean power is within
  ``threshold_db`` (default 50 dB) of the strongest bin. Audio that was once band-limited
  (telephone 8 kHz audio upsampled to 16 kHz, say) has almost no energy above its original
  Nyquist frequency, so its power spectrum drops by far more than 50 dB at that edge,
  while speech itself stays within that range of its peak. The result is in Hz, at most
  half the sample rate, with a resolution of ``sample_rate / N_FFT``.
* ``AudioCompletion``: a reader entry hook that applies both to a manifest entry.
* ``open_audio`` and ``resample``: the one way a source audio file is opened (a local
  path, or any fsspec URL streamed through ``alm_lhotse.fs`` with the run's storage
  options) and the Shar export's resampler (soxr).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf

from alm_lhotse.errors import InvalidEntry
from alm_lhotse.fs import StorageError, is_url, open_url
from alm_lhotse.reading.validation import validate_entry

N_FFT = 2048
DEFAULT_THRESHOLD_DB = 50.0


class AudioHeader(NamedTuple):
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def read_header(path: str) -> AudioHeader:
    """Header facts only; soundfile reads them without decoding samples."""
    with open_audio(path) as audio:
        return AudioHeader(int(audio.samplerate), int(audio.frames), int(audio.channels))


def audio_exists(path: Any) -> bool:
    """Whether ``audio_filepath`` names an existing file or object; ``StorageError`` when
    the store cannot say (no such bucket, access denied, endpoint unreachable)."""
    if not isinstance(path, str) or not path:
        return False
    if not is_url(path):
        return os.path.isfile(path)
    from alm_lhotse import objects

    return objects.exists(path)


class _StreamedAudio(sf.SoundFile):
    """A SoundFile over a stream it owns: closing the audio closes the stream."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        try:
            super().__init__(stream)
        except BaseException:
            stream.close()
            raise

    def close(self) -> None:
        super().close()
        self._stream.close()


def open_audio(path: str) -> sf.SoundFile:
    """The source file open for seeking and reading; ``FileNotFoundError`` when it is absent
    (libsndfile's own message for that would not say so), ``OSError`` with the storage
    layer's one-line reason when an object cannot be opened."""
    if not is_url(path):
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        return sf.SoundFile(path)
    try:
        if not audio_exists(path):
            raise FileNotFoundError(path)
        return _StreamedAudio(open_url(path))
    except StorageError as exc:
        raise OSError(str(exc)) from None


# soxr's "HQ" recipe: 20-bit precision, pass band to 91 % of the lower Nyquist frequency,
# linear phase. It is soxr's default and several times faster than Lhotse's sinc resampler.
RESAMPLE_QUALITY = "HQ"


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """(frames, channels) float32 resampled with soxr; the length is soxr's (about
    ``frames * target_rate / source_rate``), callers fix it to what they need."""
    import soxr

    return np.asarray(soxr.resample(samples, source_rate, target_rate, quality=RESAMPLE_QUALITY), dtype=np.float32)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Mean over channels of a (frames, channels) array; 1-D input is returned as is."""
    return samples if samples.ndim == 1 else samples.mean(axis=1)


def power_spectrum(samples: np.ndarray, n_fft: int = N_FFT) -> np.ndarray:
    """Mean power per frequency bin over Hann-windowed, half-overlapping frames."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < n_fft:
        # One frame: taper the segment itself, then zero-pad, so its edges do not leak.
        return np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft)) ** 2
    hop = n_fft // 2
    count = 1 + (len(x) - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:count]
    spectra = np.fft.rfft(frames * np.hanning(n_fft), axis=1)
    return np.mean(np.abs(spectra) ** 2, axis=0)


def estimate_bandwidth(
    samples: np.ndarray, sample_rate: int, threshold_db: float = DEFAULT_THRESHOLD_DB, n_fft: int = N_FFT
) -> int:
    """Highest frequency (Hz) whose mean power is within ``threshold_db`` of the peak; 0 for silence."""
    power = power_spectrum(to_mono(samples), n_fft)
    peak = power.max()
    if peak <= 0:
        return 0
    above = np.nonzero(power >= peak * 10.0 ** (-threshold_db / 10.0))[0]
    return int(round(above[-1] * sample_rate / n_fft))


def _has_bandwidth(seg: dict[str, Any]) -> bool:
    metrics = seg.get("metrics")
    return isinstance(metrics, dict) and metrics.get("bandwidth") is not None


def _exists(path: Any) -> bool:
    try:
        return audio_exists(path)
    except StorageError as exc:
        raise InvalidEntry("audio_filepath", str(exc)) from None


@dataclass(frozen=True)
class AudioCompletion:
    """Entry hook for the reader: fill what the manifest left out from its audio file.

    ``read_headers`` fills a missing (or null) ``audio_sample_rate`` or ``duration`` from
    the header when the file exists; when it does not, the entry is left for validation
    to judge (a missing sample rate is then rejected, a missing duration is allowed).
    ``estimate_bandwidth`` fills ``metrics.bandwidth`` of every segment that lacks it, and
    rejects the entry when the audio needed for that cannot be read: a silent 0 would
    quietly drop every window. A module-level dataclass so it pickles into worker processes.
    """

    read_headers: bool = True
    estimate_bandwidth: bool = False
    threshold_db: float = DEFAULT_THRESHOLD_DB

    def __call__(self, entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        path = entry.get("audio_filepath")
        wanted = [k for k in ("audio_sample_rate", "duration") if entry.get(k) is None]
        if self.read_headers and wanted and _exists(path):  # an object's HEAD only when needed
            header = self._header(path)
            facts = {"audio_sample_rate": header.sample_rate, "duration": header.duration}
            entry.update({k: facts[k] for k in wanted})
        if self.estimate_bandwidth:
            self._fill_bandwidths(entry, path)
        return entry

    @staticmethod
    def _header(path: str) -> AudioHeader:
        try:
            return read_header(path)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise InvalidEntry("audio_filepath", f"cannot read the audio header of {path}: {exc}") from None

    def _fill_bandwidths(self, entry: dict[str, Any], path: Any) -> None:
        validate_entry(entry)
        todo = [i for i, seg in enumerate(entry["segments"]) if not _has_bandwidth(seg)]
        if not todo:
            return
        field = f"segments[{todo[0]}].metrics.bandwidth"
        if not _exists(path):
            raise InvalidEntry(field, f"missing, and the audio to estimate it from ({path}) does not exist")
        try:
            with open_audio(path) as audio:
                for i in todo:
                    seg = entry["segments"][i]
                    value = self._segment_bandwidth(audio, seg, f"segments[{i}]")
                    if not isinstance(seg.get("metrics"), dict):
                        seg["metrics"] = {}
                    seg["metrics"]["bandwidth"] = value
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise InvalidEntry(field, f"cannot read the audio {path} to estimate it: {exc}") from None

    def _segment_bandwidth(self, audio: sf.SoundFile, seg: dict[str, Any], where: str) -> int:
        rate = audio.samplerate
        first = int(round(seg["start"] * rate))
        count = int(round(seg["end"] * rate)) - first
        if count <= 0:
            return 0
        if first >= audio.frames:
            raise InvalidEntry(
                f"{where}.start", f"segment starts after the end of its audio ({audio.frames / rate:.3f} s)"
            )
        audio.seek(first)
        return estimate_bandwidth(audio.read(count, dtype="float32"), rate, self.threshold_db)
