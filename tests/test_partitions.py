"""Partition planning: cuts on line starts with the right line numbers, and line counts
of slices, on the compiled and on the pure path."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alm_lhotse import native
from alm_lhotse.execution.partitions import file_slices, slice_lines
from tests.test_properties import PROPERTY

LINES = st.lists(
    st.tuples(st.sampled_from([0, 1, 5, 30, 200]), st.sampled_from([b"\n", b"\r\n", b"\n\n", b""])), min_size=1, max_size=40
)


@pytest.mark.parametrize("pure", [False, True])
@given(lines=LINES, step=st.sampled_from([1, 2, 7, 50, 100, 1000]))
@PROPERTY
def test_slices_cut_at_line_starts_with_their_line_numbers(pure: bool, lines: list, step: int) -> None:
    data = b"".join(b"x" * n + end for n, end in lines) or b"x"
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(native, "_PURE_PYTHON", pure)
        path = Path(tmp) / "m.jsonl"
        path.write_bytes(data)
        slices = file_slices(path, "m.jsonl", step)
        assert slices[0].start == 0 and slices[-1].stop is None
        for sl, following in zip(slices, slices[1:]):
            assert sl.stop == following.start
            assert data[following.start - 1 : following.start] == b"\n"
            assert following.first_line == data[: following.start].count(b"\n") + 1
            assert following.start - sl.start > step
        assert sum(slice_lines(sl) for sl in slices) == data.count(b"\n")
