"""gs:// and az:// through local emulators (fake-gcs-server, Azurite), as test_s3.py does
s3:// on moto: manifests from an object and from a prefix, outputs and checkpoints in
the store byte-identical to a local run's, a re-run that does nothing, two workers
sharing only luigid and the store, the Shar export's shards equal to a local export's,
a create-only write that refuses a second create, a failed upload that leaves nothing,
and one-line errors naming the URL and the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Union

import orjson
import pytest

from alm_lhotse import fs, objects
from alm_lhotse.reading.discovery import discover_manifests
from tests.azure_server import AzureServer, azure_server  # noqa: F401 - the fixture
from tests.gcs_server import GcsServer, gcs_server  # noqa: F401 - the fixture
from tests.test_pipeline import final_bytes, ran_tasks, run_luigi, write_repeated_sample
from tests.test_pipeline_resume import ENTRIES, PARTITION_ARGS
from tests.test_s3 import STORE_ERRORS, counts, download, error_case, one_error_line, sample_tree, upload_tree
from tests.test_s3_resume import killed_after_a_partition, on_two_machines
from tests.test_s3_shar import OPTIONS as SHAR_OPTIONS
from tests.test_s3_shar import bucket_files, job, shar_url, without_paths  # noqa: F401 - job: the fixture
from tests.test_shar_luigi import luigi_shar

Server = Union[GcsServer, AzureServer]


@pytest.fixture(params=["gcs", "azure"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """Each emulator in turn, its environment in this process's too."""
    server = request.getfixturevalue(f"{request.param}_server")
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    fs.configure({})
    yield server
    fs.configure({})


def test_a_prefix_is_searched_like_a_directory_and_outputs_match_a_local_run(store: Server, tmp_path: Path) -> None:
    local = sample_tree(tmp_path / "in")
    bucket = store.bucket()
    url = f"{store.scheme}://{bucket}/manifests"
    upload_tree(store, local, url)
    found = discover_manifests(url + "/")
    assert [f[len(url) + 1:] for f in found] == [p.relative_to(local).as_posix() for p in discover_manifests(local)]
    assert [f.stat().st_size for f in found] == [p.stat().st_size for p in discover_manifests(local)]

    out = f"{store.scheme}://{bucket}/out"
    run_luigi("--manifest-path", url, "--output-dir", out, cwd=tmp_path, workers=2, env=store.env)
    run_luigi("--manifest-path", str(local), "--output-dir", "disk", cwd=tmp_path, workers=2)
    got = download(store, out, tmp_path / "got")
    assert final_bytes(got) == final_bytes(tmp_path / "disk")
    assert counts(got) == counts(tmp_path / "disk")
    assert json.loads((got / "summary.json").read_text())["inputs"] == [url]


def test_a_manifest_object_into_the_store_then_a_rerun_does_nothing(store: Server, tmp_path: Path) -> None:
    manifest = write_repeated_sample(tmp_path / "input.jsonl", ENTRIES)
    bucket = store.bucket()
    store.filesystem().put_file(str(manifest), f"{bucket}/in/input.jsonl")
    url, out = f"{store.scheme}://{bucket}/in/input.jsonl", f"{store.scheme}://{bucket}/out"
    args = ("--manifest-path", url, "--output-dir", out, *PARTITION_ARGS)
    first = run_luigi(*args, cwd=tmp_path, workers=2, env=store.env)
    assert f"outputs in {out}" in first.stdout
    run_luigi("--manifest-path", str(manifest), "--output-dir", "disk", *PARTITION_ARGS, cwd=tmp_path, workers=2)
    got = download(store, out, tmp_path / "got")
    assert final_bytes(got) == final_bytes(tmp_path / "disk")
    assert counts(got) == counts(tmp_path / "disk")
    again = run_luigi(*args, "--log-level", "INFO", cwd=tmp_path, workers=2, env=store.env)
    assert f"outputs in {out} are up to date: nothing to do" in again.stdout
    assert ran_tasks(again, "AlmPart") == 0 and ran_tasks(again, "AlmWindows") == 0


def test_sigkill_then_resume_is_byte_identical(store: Server, tmp_path: Path) -> None:
    manifest = write_repeated_sample(tmp_path / "input.jsonl", ENTRIES)
    bucket = store.bucket()
    store.filesystem().put_file(str(manifest), f"{bucket}/in/input.jsonl")
    out = f"{store.scheme}://{bucket}/out"
    args = ("--manifest-path", f"{store.scheme}://{bucket}/in/input.jsonl", "--output-dir", out, *PARTITION_ARGS)
    run_luigi("--manifest-path", str(manifest), "--output-dir", "disk", *PARTITION_ARGS, cwd=tmp_path)
    remote = store.filesystem()
    killed_after_a_partition(args, store.env, remote, out, tmp_path)
    assert not remote.exists(f"{bucket}/out/.alm_state.json"), "the run finished before it could be killed"
    resumed = run_luigi(*args, "--log-level", "INFO", cwd=tmp_path, workers=2, env=store.env)
    assert "PIPELINE COMPLETE" in resumed.stdout
    assert 0 < ran_tasks(resumed, "AlmPart") < json.loads((tmp_path / "disk" / "summary.json").read_text())["partitions"]
    assert final_bytes(download(store, out, tmp_path / "got")) == final_bytes(tmp_path / "disk")


def test_two_workers_sharing_only_luigid_and_the_store(store: Server, tmp_path: Path) -> None:
    manifest = write_repeated_sample(tmp_path / "input.jsonl", ENTRIES)
    bucket = store.bucket()
    store.filesystem().put_file(str(manifest), f"{bucket}/in/input.jsonl")
    out = f"{store.scheme}://{bucket}/out"
    run_luigi("--manifest-path", str(manifest), "--output-dir", "disk", *PARTITION_ARGS, cwd=tmp_path)
    args = ("--manifest-path", f"{store.scheme}://{bucket}/in/input.jsonl", "--output-dir", out, *PARTITION_ARGS)
    ran = on_two_machines(args, store.env, tmp_path)
    assert ran and max(ran.values()) == 1, [t for t, n in ran.items() if n > 1]
    assert sum(1 for t in ran if t.startswith("AlmPart(")) > 1
    assert final_bytes(download(store, out, tmp_path / "got")) == final_bytes(tmp_path / "disk")


def test_the_shar_export_into_the_store_equals_a_local_export(
    store: Server, job: dict[str, Any], tmp_path: Path
) -> None:
    out = f"{store.scheme}://{store.bucket()}/out"
    args = ("--manifest-path", str(job["manifest"]), "--output-dir", out, *SHAR_OPTIONS)
    luigi_shar(*args, cwd=tmp_path, workers=2, env=store.env)
    url = shar_url(store, out)
    assert bucket_files(store, url) == job["shards"]
    state = bucket_files(store, url + ".export")
    assert state["rejects.jsonl"] == job["rejects"]
    assert without_paths(orjson.loads(state["summary.json"])) == without_paths(job["summary"])
    again = luigi_shar(*args, cwd=tmp_path, env=store.env)
    assert "SHAR EXPORT COMPLETE" not in again.stdout


def test_create_once_creates_only_once(store: Server) -> None:
    """The merge lock's conditional put: the store itself refuses the second create."""
    url = f"{store.scheme}://{store.bucket()}/x/.alm.lock"
    assert objects.create_once(url, b"first")
    assert not objects.create_once(url, b"second")
    assert objects.read_bytes(url) == b"first"
    if isinstance(store, AzureServer):  # adlfs's other scheme names the same blob
        assert not objects.create_once(url.replace("az://", "abfs://", 1), b"second")
    objects.remove(url)
    assert not objects.exists(url)
    assert objects.create_once(url, b"third") and objects.read_bytes(url) == b"third"


def _failing_upload(url: str, size: int) -> None:
    """A writer that fails after writing; its handle is garbage once this returns."""
    try:
        with objects.object_writer(url) as out:
            out.write(b"x" * size)
            raise RuntimeError("the merge failed")
    except RuntimeError:
        pass


@pytest.mark.parametrize("size", [10, 20 << 20])
def test_a_failed_writer_leaves_no_object(store: Server, size: int) -> None:
    """An upload whose writer fails is discarded, and never completed later (when the
    abandoned handle is collected: adlfs's handle would commit its blocks then)."""
    import gc

    url = f"{store.scheme}://{store.bucket()}/out/alm_output.jsonl"
    _failing_upload(url, size)
    gc.collect()
    assert not objects.exists(url)
    assert objects.children(url.rsplit("/", 2)[0]) == []


@pytest.mark.parametrize("where, reason", [*STORE_ERRORS, ("access", "access denied")])
def test_errors_name_the_url_and_the_reason(store: Server, tmp_path: Path, where: str, reason: str) -> None:
    manifest, out = error_case(where, store, tmp_path)
    env = store.env
    if where.endswith("endpoint"):
        if where == "endpoint" and isinstance(store, AzureServer):
            pytest.skip("the output case covers Azure: its SDK retries an unreachable endpoint for 90 s each time")
        env = store.unreachable_env
    elif where == "access":
        if not isinstance(store, AzureServer):
            pytest.skip("fake-gcs-server checks no credentials (Azurite checks the account key)")
        env = store.wrong_key_env
    error = one_error_line(run_luigi("--manifest-path", manifest, "--output-dir", out, cwd=tmp_path, env=env, expect=35))
    assert reason in error
    assert (manifest if where.startswith("manifest") or where == "endpoint" else out) in error


def test_backend_errors_in_one_line() -> None:
    """The words gcsfs and the Azure SDK use for a missing bucket, refused credentials
    and an endpoint that does not answer."""
    from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError, ServiceRequestError
    from gcsfs.retry import HttpError

    assert fs.reason_of(ResourceNotFoundError("The specified container does not exist.\nRequestId:1")) == fs.NO_BUCKET
    assert fs.reason_of(OSError("Forbidden: b/alm/o\nno storage.objects.get")) == "access denied (Forbidden: b/alm/o)"
    assert fs.reason_of(HttpError({"code": 401, "message": "Anonymous caller"})).startswith("access denied")
    assert fs.reason_of(ClientAuthenticationError("Server failed to authenticate the request.")).startswith("access denied")
    refused = ServiceRequestError("Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed]")
    assert fs.reason_of(refused).startswith("endpoint unreachable (Cannot connect")
    assert fs.reason_of(FileNotFoundError("b/alm/o")) == fs.NO_OBJECT
    missing = fs.describe(FileNotFoundError("The specified bucket does not exist"), "s3://gone/x")
    assert isinstance(missing, FileNotFoundError) and str(missing) == "s3://gone/x: no such bucket"
