"""Structural checks on a parsed entry, so the builder only ever sees well-formed data.

Everything the reference itself tolerates stays valid (missing speakers, segments
without ``metrics`` or ``words``, unsorted or overlapping segments); what would make it
crash or silently compute nonsense (wrong types, negative times, ``end < start``) is
rejected with the field that is wrong.
"""

from __future__ import annotations

from typing import Any

from alm_lhotse import native
from alm_lhotse.errors import InvalidEntry

REQUIRED_FIELDS = ("audio_filepath", "audio_sample_rate", "segments")
# Times past this are no recording's: their sums (a window's, an entry's total) could
# pass 64-bit integers or overflow to infinity, which no output can hold.
MAX_TIME = float(2**40)


def _is_number(value: Any) -> bool:
    return (type(value) is float or type(value) is int) and value == value


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_time(obj: dict, key: str, where: str) -> None:
    value = obj.get(key)
    if not _is_number(value):
        if key not in obj:
            raise InvalidEntry(f"{where}.{key}", "missing")
        raise InvalidEntry(f"{where}.{key}", f"must be a number, got {_type_name(value)}")
    if value < 0:
        raise InvalidEntry(f"{where}.{key}", f"must not be negative, got {value}")
    if not value < MAX_TIME:
        raise InvalidEntry(f"{where}.{key}", f"must be below 2**40 seconds (about 35,000 years), got {value!r}")


def _check_span(obj: dict, where: str) -> None:
    _check_time(obj, "start", where)
    _check_time(obj, "end", where)
    if obj["end"] < obj["start"]:
        raise InvalidEntry(f"{where}.end", f"end {obj['end']} is before start {obj['start']}")


def _check_words(words: Any, where: str) -> None:
    if not isinstance(words, list):
        raise InvalidEntry(where, f"must be a list, got {_type_name(words)}")
    for k, word in enumerate(words):
        w_where = f"{where}[{k}]"
        if type(word) is not dict:
            raise InvalidEntry(w_where, f"must be an object, got {_type_name(word)}")
        _check_span(word, w_where)
        token = word.get("word")
        if token is not None and type(token) is not str:
            raise InvalidEntry(f"{w_where}.word", f"must be a string, got {_type_name(token)}")


def _check_segment(seg: Any, where: str) -> None:
    if type(seg) is not dict:
        raise InvalidEntry(where, f"must be an object, got {_type_name(seg)}")
    _check_span(seg, where)
    speaker = seg.get("speaker")
    if speaker is not None and type(speaker) is not str:
        raise InvalidEntry(f"{where}.speaker", f"must be a string or null, got {_type_name(speaker)}")
    text = seg.get("text")
    if text is not None and type(text) is not str:
        raise InvalidEntry(f"{where}.text", f"must be a string, got {_type_name(text)}")
    if "metrics" in seg:
        metrics = seg["metrics"]
        if type(metrics) is not dict:
            raise InvalidEntry(f"{where}.metrics", f"must be an object, got {_type_name(metrics)}")
        if "bandwidth" in metrics and not _is_number(metrics["bandwidth"]):
            raise InvalidEntry(
                f"{where}.metrics.bandwidth", f"must be a number, got {_type_name(metrics['bandwidth'])}"
            )
    if "words" in seg:
        _check_words(seg["words"], f"{where}.words")


# Lhotse stores sampling_rate and num_samples = round(duration * rate) as integers, and
# orjson writes none past 64 bits: larger counts are rejected here, not at write time.
MAX_SAMPLES = 2**63


def _check_whole_rate(rate: Any) -> None:
    """A recording's rate is a whole number of samples per second; a fractional one
    could only be written to Lhotse changed (0.5 as 0), so it is rejected."""
    if type(rate) is float and not rate.is_integer():
        raise InvalidEntry("audio_sample_rate", f"must be a whole number of samples per second, got {rate!r}")
    if rate >= MAX_SAMPLES:
        raise InvalidEntry("audio_sample_rate", f"must be below 2**63, got {rate!r}")


def _check_sample_count(seconds: Any, rate: Any, field: str) -> None:
    """``seconds`` at ``rate`` must give a sample count that fits a signed 64-bit int."""
    if not seconds * int(rate) < MAX_SAMPLES:
        raise InvalidEntry(
            field, f"{seconds!r} s at {rate!r} Hz is more than 2**63 samples (the 64-bit limit of Lhotse's num_samples)"
        )


def _check_segment_ends(segments: list, rate: Any) -> None:
    """Without a ``duration`` the recording lasts until the last segment end, whose
    sample count must fit 64 bits too (only such entries pay for this pass)."""
    limit = MAX_SAMPLES / int(rate)
    for i, seg in enumerate(segments):
        if not seg["end"] < limit:
            _check_sample_count(seg["end"], rate, f"segments[{i}].end")


def validate_entry(entry: Any) -> None:
    """Raise InvalidEntry for the first problem found in an entry."""
    if type(entry) is not dict:
        raise InvalidEntry(None, f"line is not a JSON object but {_type_name(entry)}")
    for key in REQUIRED_FIELDS:
        if key not in entry:
            raise InvalidEntry(key, "missing required field")
    path = entry["audio_filepath"]
    if type(path) is not str or not path:
        raise InvalidEntry("audio_filepath", f"must be a non-empty string, got {_type_name(path)}")
    rate = entry["audio_sample_rate"]
    if not _is_number(rate) or rate <= 0:
        raise InvalidEntry("audio_sample_rate", f"must be a positive number, got {rate!r}")
    _check_whole_rate(rate)
    if "duration" in entry:
        duration = entry["duration"]
        if not _is_number(duration) or duration < 0:
            raise InvalidEntry("duration", f"must be a non-negative number, got {duration!r}")
        _check_sample_count(duration, rate, "duration")
    segments = entry["segments"]
    if type(segments) is not list:
        raise InvalidEntry("segments", f"must be a list, got {_type_name(segments)}")
    _check_segments(segments)
    if "duration" not in entry:
        _check_segment_ends(segments, rate)


def _check_segments(segments: list) -> None:
    """Every segment through ``_check_segment``; where compiled, only those the kernel's
    yes/no version of the same check does not pass (for data parsed from JSON: exactly
    those that fail)."""
    kernel = native.kernel()
    if kernel is None:
        for i, seg in enumerate(segments):
            _check_segment(seg, f"segments[{i}]")
    else:
        i = kernel.first_doubtful_segment(segments, 0)
        while i < len(segments):
            _check_segment(segments[i], f"segments[{i}]")
            i = kernel.first_doubtful_segment(segments, i + 1)


native.configure(max_time=MAX_TIME)
