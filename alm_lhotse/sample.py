"""The sample conversations bundled with the package, and audio synthesized for them.

The bundled manifest (``data/sample_manifest.jsonl``) is our own: four short diarized
conversations with words, 2-5 speakers, enough to produce windows at the default
parameters. Its ``audio_filepath`` values are relative; ``materialize_sample`` writes a
copy with absolute paths (or URLs) into a directory (or an object-storage prefix) and
synthesizes the audio it points to, so the quick start (and anything that reads audio,
such as Shar export) works on a fresh machine without shipping audio files.
"""

from __future__ import annotations

import io
import zlib
from importlib import resources
from typing import Any

import orjson

from alm_lhotse import objects
from alm_lhotse.fs import Location, join, location

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


def synthesize_audio(entry: dict[str, Any]) -> bytes:
    """Deterministic speech-like audio for ``entry`` as a FLAC file: a voiced tone per
    word at the speaker's pitch, silence between words. Same entry, same bytes, on every
    machine."""
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
    encoded = io.BytesIO()
    sf.write(encoded, audio, rate, format="FLAC", subtype="PCM_16")
    return encoded.getvalue()


def materialize_sample(directory: Location, audio: bool = True) -> Location:
    """Write the sample manifest into ``directory`` (a path or a URL) with absolute audio
    paths (and, with ``audio``, synthesize missing audio files); returns the manifest's
    location. Workers on other machines read it from there, as any manifest.

    Idempotent and cheap on repeat: files are only written when missing or different, so
    the manifest's mtime (part of the pipeline's input fingerprint) stays put.
    """
    directory = location(directory)
    entries = sample_entries()
    lines = []
    for entry in entries:
        entry["audio_filepath"] = str(join(directory, *entry["audio_filepath"].split("/")))
        lines.append(orjson.dumps(entry))
    data = b"\n".join(lines) + b"\n"
    manifest = join(directory, MANIFEST_NAME)
    if not objects.exists(manifest) or objects.read_bytes(manifest) != data:
        objects.write_bytes(manifest, data)
    if audio:
        for entry in entries:
            if not objects.exists(entry["audio_filepath"]):
                objects.write_bytes(entry["audio_filepath"], synthesize_audio(entry))
    return manifest
