"""``alm_windows_nemo.jsonl``: the kept windows as a NeMo manifest.

NeMo's manifest loaders read one JSON object per line with ``audio_filepath``, ``offset``,
``duration`` and ``text``; each line here is one kept window, in the order of the cuts
manifest, spanning exactly its cut (``offset`` is the cut's ``start``, ``duration`` its
``duration``, the same numbers) and holding exactly its cut's turns: the window's
segments with a positive length, a truncated last segment with its truncated text.
``transcript_text`` is the one rendering of a window's turns as one text, shared with
the transcript view of the window cuts (``alm_lhotse.lhotse_io.transcript_view``).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Iterable, Optional

import orjson

from alm_lhotse.core.windows import Window
from alm_lhotse.native import kernel
from alm_lhotse.outputs.lhotse_manifests import window_id, window_pieces
from alm_lhotse.outputs.lhotse_outputs import entry_recording
from alm_lhotse.outputs.registry import WINDOWS, Output, ProcessedEntry, Target

# How a speaker's turn starts when speaker tags are on (``nemo_speaker_tags``).
SPEAKER_TAG = "[{speaker}]"


def tag_text(speaker_tag: str, speaker: Any) -> str:
    """The tag that starts a speaker's turn (``speaker_tag`` is a format with ``{speaker}``)."""
    return speaker_tag.format(speaker=speaker)


def transcript_text(turns: Iterable[tuple[Any, Any]], speaker_tag: Optional[str] = None) -> str:
    """The texts of ``(speaker, text)`` turns in order, joined by single spaces (each
    stripped; empty and missing texts left out). With ``speaker_tag`` (a format with
    ``{speaker}``) each change of speaker starts with the tag; a turn without a speaker
    gets none."""
    words: list[str] = []
    previous: Any = None
    for speaker, text in turns:
        text = text.strip() if isinstance(text, str) else ""
        if not text:
            continue
        if speaker_tag is not None and speaker and speaker != previous:
            words.append(tag_text(speaker_tag, speaker))
        previous = speaker
        words.append(text)
    return " ".join(words)


def window_nemo_dict(
    window: Window,
    segments: list[dict[str, Any]],
    rec_id: str,
    audio_filepath: str,
    speaker_tag: Optional[str] = None,
) -> dict[str, Any]:
    """One window as a NeMo manifest line: its span in the source audio, its transcript,
    its turns in window time (``start``/``end`` minus the window start) and its cut's id."""
    shift = window.start
    pieces = [seg for _, seg in window_pieces(window, segments)]
    return {
        "audio_filepath": audio_filepath,
        "offset": window.start,
        "duration": window.end - window.start,
        "text": transcript_text(((s.get("speaker"), s.get("text")) for s in pieces), speaker_tag),
        "segments": [
            {"start": s["start"] - shift, "end": s["end"] - shift, "speaker": s.get("speaker"), "text": s.get("text")}
            for s in pieces
        ],
        "id": window_id(rec_id, window),
    }


def nemo_lines(p: ProcessedEntry) -> bytes:
    """The entry's kept windows as NeMo manifest lines (``window_nemo_dict``); the
    kernel writes the same bytes without building the dicts."""
    if p.result is None:
        return b""
    rec_id = p.shared("recording", entry_recording)["id"]
    tag = SPEAKER_TAG if p.config.nemo_speaker_tags else None
    path = p.entry["audio_filepath"]
    windows = p.result.kept_windows
    native = kernel()
    if native is not None and type(p.segments) is list:
        tagger = None if tag is None else partial(tag_text, tag)
        lines = native.nemo_lines(p.segments, windows, rec_id, path, tagger, orjson.dumps)
        if lines is not None:
            return lines
    return b"".join(
        orjson.dumps(window_nemo_dict(w, p.segments, rec_id, path, tag), option=orjson.OPT_APPEND_NEWLINE) for w in windows
    )


def _write(target: Target, p: ProcessedEntry) -> None:
    target.write(nemo_lines(p))


NEMO = Output(name="windows_nemo.jsonl", final="alm_windows_nemo.jsonl", stage=WINDOWS, write=_write, lhotse=True)
