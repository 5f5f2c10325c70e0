"""Lhotse conversion and the CutSet transforms give the core's answers, lazily and picklably."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lhotse import CutSet
from lhotse.qa import validate_recordings_and_supervisions

from alm_lhotse import (
    OverlapConfig,
    WindowConfig,
    cut_to_entry,
    cut_windows,
    cuts_from_manifests,
    entries_to_manifests,
    entry_to_cut,
    filter_overlapping_windows,
    process_entry,
    read_entries,
)
from tests.conftest import ORACLE, require_shared

EDGE = ORACLE / "random_seed2_edge.input.jsonl.gz"


def test_round_trip_gives_original_segments() -> None:
    require_shared()
    for i, entry in enumerate(read_entries(EDGE)):
        back = cut_to_entry(entry_to_cut(entry, f"line{i}"))
        assert back["segments"] == entry["segments"]
        assert back["audio_filepath"] == entry["audio_filepath"]


def test_manifests_pass_lhotse_validation(sample_manifest: Path) -> None:
    entries = list(read_entries(sample_manifest))
    recordings, supervisions = entries_to_manifests(entries)
    validate_recordings_and_supervisions(recordings, supervisions)
    assert len(recordings) == 5 and len(supervisions) == sum(len(e["segments"]) for e in entries)


def test_ids_unique_when_a_recording_repeats(sample_manifest: Path) -> None:
    recordings, _ = entries_to_manifests(read_entries([sample_manifest, sample_manifest]))
    assert len({r.id for r in recordings}) == 10


def test_transforms_equal_the_core_on_hostile_data() -> None:
    require_shared()
    wcfg, ocfg = WindowConfig(), OverlapConfig()
    windows = filter_overlapping_windows(cut_windows(cuts_from_manifests(EDGE), wcfg), ocfg)
    windows = pickle.loads(pickle.dumps(windows))
    got = [(c.custom["window_end"], c.custom["window_start"]) for c in windows]
    expected = [(w.end, w.start) for e in read_entries(EDGE) for w in process_entry(e, wcfg, ocfg).kept_windows]
    assert got == expected and len(got) == 313


def test_window_cuts_are_relative_to_the_window(sample_manifest: Path, tmp_path: Path) -> None:
    cuts = cut_windows(cuts_from_manifests(sample_manifest))
    assert cuts.is_lazy
    cut = next(iter(cuts))
    assert cut.start == cut.custom["window_start"] and len(cut.custom["speaker_durations"]) == 5
    for sup in cut.supervisions:
        assert sup.duration > 0 and 0 <= sup.start < cut.duration
        for item in (sup.alignment or {}).get("word", []):
            assert sup.start - 1e-9 <= item.start
    path = tmp_path / "windows.jsonl.gz"
    cuts.to_file(path)
    assert len(CutSet.from_file(path)) == 181


def _count(cuts: CutSet) -> int:
    return sum(1 for _ in cuts)


def test_transforms_cross_process_boundaries(sample_manifest: Path) -> None:
    """Lazy window CutSets pickle into worker processes (``num_jobs > 1``, dataloaders)."""
    windows = filter_overlapping_windows(cut_windows(cuts_from_manifests(sample_manifest)))
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        counts = list(pool.map(_count, [windows, cut_windows(cuts_from_manifests(sample_manifest))]))
    assert counts == [25, 181]
