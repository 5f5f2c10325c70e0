"""Writing one Shar shard: each source recording decoded once for all of its windows.

The windows of a shard are read in order; consecutive windows of one recording share one
open file and one buffer of decoded samples, so where kept windows overlap (up to half of
each at ``overlap_percentage=100``) their common samples are decoded once, and the gaps
between windows are seeked over, never decoded. The buffer holds at most one window's
samples (from the current window's start on), whatever the recording's length.

A window's samples are ``num_samples(start)`` .. ``+ num_samples(duration)`` counted at
the file's own rate, exactly as Lhotse slices a cut. Without mixing or resampling, a
16-bit source is read and written as 16-bit integers (the same bytes as through float,
less work; mixing and resampling start from them too), and a FLAC source stored as the same FLAC is not decoded at all but for the
partial frames at the window's edges: its whole frames are copied (``flac_frames``).
Mixing is the mean of the channels; resampling is soxr's, per window, so each window is
independent of its neighbours, as with Lhotse's ``Recording.resample``.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

import orjson

from alm_lhotse import objects
from alm_lhotse.flac_frames import FrameIndex, Unusable, cut_stream
from alm_lhotse.fs import Location, StorageError, is_url, join, name_of, open_url
from alm_lhotse.outputs.lhotse_manifests import num_samples
from alm_lhotse.shar_options import SharOptions
from alm_lhotse.shar_plan import read_inputs, tuples_as_lists
from alm_lhotse.storage import publish, temp_name

if TYPE_CHECKING:
    import numpy as np
    import soundfile as sf

SHARD_NAME = "{field}.{index:06d}{ext}"
DONE_DIR = "done"
TMP_DIR = "tmp"
# Rounding of start and duration to samples may ask for one frame past the end of the file.
ROUNDING_SLACK_FRAMES = 1
# Level 6: Lhotse's 9 costs several times the CPU for about 2 % smaller cut files.
GZIP_LEVEL = 6
_INTEGER_SOURCES = frozenset({"PCM_S8", "PCM_U8", "PCM_16"})


class SharExportError(RuntimeError):
    """A window whose audio cannot be exported; names the window and the audio file."""

    def __init__(self, cut_id: str, path: str, reason: str) -> None:
        self.cut_id = cut_id
        self.path = path
        self.reason = reason
        super().__init__(f"window {cut_id}: audio {path}: {reason}")

    def __reduce__(self) -> tuple:
        return (SharExportError, (self.cut_id, self.path, self.reason))


def shard_paths(directory: Location, index: int) -> dict[str, Location]:
    return {
        "recording": join(directory, SHARD_NAME.format(field="recording", index=index, ext=".tar")),
        "cuts": join(directory, SHARD_NAME.format(field="cuts", index=index, ext=".jsonl.gz")),
    }


def done_marker(state: Location, index: int) -> Location:
    return join(state, DONE_DIR, f"{index:06d}.json")


def read_done(state: Location, index: int) -> Optional[dict[str, Any]]:
    try:
        return orjson.loads(objects.read_bytes(done_marker(state, index)))
    except FileNotFoundError:
        return None


def audio_path(cut: dict[str, Any]) -> str:
    sources = cut.get("recording", {}).get("sources") or [{}]
    source = sources[0]
    if source.get("type") != "file" or len(sources) != 1:
        raise SharExportError(cut["id"], str(source.get("source")), "only single-file audio sources can be exported")
    return source["source"]


class RecordingReader:
    """One open source file; windows asked for in order share the samples decoded once."""

    def __init__(self, path: str, options: SharOptions) -> None:
        from alm_lhotse.audio import open_audio

        self.path = path
        self.audio: sf.SoundFile = open_audio(path)
        self.rate = self.audio.samplerate
        self.channels = self.audio.channels
        self.frames = self.audio.frames
        self.target_rate = options.target_rate(self.rate)
        self.mix = options.mix_to_mono and self.channels > 1
        self.subtype = options.store_subtype(self.audio.subtype)
        self.dtype = "int16" if self.audio.subtype in _INTEGER_SOURCES else "float32"
        self.start = 0
        self.buffer: Optional[np.ndarray] = None
        self.format = options.audio_format
        same_stream = self.audio.format == "FLAC" and self.format == "flac" and self.subtype == self.audio.subtype
        self.frames_index = self._index(path) if same_stream and not self.mix and self.target_rate == self.rate else None

    @staticmethod
    def _index(path: str) -> Optional[FrameIndex]:
        """The source's frames, when whole frames can be copied into the windows."""
        try:
            return FrameIndex.of_stream(open_url(path)) if is_url(path) else FrameIndex.of_file(path)
        except (Unusable, OSError, StorageError):
            return None

    def close(self) -> None:
        self.audio.close()
        if self.frames_index is not None:
            self.frames_index.close()

    def encoded(self, cut: dict[str, Any]) -> tuple[bytes, int, int]:
        """The window as stored: (audio file bytes, channels, rate). A FLAC source stored
        as the same FLAC has its whole frames copied (``flac_frames``); else the samples
        are encoded."""
        if self.frames_index is not None:
            first = num_samples(cut["start"], self.rate)
            count = num_samples(cut["duration"], self.rate)
            try:
                data = cut_stream(self.frames_index, first, count, self._encoded_span)
            except Unusable:
                self.frames_index.close()
                self.frames_index = data = None
            if data is not None:
                return data, self.channels, self.rate
        samples = self.window(cut)
        return encode(samples, self.target_rate, self.format, self.subtype), samples.shape[1], self.target_rate

    def _encoded_span(self, first: int, count: int) -> bytes:
        return encode(self._samples(first, count), self.rate, self.format, self.subtype)

    def window(self, cut: dict[str, Any]) -> np.ndarray:
        """(frames, channels) of the window, mixed and resampled as asked."""
        first = num_samples(cut["start"], self.rate)
        count = num_samples(cut["duration"], self.rate)
        if first + count > self.frames + ROUNDING_SLACK_FRAMES:
            have = f"{self.frames} ({self.frames / self.rate:.3f} s)"
            raise SharExportError(cut["id"], self.path, f"window needs samples {first}..{first + count} but the file has {have}")
        samples = self._samples(first, count)
        if self.mix or self.target_rate != self.rate:
            samples = self._as_float(samples)
        if self.target_rate != self.rate:
            samples = self._resampled(samples, cut["duration"])
        return samples

    def _as_float(self, samples: np.ndarray) -> np.ndarray:
        """float32 samples, mixed to their mean when asked. 16-bit samples are scaled by
        2^-15 as libsndfile reads them as floats, and summed as integers, so a mix of two
        channels is exactly the float mean; numpy's ``mean(axis=1)`` was 10x slower."""
        import numpy as np

        integer = samples.dtype == np.int16
        scale = 2.0**-15 if integer else 1.0
        if not self.mix:
            return samples.astype(np.float32) * np.float32(scale) if integer else samples
        total = samples[:, 0].astype(np.int32 if integer else np.float32)
        for channel in range(1, samples.shape[1]):
            total += samples[:, channel]
        return (total.astype(np.float32) * np.float32(scale / samples.shape[1]))[:, None]

    def _samples(self, first: int, count: int) -> np.ndarray:
        import numpy as np

        buffered = 0 if self.buffer is None else len(self.buffer)
        if self.buffer is None or not self.start <= first <= self.start + buffered:
            self.audio.seek(first)
            self.start, self.buffer, buffered = first, None, 0
        missing = first + count - (self.start + buffered)
        if missing > 0:
            more = self.audio.read(missing, dtype=self.dtype, always_2d=True)
            kept = self.buffer[first - self.start :] if self.buffer is not None else more[:0]
            self.buffer = np.concatenate([kept, more]) if len(kept) else more
            self.start = first
        out = self.buffer[first - self.start : first - self.start + count]
        if len(out) < count:  # the rounding slack: repeat the last sample
            out = np.pad(out, ((0, count - len(out)), (0, 0)), mode="edge")
        return out

    def _resampled(self, samples: np.ndarray, duration: float) -> np.ndarray:
        import numpy as np

        from alm_lhotse.audio import resample

        out = resample(np.asarray(samples, dtype=np.float32), self.rate, self.target_rate)
        want = num_samples(duration, self.target_rate)
        if len(out) >= want:
            return out[:want]
        return np.pad(out, ((0, want - len(out)), (0, 0)), mode="edge")


def _open_reader(cut: dict[str, Any], path: str, options: SharOptions) -> RecordingReader:
    import soundfile as sf

    try:
        return RecordingReader(path, options)
    except FileNotFoundError:
        raise SharExportError(cut["id"], path, "file does not exist") from None
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise SharExportError(cut["id"], path, f"cannot read: {exc}") from None


def window_audio(cuts: Iterable[dict[str, Any]], options: SharOptions) -> Iterator[tuple[dict[str, Any], Any]]:
    """(cut, (audio bytes, channels, rate) or the SharExportError) per window, in order; one
    reader per run of consecutive windows over the same file."""
    import soundfile as sf

    reader: Optional[RecordingReader] = None
    failed: Optional[SharExportError] = None
    current = None
    try:
        for cut in cuts:
            try:
                path = audio_path(cut)
                if path != current:
                    if reader is not None:
                        reader.close()
                    reader, failed, current = None, None, path
                    reader = _open_reader(cut, path, options)
                if reader is None:
                    raise SharExportError(cut["id"], path, failed.reason if failed else "unreadable")
                try:
                    stored = reader.encoded(cut)
                except SharExportError:
                    raise
                except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                    raise SharExportError(cut["id"], path, f"cannot read: {exc}") from None
                yield cut, stored
            except SharExportError as exc:
                failed = failed or exc
                yield cut, exc
    finally:
        if reader is not None:
            reader.close()


def shar_cut(cut: dict[str, Any], channels: int, rate: int) -> dict[str, Any]:
    """The cut as stored in the shard: start 0, its recording the in-shard audio, all else unchanged."""
    channel_ids = list(range(channels))
    recording = {
        "id": cut["recording"]["id"],
        "sources": [{"type": "shar", "channels": channel_ids, "source": ""}],
        "sampling_rate": rate,
        "num_samples": num_samples(cut["duration"], rate),
        "duration": cut["duration"],
        "channel_ids": channel_ids,
    }
    out = {**cut, "start": 0, "recording": recording}
    out["type"], out["channel"] = ("MultiCut", channel_ids) if channels > 1 else ("MonoCut", 0)
    return out


def encode(samples: np.ndarray, rate: int, audio_format: str, subtype: str) -> bytes:
    import soundfile as sf

    stream = io.BytesIO()
    sf.write(stream, samples, rate, format=audio_format.upper(), subtype=subtype)
    return stream.getvalue()


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Tar member with fixed metadata, so the same input always gives the same bytes."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shard(
    state: Location, output_dir: Location, index: int, options: SharOptions, progress: Optional[Callable[[int], None]] = None
) -> dict[str, Any]:
    """Write shard ``index``, then record it as done. Into a directory: under temp names
    beside the state, renamed into place. Into object storage: in a local temp directory,
    each file then uploaded as an object that appears only when complete."""
    final = shard_paths(output_dir, index)
    if is_url(output_dir):
        with tempfile.TemporaryDirectory(prefix="alm-shar-") as tmp_dir:
            tmp = {name: Path(tmp_dir) / name_of(path) for name, path in final.items()}
            result = _write_files(state, index, options, tmp, progress)
            if result["written"]:
                for name in ("recording", "cuts"):
                    objects.upload_file(tmp[name], str(final[name]))
    else:
        tmp = {name: temp_name(Path(state) / TMP_DIR / name_of(path)) for name, path in final.items()}
        tmp["recording"].parent.mkdir(parents=True, exist_ok=True)
        try:
            result = _write_files(state, index, options, tmp, progress)
            if result["written"]:
                publish(tmp["recording"], Path(final["recording"]))
                publish(tmp["cuts"], Path(final["cuts"]))
        finally:
            for path in tmp.values():
                path.unlink(missing_ok=True)
    objects.write_bytes(done_marker(state, index), orjson.dumps(result))
    return result


def _write_files(
    state: Location, index: int, options: SharOptions, tmp: dict[str, Path], progress: Optional[Callable[[int], None]]
) -> dict[str, Any]:
    """The shard's tar and cuts files at the paths ``tmp``; returns what was written."""
    import gzip

    rejects: list[dict[str, Any]] = []
    windows = written = 0
    seconds = 0.0
    fmt = options.audio_format
    with (
        tarfile.open(tmp["recording"], "w", format=tarfile.GNU_FORMAT) as tar,
        open(tmp["cuts"], "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as cuts_out,
    ):
        for cut, audio in window_audio(read_inputs(state, index), options):
            windows += 1
            if progress is not None:
                progress(1)
            if isinstance(audio, SharExportError):
                if options.audio_on_error == "fail":
                    raise audio
                rejects.append({"window": audio.cut_id, "audio_filepath": audio.path, "reason": audio.reason})
                continue
            data, channels, rate = audio
            stored = shar_cut(cut, channels, rate)
            _add_member(tar, f"{cut['id']}.{fmt}", data)
            _add_member(tar, f"{cut['id']}.json", orjson.dumps(stored["recording"]))
            cuts_out.write(orjson.dumps(stored, default=tuples_as_lists) + b"\n")
            written += 1
            seconds += float(cut["duration"])
    return {"index": index, "windows": windows, "written": written, "seconds": seconds, "rejects": rejects}
