"""alm-lhotse: ALM training windows from diarized conversations, NeMo Curator-exact, Lhotse-native.

The core (reading, windows, overlap filter, compatible output) does not import Lhotse,
which costs seconds per process; the Lhotse adapters load on first use.
"""

from __future__ import annotations

from typing import Any

from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.core.entry import EntryResult, process_entry
from alm_lhotse.core.windows import Window, build_windows
from alm_lhotse.errors import InvalidEntry, ManifestError
from alm_lhotse.execution.runner import run_job
from alm_lhotse.reading.discovery import discover_manifests
from alm_lhotse.reading.reader import read_entries

__version__ = "0.1.0"

_LHOTSE_API = {
    "cut_windows",
    "filter_overlapping_windows",
    "cuts_from_manifests",
    "entries_to_manifests",
    "entry_to_cut",
    "cut_to_entry",
    "transcript_view",
    "turns_of",
}

__all__ = [
    "OverlapConfig",
    "WindowConfig",
    "discover_manifests",
    "InvalidEntry",
    "ManifestError",
    "run_job",
    "EntryResult",
    "process_entry",
    "read_entries",
    "Window",
    "build_windows",
    *sorted(_LHOTSE_API),
]


def __getattr__(name: str) -> Any:
    if name in _LHOTSE_API:
        from alm_lhotse import lhotse_io

        return getattr(lhotse_io, name)
    raise AttributeError(f"module 'alm_lhotse' has no attribute {name!r}")
