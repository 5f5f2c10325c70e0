"""The Lhotse manifests of a run: recordings and supervisions of every entry, and its
kept windows as cuts (``lhotse.load_manifest`` / ``CutSet.from_file`` read them).

An entry's supervisions and its cuts are written by one call (``lhotse_lines``), which
formats each segment's values once for both; the two outputs share its result.
"""

from __future__ import annotations

import orjson

from alm_lhotse.outputs.lhotse_manifests import lhotse_lines, recording_dict, recording_id
from alm_lhotse.outputs.registry import CONVERSION, WINDOWS, Output, ProcessedEntry, Target


def entry_recording(p: ProcessedEntry) -> dict:
    """The entry's recording dict, made once per entry (``p.shared("recording", ...)``)."""
    return recording_dict(p.entry, recording_id(p.entry["audio_filepath"], p.origin))


def _lines(p: ProcessedEntry) -> tuple[bytes, bytes]:
    """The entry's supervision lines and cut lines, each empty where its output is not wanted."""
    windows = p.result.kept_windows if p.wants(CUTS) and p.result is not None else []
    rec = p.shared("recording", entry_recording)
    return lhotse_lines(p.segments, rec, p.entry["audio_filepath"], windows, p.wants(SUPERVISIONS))


def _write_recording(target: Target, p: ProcessedEntry) -> None:
    target.write(orjson.dumps(p.shared("recording", entry_recording), option=orjson.OPT_APPEND_NEWLINE))


def _write_supervisions(target: Target, p: ProcessedEntry) -> None:
    target.write(p.shared("lhotse_lines", _lines)[0])


def _write_cuts(target: Target, p: ProcessedEntry) -> None:
    if p.result is not None and any(p.result.kept):
        target.write(p.shared("lhotse_lines", _lines)[1])


RECORDINGS = Output(
    name="recordings.jsonl.gz",
    final="lhotse/alm_recordings_all.jsonl.gz",
    stage=CONVERSION,
    write=_write_recording,
    lhotse=True,
)
SUPERVISIONS = Output(
    name="supervisions.jsonl.gz",
    final="lhotse/alm_supervisions_all.jsonl.gz",
    stage=CONVERSION,
    write=_write_supervisions,
    lhotse=True,
)
CUTS = Output(
    name="cuts_windows.jsonl.gz",
    final="lhotse/alm_cuts_windows_all.jsonl.gz",
    stage=WINDOWS,
    write=_write_cuts,
    lhotse=True,
)
