"""The compiled output writer (Lhotse supervisions and window cuts as JSON) gives
byte-identical output to orjson of the Python dicts, its specification."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alm_lhotse import native
from alm_lhotse.config import WindowConfig
from alm_lhotse.core.windows import build_windows
from alm_lhotse.outputs import lhotse_manifests as manifests
from tests.conftest import require_kernel
from tests.test_kernel import sorted_entries
from tests.test_properties import PROPERTY, entries


def _pure(fn: Any, *args: Any) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(native, "_PURE_PYTHON", True)
        return fn(*args)


@given(
    entry=st.one_of(entries(), sorted_entries(), st.builds(lambda e: {**e, "segments": e["segments"][::-1]}, entries())),
    extra=st.sampled_from([{"k": [1, None]}, {"metrics": None}, {"segment_index": 3, "source_end": "x"}, {}]),
    text=st.sampled_from(["plain", None, 'say "hi"\n', "ünï", 7]),
)
@PROPERTY
def test_compiled_supervisions_match_python(entry: dict, extra: dict, text: Any) -> None:
    """Recording supervisions and window cuts (words shifted into the window, truncated
    parts, odd speakers and texts, extra fields named like those a supervision adds):
    the compiled JSON equals orjson of the Python dicts."""
    require_kernel()
    for seg in entry["segments"][:3]:
        seg.update(extra)
        if seg["start"] > 1:
            seg.pop("text", None)
        else:
            seg["text"] = text
    rec = manifests.recording_dict(entry, "rec-1")
    wcfg = WindowConfig(target_window_duration=20, tolerance=0.25, min_speakers=1)
    built = _pure(build_windows, entry, wcfg)
    windows = built.windows + [lw.window for lw in built.lost]
    segments = built.segments
    if "segment_index" not in extra:  # a field named like an added one is handed back
        request = (0, 0, len(segments), None, b"", 0, b"\n")
        fields = (manifests.SEGMENT_CORE_FIELDS, manifests.ADDED_CUSTOM_FIELDS)
        assert native.kernel().supervisions_json(segments, "rec-1", [request], orjson.dumps, *fields) is not None
    for with_supervisions in (True, False):
        lines = manifests.lhotse_lines(segments, rec, "x.wav", windows, with_supervisions)
        assert lines == _pure(manifests.lhotse_lines, segments, rec, "x.wav", windows, with_supervisions)
    sups, cuts = manifests.lhotse_lines(segments, rec, "x.wav", windows)
    assert sups == b"".join(orjson.dumps(sup) + b"\n" for sup in manifests.supervision_dicts({"segments": segments}, "rec-1"))
    assert cuts == b"".join(orjson.dumps(manifests.window_cut_dict(w, segments, rec, "x.wav")) + b"\n" for w in windows)


