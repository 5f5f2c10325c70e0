"""The staged window streams of a job: partitions finishing in any order, killed writers,
and a merge that must not lose or duplicate a byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from luigi_tasks.staging import Staging, StagingError

STREAMS = ("alm_output.jsonl", "cuts_windows.jsonl.gz")
OUTPUTS = [b'{"entry":0}\n' * 3, b'{"entry":1}\n', b"", b'{"entry":3}\n' * 5, b'{"entry":4}\n']


def _data(position: int, name: str) -> bytes:
    return OUTPUTS[position] if name == STREAMS[0] else OUTPUTS[position][::-1]


def _write_parts(directory: Path, position: int) -> None:
    directory.mkdir()
    for name in STREAMS:
        (directory / name).write_bytes(_data(position, name))


def _finish(tmp_path: Path, staging: Staging, position: int) -> Path:
    """What a partition task does: write its part files in a temp directory, settle, and
    publish the directory inside the settle block. Returns the published directory."""
    temp = tmp_path / f".part{position}.tmp"
    final = tmp_path / f"part{position}"
    _write_parts(temp, position)
    with staging.settle(position, f"key{position}", temp, final):
        temp.rename(final)
    return final


def _parts(tmp_path: Path) -> list[tuple[str, Path]]:
    return [(f"key{k}", tmp_path / f"part{k}") for k in range(len(OUTPUTS))]


def _expected(name: str) -> bytes:
    return b"".join(_data(k, name) for k in range(len(OUTPUTS)))


def _staged_bytes(staged: dict[str, Path]) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in staged.items()}


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [1, 3, 0, 4, 2], [2, 0, 1, 4, 3]])
def test_any_finishing_order_gives_the_concatenation(tmp_path: Path, order: list[int]) -> None:
    staging = Staging(tmp_path / "staging", STREAMS)
    for position in order:
        _finish(tmp_path, staging, position)
    # Everything was placed by the partition that filled the last gap; no part file is left.
    assert staging.read()["placed"] == [f"key{k}" for k in range(len(OUTPUTS))]
    assert not any((tmp_path / f"part{k}" / name).exists() for k in range(len(OUTPUTS)) for name in STREAMS)
    assert all(staging.holds(k, f"key{k}") for k in range(len(OUTPUTS)))
    staged = staging.finish(_parts(tmp_path))
    assert _staged_bytes(staged) == {name: _expected(name) for name in STREAMS}
    # The staging stays: it is the partitions' output, and finishing again changes nothing.
    assert _staged_bytes(staging.finish(_parts(tmp_path))) == {name: _expected(name) for name in STREAMS}


def test_the_merge_appends_what_is_not_placed(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging", STREAMS)
    for position in (1, 3, 4):
        _finish(tmp_path, staging, position)
    assert staging.read()["placed"] == []
    _write_parts(tmp_path / "part0", 0)
    _write_parts(tmp_path / "part2", 2)
    staged = staging.finish(_parts(tmp_path))
    assert _staged_bytes(staged) == {name: _expected(name) for name in STREAMS}


def test_bytes_of_a_killed_writer_past_the_index_are_overwritten_and_cut(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging", STREAMS)
    _finish(tmp_path, staging, 0)
    for name in STREAMS:
        with open(staging.staged(name), "ab") as f:
            f.write(b"half-written partition 1" * 100)
    for position in (1, 2, 3, 4):
        _finish(tmp_path, staging, position)
    staged = staging.finish(_parts(tmp_path))
    assert _staged_bytes(staged) == {name: _expected(name) for name in STREAMS}


def test_a_partition_placed_before_its_run_was_killed_is_not_placed_twice(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging", STREAMS)
    _finish(tmp_path, staging, 0)
    sizes = staging.read()["sizes"]
    # The run was killed after placing partition 0, before its directory was published.
    (tmp_path / "part0").rename(tmp_path / "gone")
    temp = tmp_path / "again"
    _write_parts(temp, 0)
    with staging.settle(0, "key0", temp, tmp_path / "part0"):
        temp.rename(tmp_path / "part0")
    assert staging.read()["sizes"] == sizes
    assert not any((tmp_path / "part0" / name).exists() for name in STREAMS)


def test_a_vanished_part_file_stops_the_merge(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging", STREAMS)
    for position in (0, 2, 3, 4):
        _finish(tmp_path, staging, position)
    with pytest.raises(StagingError, match="part1.*vanished.*run again"):
        staging.finish(_parts(tmp_path))


def test_another_output_at_a_placed_position_is_refused(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging", STREAMS)
    _finish(tmp_path, staging, 0)
    with pytest.raises(StagingError, match="holds another output"):
        staging.finish([("other", tmp_path / "part0")])


def test_a_final_output_written_in_place_makes_the_partitions_run_again(tmp_path: Path) -> None:
    """The final outputs are second names of the staged files: writing one in place
    (instead of replacing it) damages the staging, which then holds nothing, and starts
    afresh as new files, so the damaged final file is not written again."""
    staging = Staging(tmp_path / "staging", STREAMS)
    for position in range(len(OUTPUTS)):
        _finish(tmp_path, staging, position)
    final = tmp_path / "alm_output.jsonl"
    os.link(staging.finish(_parts(tmp_path))[STREAMS[0]], final)
    final.write_bytes(b"half a merge")
    assert not any(staging.holds(k, f"key{k}") for k in range(len(OUTPUTS)))
    again = tmp_path / "again"
    again.mkdir()
    for position in range(len(OUTPUTS)):
        _finish(again, staging, position)
    assert _staged_bytes(staging.finish(_parts(again))) == {name: _expected(name) for name in STREAMS}
    assert final.read_bytes() == b"half a merge"
