"""Audio sources in object storage (a local S3 server): the Shar export and the
audio-aware conversion read ``s3://`` audio as they read local files (the export into
a bucket is tested in ``test_s3_shar``)."""

from __future__ import annotations

import copy
import tarfile
from pathlib import Path

import orjson
import pytest

from alm_lhotse.audio import AudioCompletion
from alm_lhotse.errors import InvalidEntry
from alm_lhotse.flac_frames import FrameIndex
from alm_lhotse.recipe import prepare_alm
from alm_lhotse.shar import export_shar
from alm_lhotse.shar_write import SharExportError
from tests.s3_server import S3Server, s3_server  # noqa: F401 - the fixture
from tests.test_audio import write_conversations
from tests.test_s3 import s3  # noqa: F401 - the fixture


def to_bucket(server: S3Server, manifest: Path, url: str) -> Path:
    """The manifest's audio uploaded under ``url``, and a manifest naming it by URL."""
    store = server.filesystem()
    lines = []
    for line in manifest.read_bytes().splitlines():
        entry = orjson.loads(line)
        local = Path(entry["audio_filepath"])
        entry["audio_filepath"] = f"{url}/{local.name}"
        store.put_file(str(local), entry["audio_filepath"].split("://", 1)[1])
        lines.append(orjson.dumps(entry))
    remote = manifest.with_name("remote.jsonl")
    remote.write_bytes(b"\n".join(lines) + b"\n")
    return remote


def audio_members(shar_dir: Path) -> list[tuple[str, bytes]]:
    """Every stored window's audio file in order, by shard (the window ids hash the path)."""
    found = []
    for tar_path in sorted(shar_dir.glob("recording.*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                if member.isfile() and not member.name.endswith(".json"):
                    found.append((tar_path.name, tar.extractfile(member).read()))
    return found


@pytest.mark.parametrize("ext", ["wav", "flac"])  # decoded and encoded; FLAC frames copied
def test_shards_from_s3_audio_equal_those_from_local_audio(
    s3: S3Server, tmp_path: Path, ext: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    streamed: list[object] = []
    of_stream = FrameIndex.of_stream.__func__
    monkeypatch.setattr(FrameIndex, "of_stream", classmethod(lambda cls, s: streamed.append(s) or of_stream(cls, s)))
    local = write_conversations(tmp_path / "data", count=1, ext=ext)
    remote = to_bucket(s3, local, f"s3://{s3.bucket()}/audio")
    shars = {}
    for name, manifest in [("local", local), ("s3", remote)]:
        prepare_alm(manifest, tmp_path / f"out-{name}", progress=False)
        cuts = tmp_path / f"out-{name}/lhotse/alm_cuts_windows_all.jsonl.gz"
        summary = export_shar(cuts, tmp_path / f"shar-{name}", shard_duration=100, progress=False)
        assert summary["written"] > 0 and summary["rejected"] == 0
        shars[name] = audio_members(tmp_path / f"shar-{name}")
    assert shars["s3"] == shars["local"] and len(shars["s3"]) == summary["written"]
    assert len(streamed) == (summary["shards"] if ext == "flac" else 0)  # FLAC frames copied from the object


def test_a_missing_audio_object_is_reported_like_a_missing_file(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    local = write_conversations(tmp_path / "data", count=1)
    url = f"s3://{s3.bucket()}/audio"
    remote = to_bucket(s3, local, url)
    prepare_alm(remote, tmp_path / "out", progress=False)
    s3.filesystem().rm_file(f"{url}/conv0.wav".split("://", 1)[1])
    with pytest.raises(SharExportError, match=r"s3://.*/conv0\.wav: file does not exist"):
        export_shar(tmp_path / "out/lhotse/alm_cuts_windows_all.jsonl.gz", tmp_path / "shar", progress=False)


def test_headers_and_bandwidths_come_from_s3_audio(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    local = write_conversations(tmp_path / "data", count=1, rate=32000, cutoff=4000, with_bandwidth=False)
    url = f"s3://{s3.bucket()}/audio"
    remote = to_bucket(s3, local, url)
    hook = AudioCompletion(read_headers=True, estimate_bandwidth=True)
    done = {}
    for name, manifest in [("local", local), ("s3", remote)]:
        entry = orjson.loads(manifest.read_bytes().splitlines()[0])
        entry["audio_sample_rate"] = entry["duration"] = None
        done[name] = hook(entry)
    assert done["s3"]["audio_sample_rate"] == done["local"]["audio_sample_rate"] == 32000
    assert done["s3"]["duration"] == done["local"]["duration"] == 260.0
    assert [s["metrics"] for s in done["s3"]["segments"]] == [s["metrics"] for s in done["local"]["segments"]]
    missing = copy.deepcopy(orjson.loads(remote.read_bytes().splitlines()[0]))
    missing["audio_filepath"] = f"{url}/absent.wav"
    with pytest.raises(InvalidEntry, match=r"absent\.wav\) does not exist"):
        hook(missing)
