"""The staging file of the compatible JSONL: partitions finishing in any order, killed
writers, and a merge that must not lose or duplicate a byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from luigi_tasks.staging import DATA, Staging, StagingError

OUTPUTS = [b'{"entry":0}\n' * 3, b'{"entry":1}\n', b"", b'{"entry":3}\n' * 5, b'{"entry":4}\n']


def _finish(tmp_path: Path, staging: Staging, position: int) -> Path:
    """What a partition task does: write its part file in a temp directory, settle, and
    publish the directory inside the settle block. Returns the published directory."""
    temp = tmp_path / f".part{position}.tmp"
    final = tmp_path / f"part{position}"
    temp.mkdir()
    (temp / DATA).write_bytes(OUTPUTS[position])
    with staging.settle(position, f"key{position}", temp / DATA, final / DATA):
        temp.rename(final)
    return final


def _parts(tmp_path: Path) -> list[tuple[str, Path]]:
    return [(f"key{k}", tmp_path / f"part{k}" / DATA) for k in range(len(OUTPUTS))]


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [1, 3, 0, 4, 2], [2, 0, 1, 4, 3]])
def test_any_finishing_order_gives_the_concatenation(tmp_path: Path, order: list[int]) -> None:
    staging = Staging(tmp_path / "staging")
    for position in order:
        _finish(tmp_path, staging, position)
    # Everything was placed by the partition that filled the last gap; no part file is left.
    assert staging.read()["placed"] == [f"key{k}" for k in range(len(OUTPUTS))]
    assert not any((tmp_path / f"part{k}" / DATA).exists() for k in range(len(OUTPUTS)))
    assert all(staging.holds(k, f"key{k}") for k in range(len(OUTPUTS)))
    final = tmp_path / "out" / "alm_output.jsonl"
    staging.merge(_parts(tmp_path), final)
    assert final.read_bytes() == b"".join(OUTPUTS)
    assert not staging.directory.exists()


def test_the_merge_appends_what_is_not_placed(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging")
    for position in (1, 3, 4):
        _finish(tmp_path, staging, position)
    assert staging.read()["placed"] == []
    final = tmp_path / "alm_output.jsonl"
    (tmp_path / "part0").mkdir()
    (tmp_path / "part0" / DATA).write_bytes(OUTPUTS[0])
    (tmp_path / "part2").mkdir()
    (tmp_path / "part2" / DATA).write_bytes(OUTPUTS[2])
    staging.merge(_parts(tmp_path), final)
    assert final.read_bytes() == b"".join(OUTPUTS)


def test_bytes_of_a_killed_writer_past_the_index_are_overwritten_and_cut(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging")
    _finish(tmp_path, staging, 0)
    with open(staging.directory / DATA, "ab") as f:
        f.write(b"half-written partition 1" * 100)
    for position in (1, 2, 3, 4):
        _finish(tmp_path, staging, position)
    final = tmp_path / "alm_output.jsonl"
    staging.merge(_parts(tmp_path), final)
    assert final.read_bytes() == b"".join(OUTPUTS)


def test_a_partition_placed_before_its_run_was_killed_is_not_placed_twice(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging")
    _finish(tmp_path, staging, 0)
    size = staging.read()["size"]
    # The run was killed after placing partition 0, before its directory was published.
    (tmp_path / "part0").rename(tmp_path / "gone")
    temp = tmp_path / "again"
    temp.mkdir()
    (temp / DATA).write_bytes(OUTPUTS[0])
    with staging.settle(0, "key0", temp / DATA, tmp_path / "part0" / DATA):
        temp.rename(tmp_path / "part0")
    assert staging.read()["size"] == size
    assert not (tmp_path / "part0" / DATA).exists()


def test_a_vanished_part_file_stops_the_merge(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging")
    for position in (0, 2, 3, 4):
        _finish(tmp_path, staging, position)
    final = tmp_path / "alm_output.jsonl"
    with pytest.raises(StagingError, match="part1.*vanished.*run again"):
        staging.merge(_parts(tmp_path), final)
    assert not final.exists()


def test_another_output_at_a_placed_position_is_refused(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging")
    _finish(tmp_path, staging, 0)
    with pytest.raises(StagingError, match="holds another output"):
        staging.merge([("other", tmp_path / "part0" / DATA)], tmp_path / "alm_output.jsonl")
