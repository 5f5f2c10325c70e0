"""The Shar export's parameters, declared once: the luigi tasks, the Python API and the
checks derive from these declarations (as the window parameters do from ``config``).

Shards are sized by audio duration: a training dataloader hands whole shards to its
workers, so an export must have many shards of a bounded size, whatever the window
length. With 120 s windows an hour of audio is 30 windows per shard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from alm_lhotse.config import ON_ERROR_CHOICES
from alm_lhotse.params import CHOICE, check_declared, declared, declared_config, param

AUDIO_FORMATS = ("flac", "wav")
DEFAULT_SHARD_DURATION = 3600.0
COMPACT_RATE = 16000
COMPACT_SUBTYPE = "PCM_16"
# 8/16-bit sources stay lossless at 16 bits; anything finer at 24 bits (FLAC) or float (WAV).
_SOURCE_PRECISION = {"PCM_S8": "PCM_16", "PCM_U8": "PCM_16", "PCM_16": "PCM_16"}


@declared_config
@dataclass(frozen=True)
class SharOptions:
    """What determines the bytes of the shards; a resumed export must use the same values."""

    shard_duration: float = param(
        DEFAULT_SHARD_DURATION, "Seconds of audio per shard: a shard closes once its windows reach this.",
        low=0, low_open=True,
    )  # fmt: skip
    shard_size: int = param(0, "Most windows per shard (0: no limit, the duration decides).", low=0)
    audio_format: str = param("flac", "Audio format in the shards.", kind=CHOICE, choices=AUDIO_FORMATS)
    sampling_rate: int = param(0, "Resample to this rate in Hz with soxr (0: keep the source's).", low=0)
    mono: bool = param(False, "Mix multi-channel audio to mono (the mean of the channels).")
    compact_audio: bool = param(
        False, f"Compact shards: mono, {COMPACT_RATE} Hz unless --sampling-rate says otherwise, 16-bit FLAC.",
    )  # fmt: skip
    audio_on_error: str = param(
        "fail", "fail: stop at a window whose audio is missing or unreadable; skip: leave it out and list "
        "it in the export's rejects.jsonl.", kind=CHOICE, choices=ON_ERROR_CHOICES, aliases=("on_error",),
    )  # fmt: skip
    store_rate: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_declared(self)
        if self.compact_audio and self.audio_format != "flac":
            raise ValueError("compact_audio (--compact-audio) stores FLAC: leave audio_format at flac")
        rate = self.sampling_rate or (COMPACT_RATE if self.compact_audio else 0)
        object.__setattr__(self, "store_rate", rate)

    @property
    def mix_to_mono(self) -> bool:
        return self.mono or self.compact_audio

    def target_rate(self, source_rate: int) -> int:
        return self.store_rate or source_rate

    def store_subtype(self, source_subtype: str) -> str:
        if self.compact_audio:
            return COMPACT_SUBTYPE
        if source_subtype in _SOURCE_PRECISION:
            return _SOURCE_PRECISION[source_subtype]
        return "PCM_24" if self.audio_format == "flac" else "FLOAT"

    def to_dict(self) -> dict[str, Any]:
        """Canonical form: identifies an export (its directory key and its resume check)."""
        return {p.name: getattr(self, p.name) for p in SHAR_PARAMS}


SHAR_PARAMS = declared(SharOptions)


def shar_options(**options: Any) -> SharOptions:
    """``SharOptions`` from the Python API's keywords: ``sampling_rate=None`` means keep."""
    rate: Optional[int] = options.pop("sampling_rate", 0)
    return SharOptions(sampling_rate=rate or 0, **options)
