"""The compiled loops (builder fast path, overlap filter, output rendering, the cheap
segment check, segment order, Lhotse supervisions) give byte-identical output to pure
Python.

Its parity with the reference is also checked directly: every oracle case runs on both
paths (``tests/test_parity.py``). Here generated entries reach the corners the oracle may
not: ints among the times (the kernel hands those entries back to Python), words with
int ends, more speakers than the limit, dropped ``speaker`` or ``metrics``, int limits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alm_lhotse import native
from alm_lhotse.config import OverlapConfig, WindowConfig
from alm_lhotse.core import entry as entry_module
from alm_lhotse.core import windows
from alm_lhotse.core.entry import process_entry
from alm_lhotse.core.overlap import filter_spans, filter_windows, kept_mask
from alm_lhotse.execution.runner import run_job
from alm_lhotse.outputs.compat import render_entry
from alm_lhotse.reading import reader, validation
from tests.conftest import ORACLE, require_kernel, require_shared
from tests.test_properties import PROPERTY, configs, entries


def _both(entry: dict[str, Any], wcfg: WindowConfig, ocfg: OverlapConfig) -> tuple:
    """The rendered entry (or the error raised) from the compiled path, then from pure
    Python; unvalidated, as the builder must agree on whatever it is given."""
    out: list[Any] = []
    for pure in (False, True):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(native, "_PURE_PYTHON", pure)
            try:
                out.append(render_entry(process_entry(entry, wcfg, ocfg, validate=False), wcfg))
            except Exception as exc:  # noqa: BLE001 - both paths must fail alike
                out.append(repr(exc))
    return tuple(out)


@st.composite
def sorted_entries(draw: st.DrawFn) -> dict[str, Any]:
    """Entries the fast path takes (sorted starts and ends), built to form many windows:
    near-contiguous segments, a few speakers, words to truncate at, and now and then an
    int time, a low bandwidth, a missing speaker or ``no-speaker``."""
    segments = []
    start = end = 0.0
    for _ in range(draw(st.integers(2, 40))):
        start = round(start + draw(st.sampled_from([0.0, 0.0, 0.4, -0.3])), 1)
        start = max(start, segments[-1]["start"] if segments else 0.0)
        end = max(end, round(start + draw(st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.2, 6.0, 9.7])), 1))
        seg: dict[str, Any] = {"start": start, "end": end, "text": "t"}
        speaker = draw(st.sampled_from(["A", "B", "C"] * 5 + ["D", "E", "F", "G", "no-speaker", "", None]))
        if speaker is not None:
            seg["speaker"] = speaker
        bandwidth = draw(st.sampled_from([16000] * 12 + [4000, None]))
        if bandwidth is not None:
            seg["metrics"] = {"bandwidth": bandwidth}
        n_words = draw(st.sampled_from([0, 2, 3, 4, 5, 6]))
        step = (end - start) / max(n_words, 1)
        seg["words"] = [
            {"word": f"w{k}", "start": round(start + k * step, 2), "end": round(start + (k + 1) * step, 2)}
            for k in range(n_words)
        ]
        if draw(st.integers(0, 29)) == 0 and start == int(start):
            seg["start"] = int(start)
        for word in seg["words"]:
            if draw(st.integers(0, 9)) == 0 and word["end"] == int(word["end"]):
                word["end"] = int(word["end"])
        segments.append(seg)
        start = end
    return {"audio_filepath": "/audio/x.wav", "audio_sample_rate": 16000, "duration": end, "segments": segments}


@st.composite
def fast_configs(draw: st.DrawFn) -> tuple[WindowConfig, OverlapConfig]:
    target = draw(st.sampled_from([20.0, 30.0, 25]))
    min_spk = draw(st.integers(1, 3))
    wcfg = WindowConfig(
        target_window_duration=target,
        tolerance=draw(st.sampled_from([0.1, 0.25, 0.5, 0])),
        min_speakers=min_spk,
        max_speakers=draw(st.integers(min_spk, 7)),
        truncation=draw(st.booleans()),
        drop_fields=draw(st.sampled_from(["words"] * 6 + ["speaker", "metrics", "words,metrics", ""])),
    )
    return wcfg, OverlapConfig(overlap_percentage=draw(st.sampled_from([0, 50, 100])), target_duration=target)


@given(entry=entries(), cfgs=configs())
@PROPERTY
def test_compiled_builder_matches_python(entry: dict, cfgs: tuple) -> None:
    require_kernel()
    compiled, pure = _both(entry, *cfgs)
    assert compiled == pure


@given(entry=sorted_entries(), cfgs=fast_configs())
@settings(PROPERTY, max_examples=300)
def test_compiled_builder_matches_python_on_sorted_entries(entry: dict, cfgs: tuple) -> None:
    require_kernel()
    compiled, pure = _both(entry, *cfgs)
    assert compiled == pure


def test_int_limits_and_odd_words_behave_as_in_python() -> None:
    require_kernel()
    seg = {"start": 0.0, "end": 30.0, "speaker": "A", "metrics": {"bandwidth": 9000}}
    entry = {
        "audio_filepath": "x.wav",
        "audio_sample_rate": 16000,
        "segments": [seg, {**seg, "start": 30.0, "end": 70.0, "speaker": "B"}, {**seg, "start": 70.0, "end": 140.0,
                     "words": [{"word": "w", "start": 70.0, "end": 90}]}],
    }
    wcfg = WindowConfig(target_window_duration=80, tolerance=0)
    compiled, pure = _both(entry, wcfg, OverlapConfig())
    assert compiled == pure
    entry["segments"][2]["words"] = [{"word": "w", "start": 70.0}]
    compiled, pure = _both(entry, wcfg, OverlapConfig())
    assert compiled == pure == "KeyError('end')"
    entry["segments"][2]["words"] = [{"word": 5, "start": 70.0, "end": 75.0}, {"word": "", "start": 75.0, "end": 80.0}]
    compiled, pure = _both(entry, wcfg, OverlapConfig())
    assert compiled == pure and pure.startswith("TypeError(")
    entry["segments"][2]["words"] = [{"word": "a", "start": 70.0, "end": 75.0}, {"start": 75.0, "end": 80.0}]
    compiled, pure = _both(entry, wcfg, OverlapConfig())
    assert compiled == pure


def test_compiled_builder_takes_its_constants_from_python() -> None:
    """The compiled builder defines no constant of its own: configured with another
    speaker slot count, it fills that many."""
    require_kernel()
    segs = [{"start": 6.0 * i, "end": 6.0 * i + 5.0, "speaker": "AB"[i % 2], "metrics": {"bandwidth": 9000}}
            for i in range(30)]
    try:
        native.configure(speaker_slots=3)
        built = native.kernel().build_entry(segs, WindowConfig())
    finally:
        native.configure(speaker_slots=windows.SPEAKER_SLOTS)
    assert built is not None and all(len(w.speaker_durations) == 3 for w in built[0])
    with pytest.raises(TypeError, match="unknown constant"):
        native.configure(speaker_slot=5)


def test_pure_python_can_be_forced_from_the_environment() -> None:
    code = "from alm_lhotse import native; print(native.kernel_enabled())"
    env = {**os.environ, "ALM_LHOTSE_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


_times = st.sampled_from([0.0, 1.0, 1.0000001, 1.0000004, 2.5, 3.0, 10.0, 10.0000005, 20.0, 21.7, 30.0, 40.0])


@given(
    pairs=st.lists(st.tuples(_times, _times), max_size=30),
    percentage=st.sampled_from([0, 1, 50, 99.9, 100]),
    target=st.sampled_from([5.0, 10, 20.0]),
)
@PROPERTY
def test_compiled_overlap_filter_matches_python(pairs: list, percentage: float, target: float) -> None:
    """Equal, contained, touching and near-equal windows (within the reference's
    6-decimal matching), decided by the compiled filter exactly as in pure Python."""
    require_kernel()
    spans = [(max(a, b), min(a, b)) for a, b in pairs]
    threshold = OverlapConfig(percentage, target).threshold
    compiled = filter_windows(spans, threshold, target)
    kept = filter_spans(spans, threshold, target)
    assert compiled == (kept, kept_mask(spans, kept))
    assert all(x is y for x, y in zip(compiled[0], kept))


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 200), st.sampled_from([0.0, -0.5, 1.5, 80.0, float("nan"), float("inf")]),
    st.sampled_from(["", "A", "no-speaker"]),
)
_fields = st.sampled_from(["start", "end", "speaker", "text", "metrics", "words", "word", "bandwidth"])


def _maybe_dict(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.dictionaries(_fields, values, max_size=6)


_words = st.lists(st.one_of(_maybe_dict(_scalars), _scalars), max_size=3)
_segment_values = st.one_of(_scalars, _maybe_dict(_scalars), _words)
_segments = st.lists(st.one_of(_maybe_dict(_segment_values), _scalars), max_size=6)


@st.composite
def _spoiled_segments(draw: st.DrawFn) -> list:
    """Well-formed segments with one field (of a segment, its metrics or a word) spoiled."""
    segments = draw(sorted_entries())["segments"]
    seg = draw(st.sampled_from(segments))
    target = draw(st.sampled_from([seg, seg.get("metrics") or seg] + seg["words"]))
    target[draw(_fields)] = draw(_segment_values)
    return segments


def _check_fails(seg: Any) -> bool:
    try:
        validation._check_segment(seg, "segments[0]")
    except ValueError:
        return True
    return False


@given(segments=st.one_of(_segments, _spoiled_segments()))
@settings(PROPERTY, max_examples=200)
def test_compiled_segment_check_matches_python(segments: list) -> None:
    """Hostile segment shapes: the compiled check stops at exactly the segments the
    Python check rejects."""
    require_kernel()
    doubtful = [i for i, seg in enumerate(segments) if _check_fails(seg)]
    assert native.kernel().first_doubtful_segment(segments, 0) == (doubtful[0] if doubtful else len(segments))
    for i in doubtful:
        assert native.kernel().first_doubtful_segment(segments, i) == i


@given(entry=st.one_of(entries(), sorted_entries()))
@PROPERTY
def test_compiled_segment_order_matches_python(entry: dict) -> None:
    require_kernel()
    compiled = native.kernel().segment_order(entry["segments"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(native, "_PURE_PYTHON", True)
        assert compiled in (None, entry_module.segment_order(entry["segments"]))


@pytest.mark.parametrize("name", ["random_seed1.input.jsonl.gz", "random_seed2_edge.input.jsonl.gz"])
def test_whole_job_writes_the_same_bytes_on_both_paths(name: str, tmp_path: Path) -> None:
    """Every output file of run_job (compatible JSONL, Lhotse manifests, rejects), byte
    for byte, on the oracle's hostile inputs."""
    require_shared()
    require_kernel()
    outputs = []
    for pure in (False, True):
        out = tmp_path / str(pure)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(native, "_PURE_PYTHON", pure)
            run_job(ORACLE / name, out, WindowConfig(), OverlapConfig(), jobs=1, on_error="skip")
        outputs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1]
    assert any(name.suffix == ".gz" for name in outputs[0])


_json_values = st.recursive(
    st.one_of(st.none(), st.integers(-9, 9), st.text(alphabet='[]{}"\\ab', max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(alphabet='[]{"a', max_size=3), inner, max_size=3)),
    max_leaves=30,
)


@given(value=_json_values, limit=st.integers(0, 6))
@PROPERTY
def test_compiled_json_depth_matches_the_nesting_rule(value: Any, limit: int) -> None:
    """The kernel's depth of a JSON text is within a limit exactly when the reader's
    walk over the parsed value finds nothing deeper (brackets inside strings ignored)."""
    require_kernel()
    depth = native.kernel().json_depth(orjson.dumps(value))
    assert (depth <= limit) == (reader._too_deep(value, limit) is None)


def test_the_kernel_functions_named_in_python_are_the_method_table() -> None:
    """``native`` recognises an extension built from older sources by these names."""
    import re
    from pathlib import Path

    from alm_lhotse import native

    table = (Path(native.__file__).parent / "csrc" / "module.c").read_text()
    assert set(re.findall(r'\{"(\w+)", ', table)) == set(native.KERNEL_FUNCTIONS)
