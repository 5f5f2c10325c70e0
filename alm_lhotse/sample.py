"""The sample conversations bundled with the package, and audio synthesized for them.

The bundled manifest (``data/sample_manifest.jsonl``) is our own: four short diarized
conversations with words, 2-5 speakers, enough to produce windows at the default
parameters. Its ``audio_filepath`` values are relative; ``materialize_sample`` writes a
copy with absolute paths into a directory and synthesizes the audio it points to, so the
quick start (and anything that reads audio, such as Shar export) works on a fresh
machine without shipping audio files.
"""

from __future__ import annotations

import zlib
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from alm_lhotse.storage import atomic_path, write_atomic

SAMPLE_RATE = 16000
MANIFEST_NAME = "sample_manifest.jsonl"
_AMPLITUDE = 0.25


def bundled_manifest() -> bytes:
    """The bundled sample manifest as stored in the package."""
    return resources.files("alm_lhotse").joinpath("data", MANIFEST_NAME).read_bytes()


def sample_entries() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in bundled_manifest().splitlines() if line.strip()]


def _speaker_pitch(speaker: str) -> float:
    """A stable fundamental frequency per speaker label, 95-255 Hz."""
    return 95.0 + (zlib.crc32(speaker.encode()) % 160)


def synthesize_audio(entry: dict[str, Any], path: Path) -> None:
    """Write deterministic speech-like audio for ``entry``: a voiced tone per word at the
    speaker's pitch, silence between words. Same entry, same samples, on every machine."""
    import numpy as np
    import soundfile as sf

    rate = int(entry["audio_sample_rate"])
    total = int(round(entry["duration"] * rate))
    audio = np.zeros(total, dtype=np.float32)
    for seg in entry["segments"]:
        f0 = _speaker_pitch(str(seg.get("speaker")))
        for word in seg.get("words") or [{"start": seg["start"], "end": seg["end"]}]:
            a = max(0, int(word["start"] * rate))
            b = min(total, int(word["end"] * rate))
            if b <= a:
                continue
            t = np.arange(b - a, dtype=np.float32) / rate
            tone = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(4 * np.pi * f0 * t) + 0.25 * np.sin(6 * np.pi * f0 * t)
            envelope = np.sin(np.pi * np.arange(b - a, dtype=np.float32) / (b - a))
            audio[a:b] = (_AMPLITUDE / 1.75) * tone * envelope
    with atomic_path(path, keep_suffix=True) as tmp:  # soundfile picks the format by the suffix
        sf.write(str(tmp), audio, rate, subtype="PCM_16")


def materialize_sample(directory: Path, audio: bool = True) -> Path:
    """Write the sample manifest into ``directory`` with absolute audio paths (and, with
    ``audio``, synthesize missing audio files); returns the manifest path.

    Idempotent and cheap on repeat: files are only written when missing or different, so
    the manifest's mtime (part of the pipeline's input fingerprint) stays put.
    """
    directory = Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    entries = sample_entries()
    lines = []
    for entry in entries:
        entry["audio_filepath"] = str(directory / entry["audio_filepath"])
        lines.append(orjson.dumps(entry))
    data = b"\n".join(lines) + b"\n"
    manifest = directory / MANIFEST_NAME
    if not manifest.exists() or manifest.read_bytes() != data:
        write_atomic(manifest, data)
    if audio:
        for entry in entries:
            path = Path(entry["audio_filepath"])
            if not path.exists():
                synthesize_audio(entry, path)
    return manifest
