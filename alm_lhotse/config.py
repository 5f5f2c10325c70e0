"""The window and overlap parameters and the error policy: declared here, once.

Each field's ``param()`` gives its default (the reference's), help text and allowed
values; the luigi parameters, the recipe CLI's options, the recipes' cfg keys and
docs/parameters.md all derive from these declarations (see ``alm_lhotse.params``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Union

from alm_lhotse.params import (
    CHOICE,
    FORMAT,
    NUMBER,
    Param,
    check_declared,
    declared,
    declared_config,
    param,
    parse_fields,
)

FieldList = Union[str, Iterable[str]]

MAX_OVERLAP_PERCENTAGE = 100
ON_ERROR_CHOICES = ("fail", "skip")
ON_ERROR = Param(
    CHOICE, "fail", "fail: stop at the first bad line, naming file, line, field and reason; "
    "skip: write bad lines to rejects.jsonl and go on.", choices=ON_ERROR_CHOICES, name="on_error",
)  # fmt: skip
# The builder's arithmetic reads these from stored segments; dropping them would
# make the reference crash mid-entry, so we refuse them up front.
_UNDROPPABLE_SEGMENT_FIELDS = frozenset({"start", "end"})


def _fields_text(value: FieldList) -> str:
    return ",".join(sorted(parse_fields(value)))


@declared_config
@dataclass(frozen=True)
class WindowConfig:
    """Parameters of the window builder (NeMo Curator ``ALMDataBuilderStage``)."""

    target_window_duration: float = param(120.0, "Target window length in seconds.", low=0, low_open=True)
    tolerance: float = param(0.1, "Allowed deviation from the target, as a fraction of it.", low=0)
    min_sample_rate: int = param(16000, "Entries below this sample rate (Hz) give no windows.", low=0)
    min_bandwidth: int = param(8000, "Segments below this bandwidth (Hz) break windows.", low=0)
    min_speakers: int = param(2, "Fewest distinct speakers a window may have.", low=1, high="max_speakers")
    max_speakers: int = param(5, "Most distinct speakers a window may have.", low=1)
    truncation: bool = param(True, "Cut the last segment at a word to fit the window instead of dropping the window.")
    drop_fields: FieldList = param(
        "words", "Segment fields left out of the output windows.", excluded=_UNDROPPABLE_SEGMENT_FIELDS
    )
    drop_fields_top_level: FieldList = param("words,segments", "Entry fields left out of the output.")
    sort_segments: bool = param(False, "Sort segments by start time before building windows (the reference never does).")
    nemo_speaker_tags: bool = param(
        False, "Start each speaker's turn in the text of alm_windows_nemo.jsonl with [speaker]."
    )
    min_duration: float = field(init=False, repr=False, compare=False)
    max_duration: float = field(init=False, repr=False, compare=False)
    drop_set: frozenset[str] = field(init=False, repr=False, compare=False)
    drop_top_level_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_declared(self)
        tol = self.target_window_duration * self.tolerance
        object.__setattr__(self, "min_duration", self.target_window_duration - tol)
        object.__setattr__(self, "max_duration", self.target_window_duration + tol)
        object.__setattr__(self, "drop_set", parse_fields(self.drop_fields))
        object.__setattr__(self, "drop_top_level_set", parse_fields(self.drop_fields_top_level))

    def to_dict(self) -> dict[str, Any]:
        """Canonical form: what identifies a result (used in checkpoint hashes)."""
        d = {p.record_key: getattr(self, p.name) for p in declared(WindowConfig)}
        d["drop_fields"] = _fields_text(self.drop_fields)
        d["drop_fields_top_level"] = _fields_text(self.drop_fields_top_level)
        # Recorded only when on: every result made without speaker tags keeps the key (and
        # the summary) it had before the option existed; tagged results get their own key.
        if not self.nemo_speaker_tags:
            del d["nemo_speaker_tags"]
        return d


@declared_config
@dataclass(frozen=True)
class OverlapConfig:
    """Parameters of the overlap filter (NeMo Curator ``ALMDataOverlapStage``)."""

    overlap_percentage: float = param(
        50, "Windows overlapping a kept one by at least this percentage compete; the one closer "
        "to the target stays.", kind=NUMBER, low=0, high=MAX_OVERLAP_PERCENTAGE,
    )  # fmt: skip
    # record_name: checkpoint hashes and summaries keep the key they had before the rename.
    overlap_target_duration: float = param(
        120.0, "Duration the overlap filter prefers, in seconds.", low=0, low_open=True,
        aliases=("target_duration",), record_name="target_duration",
    )  # fmt: skip

    def __post_init__(self) -> None:
        check_declared(self)

    @property
    def threshold(self) -> float:
        return self.overlap_percentage / MAX_OVERLAP_PERCENTAGE

    def to_dict(self) -> dict[str, Any]:
        return {p.record_key: getattr(self, p.name) for p in declared(OverlapConfig)}


@declared_config
@dataclass(frozen=True)
class TranscriptConfig:
    """The transcript view of the window cuts, an optional final output made from them
    (``alm_lhotse.lhotse_io.transcript_view``); it changes no other output."""

    transcript_view: bool = param(
        False, "Also write lhotse/alm_cuts_transcripts_all.jsonl.gz: the window cuts, each with one "
        "supervision holding its whole transcript (for readers of a cut's first supervision only).",
    )  # fmt: skip
    transcript_speaker_tag: str = param(
        "[{speaker}]", "How each speaker's turn starts in the transcript view's text (empty: no tags).",
        kind=FORMAT, choices=("speaker",),
    )  # fmt: skip

    def __post_init__(self) -> None:
        check_declared(self)

    @property
    def speaker_tag(self) -> str | None:
        return self.transcript_speaker_tag or None

    def to_dict(self) -> dict[str, Any]:
        """Recorded only when the view is written: results without it keep the keys (and
        the summary) they had before the option existed."""
        if not self.transcript_view:
            return {}
        return {p.record_key: getattr(self, p.name) for p in declared(TranscriptConfig)}


WINDOW_PARAMS = declared(WindowConfig)
OVERLAP_PARAMS = declared(OverlapConfig)
TRANSCRIPT_PARAMS = declared(TranscriptConfig)
# Every parameter that changes results, in the order interfaces list them.
PARAMETERS = (*WINDOW_PARAMS, *OVERLAP_PARAMS, ON_ERROR, *TRANSCRIPT_PARAMS)


def params_digest(*configs: WindowConfig | OverlapConfig, length: int = 10) -> str:
    """Short stable hash of parameter values, so outputs never mix parameter sets."""
    text = repr([sorted(c.to_dict().items()) for c in configs])
    return hashlib.sha256(text.encode()).hexdigest()[:length]
