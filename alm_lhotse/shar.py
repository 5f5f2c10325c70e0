"""Export ALM window cuts, with their audio, as Lhotse Shar shards.

Why not ``CutSet.to_shar``: it writes shards straight to their final names (a killed export
leaves a truncated shard that ``from_shar`` then reads), cannot resume, pads or fails on
short audio according to Lhotse-wide tolerances, and has no rejects list. This exporter
writes the same format (``cuts.NNNNNN.jsonl.gz`` + ``recording.NNNNNN.tar`` holding
``<cut id>.<format>`` and ``<cut id>.json``) with these guarantees:

* audio is read with soundfile over exactly the window's samples
  (``num_samples(start)`` .. ``+ num_samples(duration)``, counted as Lhotse counts), optionally mixed
  to mono (mean of channels) and resampled with Lhotse's resampler; a multi-channel window
  kept as is becomes a ``MultiCut`` over all channels;
* the cut's start becomes 0 and its recording the in-shard audio, while supervisions,
  word alignments (already window-relative) and custom fields are kept unchanged;
* missing, unreadable or too-short audio raises ``SharExportError`` naming the window and
  the file, or with ``on_error="skip"`` lands in the rejects list: never a silent gap;
* shard ``k`` always holds input windows ``k*shard_size .. (k+1)*shard_size - 1`` (minus
  rejects), is written under a temp name and renamed, and is then recorded as done, so a
  killed export resumes where it stopped and produces the same shards.

``CutSet.from_shar(in_dir=...)`` treats every file in its directory as a field, so the
bookkeeping (parameters, done markers, temp files, ``rejects.jsonl``, ``summary.json``)
lives beside the shards, in ``<output_dir>.export/``.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Union

import orjson
from tqdm.auto import tqdm

from alm_lhotse.config import ON_ERROR_CHOICES
from alm_lhotse.outputs.lhotse_manifests import num_samples
from alm_lhotse.reading.discovery import PathLike as Pathlike
from alm_lhotse.reading.reader import iter_jsonl_dicts
from alm_lhotse.storage import publish, write_atomic

if TYPE_CHECKING:
    import numpy as np
    from lhotse import CutSet

AUDIO_FORMATS = ("flac", "wav")
STATE_SUFFIX = ".export"
SHARD_NAME = "{field}.{index:06d}{ext}"
# Rounding of start and duration to samples may ask for one frame past the end of the file.
ROUNDING_SLACK_FRAMES = 1
_SOURCE_PRECISION = {"PCM_S8": "PCM_16", "PCM_U8": "PCM_16", "PCM_16": "PCM_16"}


class SharExportError(RuntimeError):
    """A window whose audio cannot be exported; names the window and the audio file."""

    def __init__(self, cut_id: str, path: str, reason: str) -> None:
        self.cut_id = cut_id
        self.path = path
        self.reason = reason
        super().__init__(f"window {cut_id}: audio {path}: {reason}")

    def __reduce__(self) -> tuple:
        return (SharExportError, (self.cut_id, self.path, self.reason))


@dataclass(frozen=True)
class SharOptions:
    """What determines the bytes of the shards; a resumed export must use the same values."""

    shard_size: int = 1000
    audio_format: str = "flac"
    sampling_rate: Optional[int] = None
    mono: bool = False
    on_error: str = "fail"

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {self.shard_size}")
        if self.audio_format not in AUDIO_FORMATS:
            raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, got {self.audio_format!r}")
        if self.on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {self.on_error!r}")
        if self.sampling_rate is not None and self.sampling_rate <= 0:
            raise ValueError(f"sampling_rate must be positive, got {self.sampling_rate}")


def state_dir_for(output_dir: Pathlike) -> Path:
    out = Path(output_dir)
    return out.with_name(out.name + STATE_SUFFIX)


def _audio_path(cut: dict[str, Any]) -> str:
    sources = cut.get("recording", {}).get("sources") or [{}]
    source = sources[0]
    if source.get("type") != "file" or len(sources) != 1:
        raise SharExportError(cut["id"], str(source.get("source")), "only single-file audio sources can be exported")
    return source["source"]


def read_window(cut: dict[str, Any], options: SharOptions) -> tuple[np.ndarray, int, str]:
    """The window's audio as a (channels, samples) float32 array, its rate and the subtype to store it in."""
    # Audio libraries are imported where used: the pipeline imports this module at start.
    import numpy as np
    import soundfile as sf

    from alm_lhotse.audio import to_mono

    cut_id = cut["id"]
    path = _audio_path(cut)
    if not os.path.isfile(path):
        raise SharExportError(cut_id, path, "file does not exist")
    try:
        with sf.SoundFile(path) as audio:
            rate, total, subtype = audio.samplerate, audio.frames, audio.subtype
            first = num_samples(cut["start"], rate)
            count = num_samples(cut["duration"], rate)
            audio.seek(min(first, total))
            samples = audio.read(count, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise SharExportError(cut_id, path, f"cannot read: {exc}") from None
    if first + count > total + ROUNDING_SLACK_FRAMES:
        raise SharExportError(
            cut_id, path, f"window needs samples {first}..{first + count} but the file has {total} ({total / rate:.3f} s)"
        )
    if len(samples) < count:
        samples = np.pad(samples, ((0, count - len(samples)), (0, 0)), mode="edge")
    if options.mono:
        samples = to_mono(samples)[:, None]
    data = np.ascontiguousarray(samples.T)
    if options.sampling_rate is not None and options.sampling_rate != rate:
        data = _resample(data, rate, options.sampling_rate, cut["duration"])
        rate = options.sampling_rate
    return data, rate, _store_subtype(subtype, options.audio_format)


def _resample(data: np.ndarray, source: int, target: int, duration: float) -> np.ndarray:
    """Lhotse's own resampling transform (the one ``Recording.resample`` applies, whatever
    backend it picks: torchaudio where installed, else scipy, hence scipy among our
    dependencies), then exactly as many samples as the cut's duration implies."""
    import numpy as np
    from lhotse.augmentation import Resample

    out = np.asarray(Resample(source, target)(data), dtype=np.float32)
    want = num_samples(duration, target)
    if out.shape[1] >= want:
        return out[:, :want]
    return np.pad(out, ((0, 0), (0, want - out.shape[1])), mode="edge")


def _store_subtype(source_subtype: str, audio_format: str) -> str:
    """Keep 8/16-bit sources lossless at 16 bits; anything finer at 24 bits (FLAC) or float (WAV)."""
    if source_subtype in _SOURCE_PRECISION:
        return _SOURCE_PRECISION[source_subtype]
    return "PCM_24" if audio_format == "flac" else "FLOAT"


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
    if channels > 1:
        out["type"] = "MultiCut"
        out["channel"] = channel_ids
    else:
        out["type"] = "MonoCut"
        out["channel"] = 0
    return out


def _encode(data: np.ndarray, rate: int, audio_format: str, subtype: str) -> bytes:
    import soundfile as sf

    stream = io.BytesIO()
    sf.write(stream, data.T, rate, format=audio_format.upper(), subtype=subtype)
    return stream.getvalue()


def _tuples_as_lists(value: Any) -> Any:
    """orjson default: Lhotse's ``to_dict`` leaves alignment items as named tuples."""
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Tar member with fixed metadata, so the same input always gives the same bytes."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class ShardJob:
    index: int
    cuts: list
    output_dir: str
    state_dir: str
    options: SharOptions


def shard_paths(directory: Path, index: int) -> dict[str, Path]:
    return {
        "recording": directory / SHARD_NAME.format(field="recording", index=index, ext=".tar"),
        "cuts": directory / SHARD_NAME.format(field="cuts", index=index, ext=".jsonl.gz"),
    }


def _done_marker(state: Path, index: int) -> Path:
    return state / "done" / f"{index:06d}.json"


def write_shard(job: ShardJob) -> dict[str, Any]:
    """Write one shard under temp names, rename it into place, then record it as done."""
    state = Path(job.state_dir)
    tmp = shard_paths(state / "tmp", job.index)
    final = shard_paths(Path(job.output_dir), job.index)
    rejects: list[dict[str, Any]] = []
    written = 0
    fmt = job.options.audio_format
    with (
        tarfile.open(tmp["recording"], "w", format=tarfile.GNU_FORMAT) as tar,
        open(tmp["cuts"], "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as cuts_out,
    ):
        for cut in job.cuts:
            try:
                data, rate, subtype = read_window(cut, job.options)
            except SharExportError as exc:
                if job.options.on_error == "fail":
                    raise
                rejects.append({"window": exc.cut_id, "audio_filepath": exc.path, "reason": exc.reason})
                continue
            stored = shar_cut(cut, data.shape[0], rate)
            _add_member(tar, f"{cut['id']}.{fmt}", _encode(data, rate, fmt, subtype))
            _add_member(tar, f"{cut['id']}.json", orjson.dumps(stored["recording"]))
            cuts_out.write(orjson.dumps(stored, default=_tuples_as_lists) + b"\n")
            written += 1
    if written:
        publish(tmp["recording"], final["recording"])
        publish(tmp["cuts"], final["cuts"])
    else:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    result = {"index": job.index, "windows": len(job.cuts), "written": written, "rejects": rejects}
    write_atomic(_done_marker(state, job.index), orjson.dumps(result))
    return result


def _iter_jsonl_dicts(cuts: Union[Pathlike, "CutSet", Iterable[Any]]) -> Iterator[dict[str, Any]]:
    if isinstance(cuts, (str, os.PathLike)):
        yield from iter_jsonl_dicts(cuts)
    else:
        for cut in cuts:
            yield cut if isinstance(cut, dict) else cut.to_dict()


def _input_identity(cuts: Any) -> Optional[dict[str, Any]]:
    if isinstance(cuts, (str, os.PathLike)):
        st = os.stat(cuts)
        return {"path": str(Path(cuts).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return None


def _check_resumable(out: Path, state: Path, params: dict[str, Any]) -> None:
    """Refuse to mix shards of different exports in one directory."""
    params_file = state / "params.json"
    if params_file.exists():
        previous = orjson.loads(params_file.read_bytes())
        if previous != params:
            raise ValueError(
                f"{out} holds a Shar export made with other parameters or input ({previous}); "
                f"remove {out} and {state} or choose another output directory"
            )
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty and was not written by an unfinished export; choose an empty directory")


def export_shar(
    cuts: Union[Pathlike, "CutSet", Iterable[Any]],
    output_dir: Pathlike,
    shard_size: int = 1000,
    audio_format: str = "flac",
    sampling_rate: Optional[int] = None,
    mono: bool = False,
    on_error: str = "fail",
    num_jobs: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Write window cuts (a manifest path, a CutSet or cut dicts) with audio as Shar shards.

    Re-running with the same input and options resumes a killed export (finished shards are
    kept) and is a no-op once it is complete. Returns a summary, also written to
    ``<output_dir>.export/summary.json``; with ``on_error="skip"`` the rejected windows are
    in ``<output_dir>.export/rejects.jsonl``.
    """
    options = SharOptions(shard_size, audio_format, sampling_rate, mono, on_error)
    out = Path(output_dir)
    state = state_dir_for(out)
    params = {"options": asdict(options), "input": _input_identity(cuts)}
    _check_resumable(out, state, params)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(state / "tmp", ignore_errors=True)
    for sub in ("tmp", "done"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "params.json").write_bytes(orjson.dumps(params))

    results: list[dict[str, Any]] = []
    resumed = 0
    source = _iter_jsonl_dicts(cuts)
    bar = tqdm(desc="Exporting ALM windows to Shar", unit="cut", disable=not progress)

    def jobs() -> Iterator[ShardJob]:
        nonlocal resumed
        index = 0
        while True:
            chunk = list(islice(source, shard_size))
            if not chunk:
                return
            marker = _done_marker(state, index)
            if marker.exists():
                results.append(orjson.loads(marker.read_bytes()))
                resumed += 1
                bar.update(len(chunk))
            else:
                yield ShardJob(index, chunk, str(out), str(state), options)
            index += 1

    def finished(result: dict[str, Any]) -> None:
        results.append(result)
        bar.update(result["windows"])

    with bar:
        if num_jobs <= 1:
            for job in jobs():
                finished(write_shard(job))
        else:
            _run_parallel(jobs(), num_jobs, finished)

    return _finish(out, state, sorted(results, key=lambda r: r["index"]), resumed)


def _run_parallel(jobs: Iterator[ShardJob], num_jobs: int, finished: Any) -> None:
    """At most ``2 * num_jobs`` shards in flight, so memory stays bounded on large inputs."""
    pending: list[Future] = []
    with ProcessPoolExecutor(num_jobs, mp_context=get_context("fork")) as pool:
        for job in jobs:
            pending.append(pool.submit(write_shard, job))
            if len(pending) >= 2 * num_jobs:
                finished(pending.pop(0).result())
        for future in pending:
            finished(future.result())


def _finish(out: Path, state: Path, results: list[dict[str, Any]], resumed: int) -> dict[str, Any]:
    rejects = [r for res in results for r in res["rejects"]]
    write_atomic(state / "rejects.jsonl", b"".join(orjson.dumps(r) + b"\n" for r in rejects))
    summary = {
        "output_dir": str(out),
        "shards": sum(1 for r in results if r["written"]),
        "windows": sum(r["windows"] for r in results),
        "written": sum(r["written"] for r in results),
        "rejected": len(rejects),
        "resumed_shards": resumed,
        "rejects_path": str(state / "rejects.jsonl"),
    }
    write_atomic(state / "summary.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    shutil.rmtree(state / "tmp", ignore_errors=True)
    return summary
