"""Lhotse adapters: entries to recordings, supervisions and cuts, and the window transforms.

``cut_windows`` and ``filter_overlapping_windows`` are lazy CutSet transforms for training
code; they run the same pure builder and overlap filter as the pipeline, so a CutSet of
full recordings gives the same windows as the NeMo Curator-compatible output.
``transcript_view`` gives each window cut one supervision holding its whole transcript,
for readers that take a cut's first supervision only. All are module-level callables
over Lhotse's lazy iterators, so the resulting CutSets pickle (``num_jobs > 1``,
dataloader workers).
"""

from __future__ import annotations

from itertools import count
from typing import Any, Iterable, Iterator, Optional

import orjson
from lhotse import (
    CutSet,
    MonoCut,
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
)
from lhotse.lazy import Dillable, LazyFlattener, LazyMapper
from lhotse.utils import fastcopy

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.core.overlap import filter_windows
from alm_lhotse.core.windows import build_windows
from alm_lhotse.fs import Location
from alm_lhotse.objects import object_writer
from alm_lhotse.outputs.lhotse_manifests import (
    recording_dict,
    recording_id,
    supervision_dicts,
    window_cut_dict,
)
from alm_lhotse.outputs.nemo_manifest import SPEAKER_TAG, transcript_text
from alm_lhotse.outputs.registry import GzipWriter
from alm_lhotse.reading.discovery import ManifestPaths
from alm_lhotse.reading.reader import iter_jsonl_dicts, iter_lines, parse_line

ZERO_LENGTH_KEY = "zero_length_segments"
TURNS_KEY = "turns"
_BOOKKEEPING = frozenset({"source_start", "source_end", "segment_index", "word_ends"})


def _origins(origins: Optional[Iterable[str]]) -> Iterator[str]:
    return iter(origins) if origins is not None else (f"entry{i}" for i in count())


def entry_to_cut(entry: dict[str, Any], origin: str) -> MonoCut:
    """A cut over the whole recording with one supervision per positive-length segment.

    Zero-length segments cannot be Lhotse supervisions; they ride in the cut's custom
    field so converting back (``cut_to_entry``) returns every original segment.
    """
    rec_id = recording_id(entry["audio_filepath"], origin)
    rec = Recording.from_dict(recording_dict(entry, rec_id))
    sups = [SupervisionSegment.from_dict(d) for d in supervision_dicts(entry, rec_id)]
    zero = [
        {**seg, "segment_index": i} for i, seg in enumerate(entry["segments"]) if not seg["end"] > seg["start"]
    ]
    custom: dict[str, Any] = {"audio_filepath": entry["audio_filepath"]}
    if zero:
        custom[ZERO_LENGTH_KEY] = zero
    return MonoCut(
        id=rec_id, start=0, duration=rec.duration, channel=0, recording=rec, supervisions=sups, custom=custom
    )


def entries_to_manifests(
    entries: Iterable[dict[str, Any]], origins: Optional[Iterable[str]] = None
) -> tuple[RecordingSet, SupervisionSet]:
    """Eager RecordingSet and SupervisionSet; ``origins`` (one per entry) make ids unique."""
    recordings, supervisions = [], []
    for entry, origin in zip(entries, _origins(origins)):
        rec_id = recording_id(entry["audio_filepath"], origin)
        recordings.append(Recording.from_dict(recording_dict(entry, rec_id)))
        supervisions.extend(SupervisionSegment.from_dict(d) for d in supervision_dicts(entry, rec_id))
    return RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions)


class LazyManifestCuts(Dillable):
    """Full-recording cuts read lazily from manifest files, one line at a time."""

    def __init__(self, paths: ManifestPaths) -> None:
        self.paths = paths

    def __iter__(self) -> Iterator[MonoCut]:
        for line in iter_lines(self.paths):
            yield entry_to_cut(parse_line(line), f"{line.source}:{line.line}")

    def __len__(self) -> int:
        return sum(1 for _ in iter_lines(self.paths))


def cuts_from_manifests(paths: ManifestPaths) -> CutSet:
    """A lazy CutSet of full recordings from NeMo-style ALM manifests."""
    return CutSet(LazyManifestCuts(paths))


def _segment(sup: SupervisionSegment, offset: Any) -> dict[str, Any]:
    custom = sup.custom or {}
    start = custom.get("source_start", sup.start + offset)
    seg: dict[str, Any] = {"start": start, "end": custom.get("source_end", start + sup.duration)}
    if sup.speaker is not None:
        seg["speaker"] = sup.speaker
    if sup.text is not None:
        seg["text"] = sup.text
    seg.update((k, v) for k, v in custom.items() if k not in _BOOKKEEPING)
    items = (sup.alignment or {}).get("word")
    if items:
        ends = custom.get("word_ends")
        seg["words"] = [
            {"word": it.symbol, "start": it.start, "end": ends[k] if ends else it.start + it.duration}
            for k, it in enumerate(items)
        ]
    return seg


def cut_to_entry(cut: MonoCut) -> dict[str, Any]:
    """The manifest entry a full-recording cut stands for (segments in manifest order)."""
    rec = cut.recording
    indexed = [((s.custom or {}).get("segment_index", k), _segment(s, cut.start)) for k, s in enumerate(cut.supervisions)]
    for seg in (cut.custom or {}).get(ZERO_LENGTH_KEY, ()):
        seg = dict(seg)
        indexed.append((seg.pop("segment_index"), seg))
    indexed.sort(key=lambda pair: pair[0])
    custom = cut.custom or {}
    return {
        "audio_filepath": custom.get("audio_filepath", rec.sources[0].source),
        "audio_sample_rate": rec.sampling_rate,
        "duration": rec.duration,
        "segments": [seg for _, seg in indexed],
    }


class WindowCutter:
    """Picklable mapper: one full-recording cut to the list of its window cuts."""

    def __init__(self, config: WindowConfig) -> None:
        self.config = config

    def __call__(self, cut: MonoCut) -> list[MonoCut]:
        entry = cut_to_entry(cut)
        built = build_windows(entry, self.config)
        rec = {"id": cut.recording.id}
        windows = []
        for w in built.windows:
            data = window_cut_dict(w, built.segments, rec, entry["audio_filepath"])
            del data["recording"]
            window = MonoCut.from_dict(data)
            window.recording = cut.recording
            windows.append(window)
        return windows


def cut_windows(cuts: CutSet, config: Optional[WindowConfig] = None) -> CutSet:
    """Lazily map full-recording cuts to window cuts (one ``MonoCut`` per window)."""
    return CutSet(LazyFlattener(LazyMapper(cuts, WindowCutter(config or WindowConfig()))))


def _custom(cut: MonoCut, key: str) -> Any:
    return (cut.custom or {}).get(key)


class LazyOverlapFilter(Dillable):
    """Keeps the windows of each source recording that the overlap filter keeps.

    Windows of one recording arrive consecutively (as ``cut_windows`` produces them);
    each group is decided on its exact ``window_start``/``window_end`` values.
    """

    def __init__(self, cuts: Iterable[MonoCut], config: OverlapConfig) -> None:
        self.cuts = cuts
        self.config = config

    def _decide(self, group: list[MonoCut]) -> Iterator[MonoCut]:
        spans = [(_custom(c, "window_end"), _custom(c, "window_start")) for c in group]
        _, mask = filter_windows(spans, self.config.threshold, self.config.target_duration)
        for cut, keep in zip(group, mask):
            if keep:
                yield cut

    def __iter__(self) -> Iterator[MonoCut]:
        group: list[MonoCut] = []
        for cut in self.cuts:
            if group and _custom(cut, "source_recording") != _custom(group[0], "source_recording"):
                yield from self._decide(group)
                group = []
            group.append(cut)
        if group:
            yield from self._decide(group)


def filter_overlapping_windows(cuts: CutSet, config: Optional[OverlapConfig] = None) -> CutSet:
    """Lazily drop overlapping windows, keeping those closest to the target duration."""
    return CutSet(LazyOverlapFilter(cuts, config or OverlapConfig()))


def transcript_supervision(
    cut_id: str, recording_id: str, duration: Any, channel: Any, turns: list[dict[str, Any]], speaker_tag: Optional[str]
) -> dict[str, Any]:
    """The one supervision of a window cut's transcript view, as a dict: spanning the
    window, its text the whole transcript (``transcript_text``, the NeMo manifest's
    ``text``), the per-turn supervision dicts in its ``custom["turns"]``. The one rule
    behind ``transcript_view`` (Lhotse objects) and ``write_transcript_view`` (lines)."""
    return {
        "id": f"{cut_id}-transcript",
        "recording_id": recording_id,
        "start": 0,
        "duration": duration,
        "channel": channel,
        "text": transcript_text(((t.get("speaker"), t.get("text")) for t in turns), speaker_tag),
        "custom": {TURNS_KEY: turns},
    }


class TranscriptSupervision:
    """Picklable mapper: a window cut with its one transcript supervision
    (``transcript_supervision``) instead of one per turn."""

    def __init__(self, speaker_tag: Optional[str]) -> None:
        self.speaker_tag = speaker_tag

    def __call__(self, cut: MonoCut) -> MonoCut:
        turns = [s.to_dict() for s in cut.supervisions]
        whole = transcript_supervision(cut.id, cut.recording_id, cut.duration, cut.channel, turns, self.speaker_tag)
        return fastcopy(cut, supervisions=[SupervisionSegment.from_dict(whole)])


def transcript_view(cuts: CutSet, speaker_tag: Optional[str] = SPEAKER_TAG) -> CutSet:
    """Lazily give each window cut one supervision with its whole transcript, each
    speaker's turn starting with ``speaker_tag`` (a format with ``{speaker}``; None: plain
    text). NeMo's conversation input (``lhotse_as_conversation``) reads a cut's first
    supervision only; without this view it would see the first turn alone. The cuts
    without the transform keep one supervision per turn."""
    return CutSet(LazyMapper(cuts, TranscriptSupervision(speaker_tag)))


def turns_of(supervision: SupervisionSegment) -> list[SupervisionSegment]:
    """The per-turn supervisions a transcript supervision (``transcript_view``) holds."""
    return [SupervisionSegment.from_dict(d) for d in (supervision.custom or {}).get(TURNS_KEY, ())]


def write_transcript_view(cuts_path: Location, path: Location, speaker_tag: Optional[str] = SPEAKER_TAG) -> Location:
    """Write the transcript view of the window cuts in ``cuts_path`` (a cuts manifest, a
    file or an object) to ``path`` line by line, as dicts (building Lhotse objects would
    cost about 40x more), memory flat; the file or object appears only when complete.
    Lhotse reads each line back as ``transcript_view`` makes the cut."""
    with object_writer(path) as out:
        sink = GzipWriter(out)
        for cut in iter_jsonl_dicts(cuts_path):
            whole = transcript_supervision(
                cut["id"], cut["recording"]["id"], cut["duration"], cut["channel"], cut["supervisions"], speaker_tag
            )
            sink.write(orjson.dumps({**cut, "supervisions": [whole]}, option=orjson.OPT_APPEND_NEWLINE))
        sink.close()
    return path
