"""The Shar export into object storage (a local S3 server): shards, bookkeeping and the
tasks' targets in the bucket, byte-identical to a local export, on every interface;
a killed export resumes, two workers sharing only luigid and the bucket run each
group once, a re-run is a no-op, and the shards are read back from the bucket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson
import pytest
from lhotse import CutSet

from alm_lhotse.recipe import prepare_alm
from alm_lhotse.shar import export_shar
from alm_lhotse.shar_read import shar_fields
from tests.s3_server import S3Server, free_port, s3_server  # noqa: F401 - the fixture
from tests.test_audio import write_conversations
from tests.test_pipeline import TIMEOUT_S, clean_env
from tests.test_pipeline_resume import start_luigid
from tests.test_s3 import s3  # noqa: F401 - the fixture
from tests.test_shar_luigi import SHARDS, error_lines, luigi_shar, shard_bytes, tasks_ran

OPTIONS = [*SHARDS, "--audio-on-error", "skip"]  # a shard per window, the missing audio listed


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Conversations with one audio file missing, and their local luigi export: the
    reference every export into the bucket is compared with."""
    root = tmp_path_factory.mktemp("s3_shar")
    manifest = write_conversations(root / "data", count=3)
    (root / "data/conv1.wav").unlink()
    luigi_shar("--manifest-path", str(manifest), "--output-dir", "ref", *OPTIONS, cwd=root)
    (shar_dir,) = [p for p in (root / "ref").glob("shar-*") if p.is_dir() and p.suffix != ".export"]
    state = shar_dir.with_name(shar_dir.name + ".export")
    return {
        "manifest": manifest,
        "shar_dir": shar_dir,
        "shards": shard_bytes(shar_dir),
        "rejects": (state / "rejects.jsonl").read_bytes(),
        "summary": orjson.loads((state / "summary.json").read_bytes()),
    }


def bucket_files(server: S3Server, url: str) -> dict[str, bytes]:
    """Every object directly under ``url``, by name."""
    store = server.filesystem()
    root = url.split("://", 1)[1]
    return {key.rsplit("/", 1)[-1]: store.cat_file(key) for key in sorted(store.find(root)) if "/" not in key[len(root) + 1:]}


def shar_url(server: S3Server, out: str) -> str:
    (name,) = {k.split("/")[2].removesuffix(".export") for k in server.filesystem().find(out.split("://", 1)[1]) if "/shar-" in k}
    return f"{out}/{name}"


def versions(server: S3Server, url: str) -> dict[str, Any]:
    """Every object under ``url`` with the time it was written."""
    store = server.filesystem()
    store.invalidate_cache()
    return {key: info["LastModified"] for key, info in store.find(url.split("://", 1)[1], detail=True).items()}


def without_paths(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in ("output_dir", "rejects_path")}


def assert_like_reference(server: S3Server, url: str, job: dict[str, Any], resumed: int = 0) -> None:
    """Shard objects, rejects and summary equal to the local export's; no bookkeeping left."""
    assert bucket_files(server, url) == job["shards"]
    state = bucket_files(server, url + ".export")
    assert state["rejects.jsonl"] == job["rejects"] and job["rejects"]
    summary = orjson.loads(state["summary.json"])
    assert without_paths(summary) == {**without_paths(job["summary"]), "resumed_shards": resumed}
    assert summary["output_dir"] == url and summary["rejects_path"] == f"{url}.export/rejects.jsonl"
    assert not server.filesystem().find(f"{url.split('://', 1)[1]}.export/input")


def test_luigi_export_into_s3_equals_a_local_export_and_a_rerun_is_a_no_op(
    s3: S3Server, job: dict[str, Any], tmp_path: Path  # noqa: F811
) -> None:
    out = f"s3://{s3.bucket()}/out"
    args = ("--manifest-path", str(job["manifest"]), "--output-dir", out, *OPTIONS)
    proc = luigi_shar(*args, cwd=tmp_path, workers=2, env=s3.env)
    url = shar_url(s3, out)
    assert_like_reference(s3, url, job)
    assert f"windows written to {url}, 2 rejected (see {url}.export/rejects.jsonl)" in proc.stdout
    assert f"CutSet.from_shar(fields=shar_fields('{url}'))" in proc.stdout
    assert not list(tmp_path.iterdir()), "nothing written locally"
    written = versions(s3, out)
    again = luigi_shar(*args, cwd=tmp_path, workers=2, env=s3.env)
    assert "SHAR EXPORT COMPLETE" not in again.stdout
    assert versions(s3, out) == written, "a re-run writes nothing"


KILLER = """
import os, signal, sys
import alm_lhotse.objects as objects
real, calls = objects.upload_file, [0]
def upload_file(local, target):
    calls[0] += "/shar-" in str(target)  # a shard's file, not a checkpoint of the windows
    if calls[0] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    real(local, target)
objects.upload_file = upload_file
from luigi.cmdline import luigi_run
luigi_run(sys.argv[2:])
"""


def test_sigkill_mid_export_then_resume_is_byte_identical(
    s3: S3Server, job: dict[str, Any], tmp_path: Path  # noqa: F811
) -> None:
    out = f"s3://{s3.bucket()}/out"
    args = ["--manifest-path", str(job["manifest"]), "--output-dir", out, *OPTIONS]
    killer = [sys.executable, "-c", KILLER, "4", "--module", "luigi_tasks", "AlmShar", *args, "--local-scheduler"]
    killed = subprocess.run(killer, cwd=tmp_path, env=clean_env(s3.env), capture_output=True, timeout=TIMEOUT_S)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    url = shar_url(s3, out)
    state = url.split("://", 1)[1] + ".export"
    store = s3.filesystem()
    done = [orjson.loads(store.cat_file(key)) for key in store.find(f"{state}/done")]
    written = [d for d in done if d["written"]]
    assert len(written) == 1  # a whole shard (and maybe a rejected one), then the next one's tar: killed before its cuts
    assert len(bucket_files(s3, url)) == 3 and not store.exists(f"{state}/summary.json")
    bucket = url.split("://", 1)[1].split("/")[0]
    for left in ("recording.000009.tar", "cuts.000009.jsonl.gz"):  # as a killed large upload leaves
        store.call_s3("create_multipart_upload", Bucket=bucket, Key=f"{url.split('/', 3)[3]}/{left}")
    luigi_shar(*args, cwd=tmp_path, env=s3.env)
    assert_like_reference(s3, url, job)
    assert not store.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads")


def test_two_workers_sharing_only_luigid_and_the_bucket(s3: S3Server, job: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    out = f"s3://{s3.bucket()}/out"
    port = free_port()
    server = start_luigid(tmp_path, port)
    try:
        cmd = [sys.executable, "-m", "luigi", "--module", "luigi_tasks", "AlmShar", "--manifest-path", str(job["manifest"]),
               "--output-dir", out, *OPTIONS, "--shar-groups", "4", "--scheduler-host", "127.0.0.1", "--scheduler-port",
               str(port), "--no-lock", "--worker-keep-alive"]  # fmt: skip
        workers = []
        for name in ("machine1", "machine2"):
            home = tmp_path / name
            (home / "tmp").mkdir(parents=True)
            env = clean_env({**s3.env, "TMPDIR": str(home / "tmp")})
            workers.append(subprocess.Popen(cmd, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = [w.communicate(timeout=TIMEOUT_S)[0] for w in workers]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert sum(tasks_ran(o, "AlmSharGroup") for o in outputs) == 4, outputs
    assert sum(tasks_ran(o, "AlmSharPlan") for o in outputs) == sum(tasks_ran(o, "AlmShar") for o in outputs) == 1
    assert_like_reference(s3, shar_url(s3, out), job)
    assert not [p for name in ("machine1", "machine2") for p in (tmp_path / name).rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def exported(job: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The job's window cuts (local) and their export with ``export_shar`` into a directory."""
    out = job["manifest"].parent.parent / "prepared"
    prepare_alm(job["manifest"], out, progress=False)
    cuts = out / "lhotse/alm_cuts_windows_all.jsonl.gz"
    export_shar(cuts, out / "shar", shard_duration=100, on_error="skip", progress=False)
    yield {"cuts": cuts, "shards": shard_bytes(out / "shar"), "shar_dir": out / "shar"}


def test_cli_and_python_export_into_s3_and_read_back(s3: S3Server, exported: dict[str, Any]) -> None:  # noqa: F811
    from click.testing import CliRunner

    from alm_lhotse.cli import cli

    bucket = f"s3://{s3.bucket()}"
    s3.filesystem().put_file(str(exported["cuts"]), f"{bucket[5:]}/in/cuts.jsonl.gz")
    cli_args = ["shar", "export-alm", f"{bucket}/in/cuts.jsonl.gz", f"{bucket}/cli/", "--shard-duration", "100",
                "--audio-on-error", "skip", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli, cli_args)
    assert result.exit_code == 0, result.output
    assert f"read them with CutSet.from_shar(fields=shar_fields('{bucket}/cli'))" in result.output
    assert bucket_files(s3, f"{bucket}/cli") == exported["shards"]

    summary = export_shar(exported["cuts"], f"{bucket}/py", num_jobs=2, shard_duration=100, on_error="skip", progress=False)
    assert bucket_files(s3, f"{bucket}/py") == exported["shards"] and summary["resumed_shards"] == 0
    again = export_shar(exported["cuts"], f"{bucket}/py", num_jobs=2, shard_duration=100, on_error="skip", progress=False)
    planned = len(s3.filesystem().find(f"{bucket[5:]}/py.export/done"))
    assert again == {**summary, "resumed_shards": planned} and planned >= summary["shards"] > 1

    fields = shar_fields(f"{bucket}/py")
    assert sorted(fields) == ["cuts", "recording"] and all(s.startswith("pipe:") for s in fields["cuts"])
    local = list(CutSet.from_shar(in_dir=exported["shar_dir"]))
    remote = list(CutSet.from_shar(fields=fields))
    assert [c.id for c in remote] == [c.id for c in local] and len(local) == summary["written"]
    for a, b in zip(remote, local):
        np.testing.assert_array_equal(a.load_audio(), b.load_audio())


def test_storage_errors_are_one_line_naming_the_url(
    s3: S3Server, job: dict[str, Any], exported: dict[str, Any], tmp_path: Path  # noqa: F811
) -> None:
    from click.testing import CliRunner

    from alm_lhotse.cli import cli

    bucket = f"s3://{s3.bucket()}"
    unwritable = "Shar directory s3://no-such-bucket-alm/shar is not writable: no such bucket"
    for cuts, out, message in [
        (str(exported["cuts"]), "s3://no-such-bucket-alm/shar", unwritable),
        (f"{bucket}/absent.jsonl.gz", f"{bucket}/shar", f"{bucket}/absent.jsonl.gz: no such object"),
    ]:
        result = CliRunner().invoke(cli, ["shar", "export-alm", cuts, out, "--no-progress"])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert result.output.strip() == f"Error: {message}"
    proc = luigi_shar("--manifest-path", str(job["manifest"]), "--output-dir", "out", "--shar-dir",
                      "s3://no-such-bucket-alm/shar", cwd=tmp_path, expect=35, env=s3.env)  # fmt: skip
    errors = error_lines(proc.stderr)
    assert errors == [f"ERROR: {unwritable}"], proc.stderr
