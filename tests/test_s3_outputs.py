"""Everything a local output directory gets, in a bucket too: the bundled sample, the
transcript view, the report (pipeline and CLI); the merge's lock taken over by exactly
one run when stale; no unfinished multipart upload left behind by a killed run."""

from __future__ import annotations

import gzip
import re
import threading
from pathlib import Path
from typing import Iterator

import orjson
import pytest

from alm_lhotse import fs, objects
from alm_lhotse.object_lock import object_lock, read_tagged, replace_unchanged
from tests.s3_server import S3Server, s3_server  # noqa: F401 - the fixture
from tests.test_pipeline import FINAL_FILES, final_bytes, run_luigi
from tests.test_s3 import download, s3, sample_tree, upload_tree  # noqa: F401 - the fixture

VIEW = "lhotse/alm_cuts_transcripts_all.jsonl.gz"


def key(url: str) -> str:
    return url.split("://", 1)[1]


def test_the_bundled_sample_runs_into_a_bucket(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    out = f"s3://{s3.bucket()}/out"
    first = run_luigi("--output-dir", out, cwd=tmp_path, workers=2)
    assert f"outputs in {out}" in first.stdout
    run_luigi("--output-dir", "local", cwd=tmp_path)
    local = tmp_path / "local"
    got = download(s3, out, tmp_path / "got")
    # the outputs name the audio where the sample was written (the bucket, or the local
    # directory), and recording ids hash that name
    same_root = lambda data, root: re.sub(rb"-[0-9a-f]{12}\b", b"-ID", data.replace(root.encode(), b"ROOT"))  # noqa: E731
    for name in FINAL_FILES:
        if name.endswith(".gz"):
            remote, here = gzip.decompress((got / name).read_bytes()), gzip.decompress((local / name).read_bytes())
        else:
            remote, here = (got / name).read_bytes(), (local / name).read_bytes()
        assert same_root(remote, f"{out}/sample_data") == same_root(here, str(local / "sample_data")), name
    store = s3.filesystem()
    for audio in sorted((local / "sample_data" / "audio").iterdir()):
        assert store.cat_file(f"{key(out)}/sample_data/audio/{audio.name}") == audio.read_bytes()
    assert store.cat_file(f"{key(out)}/report.html").startswith(b"<!DOCTYPE html>")
    assert len(store.ls(f"{key(out)}/report")) == len(list((local / "report").iterdir()))
    again = run_luigi("--output-dir", out, cwd=tmp_path)
    assert f"outputs in {out} are up to date: nothing to do" in again.stdout


def test_the_transcript_view_goes_into_the_bucket_and_away_with_its_job(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    local = sample_tree(tmp_path / "in")
    bucket = s3.bucket()
    upload_tree(s3, local, f"s3://{bucket}/in")
    out = f"s3://{bucket}/out"
    tag = ["--transcript-view", "--transcript-speaker-tag", "<{speaker}> "]
    run_luigi("--manifest-path", f"s3://{bucket}/in", "--output-dir", out, *tag, cwd=tmp_path, workers=2)
    run_luigi("--manifest-path", str(local), "--output-dir", "disk", *tag, cwd=tmp_path)
    store = s3.filesystem()
    assert store.cat_file(f"{bucket}/out/{VIEW}") == (tmp_path / "disk" / VIEW).read_bytes()
    run_luigi("--manifest-path", f"s3://{bucket}/in", "--output-dir", out, cwd=tmp_path)
    assert not store.exists(f"{bucket}/out/{VIEW}")
    assert final_bytes(download(s3, out, tmp_path / "got")) == final_bytes(tmp_path / "disk")


def test_the_cli_writes_the_view_and_the_report_into_a_bucket(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    from click.testing import CliRunner

    from alm_lhotse.cli import cli

    local = sample_tree(tmp_path / "in")
    bucket = s3.bucket()
    out = f"s3://{bucket}/cli"
    runner = CliRunner()
    to_s3 = runner.invoke(cli, ["prepare", "alm", str(local), out, "--transcript-view", "--no-progress"])
    assert to_s3.exit_code == 0, to_s3.output
    assert f"report: {out}/report.html" in to_s3.output and f"transcript view: {out}/{VIEW}" in to_s3.output
    on_disk = runner.invoke(cli, ["prepare", "alm", str(local), str(tmp_path / "l"), "--transcript-view", "--no-progress"])
    assert on_disk.exit_code == 0, on_disk.output
    store = s3.filesystem()
    assert store.cat_file(f"{bucket}/cli/{VIEW}") == (tmp_path / "l" / VIEW).read_bytes()
    store.rm(f"{bucket}/cli/report", recursive=True)
    again = runner.invoke(cli, ["report", out])
    assert again.exit_code == 0 and again.output.strip() == f"{out}/report.html", again.output
    assert sorted(p.rsplit("/", 1)[-1] for p in store.ls(f"{bucket}/cli/report")) == sorted(
        p.name for p in (tmp_path / "l" / "report").iterdir()
    )
    empty = runner.invoke(cli, ["report", f"s3://{bucket}/nothing"])
    assert empty.exit_code == 1 and empty.output.startswith("Error: no summary.json"), empty.output


@pytest.fixture
def lock_url(s3: S3Server) -> Iterator[str]:  # noqa: F811
    yield f"s3://{s3.bucket()}/out/.alm_lock"


def _stale_lock(url: str) -> None:
    objects.write_bytes(url, orjson.dumps({"host": "elsewhere", "pid": 1, "time": 0.0}))


def test_a_stale_lock_is_taken_over_by_exactly_one_run(lock_url: str) -> None:
    _stale_lock(lock_url)
    held, tag = read_tagged(lock_url)
    assert tag is not None and orjson.loads(held)["host"] == "elsewhere"
    winners = [replace_unchanged(lock_url, tag, f"run {n}".encode()) for n in range(3)]
    assert winners == [True, False, False]
    assert objects.read_bytes(lock_url) == b"run 0"


def test_runs_finding_a_stale_lock_at_once_hold_it_one_after_the_other(lock_url: str) -> None:
    _stale_lock(lock_url)
    inside: list[int] = []
    overlaps: list[int] = []
    start = threading.Barrier(4)

    def run(n: int) -> None:
        start.wait()
        with object_lock(lock_url, alive=lambda pid: True):
            inside.append(n)
            if len(inside) > 1:
                overlaps.append(n)
            threading.Event().wait(0.3)
            inside.remove(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert overlaps == [] and not objects.exists(lock_url)


def test_a_lock_lost_past_its_lease_is_not_removed_by_its_old_holder(lock_url: str) -> None:
    with object_lock(lock_url, alive=lambda pid: True):
        _, tag = read_tagged(lock_url)
        assert replace_unchanged(lock_url, tag, b"a successor")  # as a run finding it past its lease would
    assert objects.read_bytes(lock_url) == b"a successor"


def test_unfinished_uploads_of_the_job_are_aborted_by_the_merge(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    local = sample_tree(tmp_path / "in")
    bucket = s3.bucket()
    store = s3.filesystem()
    left = ["out/.work/parts/old/alm_output.jsonl", "out/alm_output.jsonl", "out/lhotse/alm_cuts_windows_all.jsonl.gz",
            "out/report/durations.png", "out/shar-x/recording.000000.tar", "elsewhere/file"]  # fmt: skip
    for name in left:
        store.call_s3("create_multipart_upload", Bucket=bucket, Key=name)
    run_luigi("--manifest-path", str(local), "--output-dir", f"s3://{bucket}/out", cwd=tmp_path)
    remaining = sorted(u["Key"] for u in store.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []))
    assert remaining == ["elsewhere/file", "out/shar-x/recording.000000.tar"]
    assert objects.abort_uploads(fs.join(f"s3://{bucket}", "out"), lambda key: key.startswith("shar-")) == 1
