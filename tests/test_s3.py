"""Object storage through a local S3 server (moto): manifests read from a bucket (a file
and a prefix), outputs and checkpoints written to it, equal to a local run's bytes and
to the reference's values; errors that name the URL and the reason."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from alm_lhotse import fs
from alm_lhotse.reading.discovery import discover_manifests
from alm_lhotse.sample import sample_entries
from tests.conftest import ORACLE, require_shared
from tests.s3_server import S3Server, free_port, s3_server  # noqa: F401 - the fixture
from tests.test_pipeline import FINAL_FILES, _assert_matches_oracle, _oracle_case, final_bytes, run_luigi, summary


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:  # noqa: F811
    """The server's endpoint and keys in this process's environment too. s3fs keeps one
    client per set of options, whatever the environment says, and each test module that
    imports ``s3_server`` starts a server of its own: no client of another is reused."""
    from s3fs import S3FileSystem

    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    fs.configure({})
    S3FileSystem.clear_instance_cache()
    yield s3_server
    S3FileSystem.clear_instance_cache()
    fs.configure({})


def upload_tree(server: S3Server, local: Path, url: str) -> None:
    store = server.filesystem()
    for path in sorted(local.rglob("*")):
        if path.is_file():
            store.put_file(str(path), f"{url.split('://', 1)[1]}/{path.relative_to(local).as_posix()}")


def download(server: S3Server, url: str, local: Path) -> Path:
    store = server.filesystem()
    for name in [*FINAL_FILES, "summary.json" if store.exists(f"{url.split('://', 1)[1]}/summary.json") else "prepare_summary.json"]:
        target = local / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.cat_file(f"{url.split('://', 1)[1]}/{name}"))
    return local


def sample_tree(root: Path) -> Path:
    """Manifests in names whose directory-walk order differs from plain key order."""
    lines = "".join(json.dumps(e) + "\n" for e in sample_entries()).encode()
    for name, data in [
        ("b/x.jsonl", lines), ("a.jsonl.gz", gzip.compress(lines, mtime=0)), ("a-b/z.json", lines),
        ("a/y.jsonl", lines[: len(lines) // 2].rsplit(b"\n", 1)[0] + b"\n"), ("notes.txt", b"not a manifest"),
    ]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def counts(out: Path) -> dict[str, Any]:
    data = summary(out)
    return {k: v for k, v in data.items() if k not in ("timings", "inputs", "fingerprint")}


def test_a_prefix_is_searched_like_a_directory(s3: S3Server, tmp_path: Path) -> None:
    local = sample_tree(tmp_path / "in")
    url = f"s3://{s3.bucket()}/manifests"
    upload_tree(s3, local, url)
    found = discover_manifests(url + "/")
    assert [f[len(url) + 1:] for f in found] == [p.relative_to(local).as_posix() for p in discover_manifests(local)]
    assert [f.stat().st_size for f in found] == [p.stat().st_size for p in discover_manifests(local)]

    run_luigi("--manifest-path", url, "--output-dir", "from_s3", cwd=tmp_path, workers=2)
    run_luigi("--manifest-path", str(local), "--output-dir", "from_disk", cwd=tmp_path, workers=2)
    assert final_bytes(tmp_path / "from_s3") == final_bytes(tmp_path / "from_disk")
    assert counts(tmp_path / "from_s3") == counts(tmp_path / "from_disk")
    assert summary(tmp_path / "from_s3")["inputs"] == [url]


def test_a_manifest_object_and_outputs_in_the_bucket_match_the_reference(s3: S3Server, tmp_path: Path) -> None:
    require_shared()
    case = _oracle_case("seed1_default")
    bucket = s3.bucket()
    s3.filesystem().put_file(str(ORACLE / case["input"]), f"{bucket}/in/{Path(case['input']).name}")
    manifest, out = f"s3://{bucket}/in/{Path(case['input']).name}", f"s3://{bucket}/out"
    first = run_luigi("--manifest-path", manifest, "--output-dir", out, cwd=tmp_path, workers=2)
    assert f"outputs in {out}" in first.stdout
    got = download(s3, out, tmp_path / "got")
    _assert_matches_oracle(got, case)
    run_luigi("--manifest-path", str(ORACLE / case["input"]), "--output-dir", "disk", cwd=tmp_path)
    assert final_bytes(got) == final_bytes(tmp_path / "disk")
    again = run_luigi("--manifest-path", manifest, "--output-dir", out, cwd=tmp_path)
    assert f"outputs in {out} are up to date: nothing to do" in again.stdout


def test_storage_options_from_the_parameter_and_the_cfg_section(s3: S3Server, tmp_path: Path) -> None:
    local = sample_tree(tmp_path / "in")
    bucket = s3.bucket()
    upload_tree(s3, local, f"s3://{bucket}/in")
    no_endpoint = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    options = json.dumps({"client_kwargs": {"endpoint_url": s3.endpoint}})
    run_luigi("--manifest-path", f"s3://{bucket}/in", "--output-dir", f"s3://{bucket}/p", "--storage-options", options,
              cwd=tmp_path, env=no_endpoint)
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text(f"[storage]\nendpoint_url = {s3.endpoint}\n")
    run_luigi("--manifest-path", f"s3://{bucket}/in", "--output-dir", f"s3://{bucket}/c", cwd=tmp_path,
              env={**no_endpoint, "LUIGI_CONFIG_PATH": str(cfg)})
    assert final_bytes(download(s3, f"s3://{bucket}/p", tmp_path / "p")) == final_bytes(download(s3, f"s3://{bucket}/c", tmp_path / "c"))


STORE_ERRORS = [
    ("manifest_bucket", "no such bucket"),
    ("manifest_key", "no such object or prefix"),
    ("output_bucket", "is not writable: no such bucket"),
    ("endpoint", "endpoint unreachable"),
    ("output_endpoint", "endpoint unreachable"),
]


def error_case(where: str, server: Any, tmp_path: Path) -> tuple[str, str]:
    """The manifest and the output of a storage error case in a new bucket: a missing
    bucket or object, or a local manifest where only the output is to fail."""
    bucket, scheme = server.bucket(), getattr(server, "scheme", "s3")
    server.filesystem().pipe_file(f"{bucket}/in/a.jsonl", json.dumps(sample_entries()[0]).encode() + b"\n")
    manifest, out = f"{scheme}://{bucket}/in", f"{scheme}://{bucket}/out"
    if where == "manifest_bucket":
        manifest = f"{scheme}://no-such-bucket-alm/in"
    elif where == "manifest_key":
        manifest = f"{scheme}://{bucket}/nothing/here.jsonl"
    elif where == "output_bucket":
        out = f"{scheme}://no-such-bucket-alm/out"
    elif where in ("output_endpoint", "access"):
        manifest = str(tmp_path / "a.jsonl")
        (tmp_path / "a.jsonl").write_text(json.dumps(sample_entries()[0]) + "\n")
    return manifest, out


def one_error_line(proc: Any) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize("where, reason", [*STORE_ERRORS, ("options", "storage options: must be a JSON object")])
def test_errors_name_the_url_and_the_reason(s3: S3Server, tmp_path: Path, where: str, reason: str) -> None:
    manifest, out = error_case(where, s3, tmp_path)
    env, extra = {}, []
    if where.endswith("endpoint"):
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    elif where == "options":
        extra = ["--storage-options", "[1, 2]"]
    error = one_error_line(run_luigi("--manifest-path", manifest, "--output-dir", out, *extra, cwd=tmp_path, env=env, expect=35))
    assert reason in error
    if where != "options":
        assert (manifest if "manifest" in where else out if where == "output_bucket" else "s3://") in error


def test_cli_reads_a_manifest_url(s3: S3Server, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from alm_lhotse.cli import cli

    local = sample_tree(tmp_path / "in")
    bucket = s3.bucket()
    upload_tree(s3, local, f"s3://{bucket}/in")
    runner = CliRunner()
    remote = runner.invoke(cli, ["prepare", "alm", f"s3://{bucket}/in", str(tmp_path / "r")])
    assert remote.exit_code == 0, remote.output
    assert runner.invoke(cli, ["prepare", "alm", str(local), str(tmp_path / "l")]).exit_code == 0
    assert final_bytes(tmp_path / "r") == final_bytes(tmp_path / "l")
    missing = runner.invoke(cli, ["prepare", "alm", "s3://no-such-bucket-alm/in", str(tmp_path / "m")])
    assert missing.exit_code != 0 and "Error: s3://no-such-bucket-alm/in: no such bucket" in missing.output
    shutil.rmtree(tmp_path / "m", ignore_errors=True)
    out = f"s3://{bucket}/cli-out"
    to_s3 = runner.invoke(cli, ["prepare", "alm", "-j", "2", f"s3://{bucket}/in", out, "--storage-options", "{}"])
    assert to_s3.exit_code == 0 and f"in {out}" in to_s3.output, to_s3.output
    assert final_bytes(download(s3, out, tmp_path / "o")) == final_bytes(tmp_path / "l")
    bad = runner.invoke(cli, ["prepare", "alm", str(local), out, "--storage-options", "nope"])
    assert bad.exit_code != 0 and "Error: storage options: not valid JSON" in bad.output


def test_a_large_object_is_planned_like_the_same_file(s3: S3Server, tmp_path: Path) -> None:
    """Objects are cut on the same line boundaries as local files (read once as a stream)."""
    import random

    from alm_lhotse.execution.partitions import plan_partitions

    rng = random.Random(5)
    bucket = s3.bucket()
    for case in range(12):
        lines = [b"x" * rng.randint(0, 300) for _ in range(rng.randint(1, 200))]
        data = b"\n".join(lines) + (b"\n" if case % 2 else b"")
        local = tmp_path / f"m{case}.jsonl"
        local.write_bytes(data)
        s3.filesystem().pipe_file(f"{bucket}/m{case}.jsonl", data)
        remote = discover_manifests(f"s3://{bucket}/m{case}.jsonl")
        for step in (1, 97, 1000):
            got = [[(s.start, s.stop, s.first_line) for s in p] for p in plan_partitions(remote, step, None)]
            want = [[(s.start, s.stop, s.first_line) for s in p] for p in plan_partitions([local], step, None)]
            assert got == want, (case, step)


@pytest.mark.parametrize("sizes", [[0], [10, 20], [6 << 20, 10, 7 << 20], [1 << 20, 6 << 20, 3 << 20, 12 << 20, 100, 5 << 20]])
def test_objects_concatenate_by_server_side_copy_or_streaming(s3: S3Server, tmp_path: Path, sizes: list[int]) -> None:
    """The merge's concatenation: large parts copied by the store, small ones batched
    into parts of at least 5 MiB; from local files, streamed. Equal bytes either way."""
    import random

    from alm_lhotse import objects

    bucket = s3.bucket()
    rng = random.Random(len(sizes))
    datas = [rng.randbytes(size) for size in sizes]
    sources = []
    for i, data in enumerate(datas):
        s3.filesystem().pipe_file(f"{bucket}/part{i}", data)
        sources.append(f"s3://{bucket}/part{i}")
        (tmp_path / f"part{i}").write_bytes(data)
    objects.concatenate_into(sources, f"s3://{bucket}/out/copied")
    objects.concatenate_into([tmp_path / f"part{i}" for i in range(len(sizes))], f"s3://{bucket}/out/streamed")
    store = s3.filesystem()
    assert store.cat_file(f"{bucket}/out/copied") == b"".join(datas)
    assert store.cat_file(f"{bucket}/out/streamed") == b"".join(datas)
    assert not store.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads")


def test_file_urls_are_local_paths(tmp_path: Path) -> None:
    local = sample_tree(tmp_path / "in")
    assert discover_manifests(f"file://{local}") == discover_manifests(local)
    run_luigi("--manifest-path", f"file://{local}", "--output-dir", f"file://{tmp_path}/u", cwd=tmp_path)
    run_luigi("--manifest-path", str(local), "--output-dir", "p", cwd=tmp_path)
    assert final_bytes(tmp_path / "u") == final_bytes(tmp_path / "p")


def test_storage_errors_are_one_line_reasons() -> None:
    assert fs.reason_of(FileNotFoundError("The specified bucket does not exist")) == "no such bucket"
    assert fs.reason_of(PermissionError("Access Denied")) == "access denied (Access Denied)"
    assert fs.reason_of(FileNotFoundError("bucket/key")) == "no such object or prefix"
