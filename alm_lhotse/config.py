"""Window and overlap parameters, with the reference's defaults and validation."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Union

FieldList = Union[str, Iterable[str]]

MAX_OVERLAP_PERCENTAGE = 100
# The builder's arithmetic reads these from stored segments; dropping them would
# make the reference crash mid-entry, so we refuse them up front.
_UNDROPPABLE_SEGMENT_FIELDS = frozenset({"start", "end"})


def parse_fields(value: FieldList) -> frozenset[str]:
    """Accept the reference's comma-separated form or any iterable of names."""
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(f.strip() for f in items if f and f.strip())


def _fields_text(value: FieldList) -> str:
    return ",".join(sorted(parse_fields(value)))


@dataclass(frozen=True)
class WindowConfig:
    """Parameters of the window builder (NeMo Curator ``ALMDataBuilderStage``)."""

    target_window_duration: float = 120.0
    tolerance: float = 0.1
    min_sample_rate: int = 16000
    min_bandwidth: int = 8000
    min_speakers: int = 2
    max_speakers: int = 5
    truncation: bool = True
    drop_fields: FieldList = "words"
    drop_fields_top_level: FieldList = "words,segments"
    sort_segments: bool = False
    min_duration: float = field(init=False, repr=False, compare=False)
    max_duration: float = field(init=False, repr=False, compare=False)
    drop_set: frozenset[str] = field(init=False, repr=False, compare=False)
    drop_top_level_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tol = self.target_window_duration * self.tolerance
        drop = parse_fields(self.drop_fields)
        bad = drop & _UNDROPPABLE_SEGMENT_FIELDS
        if bad:
            raise ValueError(f"drop_fields may not include {sorted(bad)}: windows are measured from them")
        object.__setattr__(self, "min_duration", self.target_window_duration - tol)
        object.__setattr__(self, "max_duration", self.target_window_duration + tol)
        object.__setattr__(self, "drop_set", drop)
        object.__setattr__(self, "drop_top_level_set", parse_fields(self.drop_fields_top_level))

    def to_dict(self) -> dict[str, Any]:
        """Canonical form: what identifies a result (used in checkpoint hashes)."""
        d = {k: v for k, v in asdict(self).items() if k not in _DERIVED}
        d["drop_fields"] = _fields_text(self.drop_fields)
        d["drop_fields_top_level"] = _fields_text(self.drop_fields_top_level)
        return d


_DERIVED = {"min_duration", "max_duration", "drop_set", "drop_top_level_set"}


@dataclass(frozen=True)
class OverlapConfig:
    """Parameters of the overlap filter (NeMo Curator ``ALMDataOverlapStage``)."""

    overlap_percentage: float = 50
    target_duration: float = 120.0

    def __post_init__(self) -> None:
        if not (0 <= self.overlap_percentage <= MAX_OVERLAP_PERCENTAGE):
            raise ValueError(f"overlap_percentage must be 0-100, got {self.overlap_percentage}")
        if self.target_duration <= 0:
            raise ValueError(f"target_duration must be positive, got {self.target_duration}")

    @property
    def threshold(self) -> float:
        return self.overlap_percentage / MAX_OVERLAP_PERCENTAGE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def params_digest(*configs: WindowConfig | OverlapConfig, length: int = 10) -> str:
    """Short stable hash of parameter values, so outputs never mix parameter sets."""
    text = repr([sorted(c.to_dict().items()) for c in configs])
    return hashlib.sha256(text.encode()).hexdigest()[:length]
