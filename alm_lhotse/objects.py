"""What object stores offer instead of rename and flock, for locations of ``alm_lhotse.fs``.

- An object appears whole or not at all: a single PUT, or a multipart (resumable,
  block-list) upload that the backend completes only when the writer closes it. A
  writer that fails discards its upload; one that is killed never completes it.
- A checkpoint (a "directory" of objects) is complete when its marker object, uploaded
  last, exists: objects are written once and never changed afterwards.
- A lock is an object created with a conditional put (``If-None-Match: *``): only one
  creator succeeds (``alm_lhotse.object_lock``).
- A killed writer's multipart upload stays, unseen but stored, until it is aborted
  (``abort_uploads``) by a run that knows no one else writes those keys.

Plain paths take the local implementations in ``alm_lhotse.storage``.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Optional, Sequence

from alm_lhotse import storage
from alm_lhotse.fs import Location, StorageError, describe, filesystem, is_url, join, reason_of

COPY_BLOCK = 8 << 20  # multipart part size (S3 wants at least 5 MiB) and copy buffer


@contextlib.contextmanager
def _explained(url: str) -> Iterator[None]:
    """Backend errors as one line naming the URL (a missing object, or an existing one
    refused by a conditional put, stays itself; a missing bucket is a ``MissingBucket``,
    still "not found" but with its reason)."""
    try:
        yield
    except (FileExistsError, StorageError):
        raise
    except FileNotFoundError as exc:
        missing = describe(exc, url)
        if isinstance(missing, FileNotFoundError):
            raise missing from None
        raise
    except Exception as exc:  # noqa: BLE001 - botocore, aiohttp, google errors alike
        raise describe(exc, url) from None


def exists(loc: Location) -> bool:
    if not is_url(loc):
        return os.path.exists(loc)
    fs, path = filesystem(loc)
    with _explained(loc):
        return fs.exists(path)


def read_bytes(loc: Location) -> bytes:
    """The whole object or file; FileNotFoundError when there is none."""
    if not is_url(loc):
        return Path(loc).read_bytes()
    fs, path = filesystem(loc)
    with _explained(loc):
        return fs.cat_file(path)


def write_bytes(loc: Location, data: bytes) -> None:
    """Replace ``loc`` atomically (a file by temp + rename, an object by one put)."""
    if not is_url(loc):
        storage.write_atomic(Path(loc), data)
        return
    fs, path = filesystem(loc)
    with _explained(loc):
        fs.pipe_file(path, data)


def create_once(loc: Location, data: bytes) -> bool:
    """Create ``loc`` only if it does not exist (a conditional put); returns whether
    this call created it."""
    if not is_url(loc):
        Path(loc).parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(loc, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True
    fs, path = filesystem(loc)
    try:
        with _explained(loc):
            fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return False
    return True


def remove(loc: Location) -> None:
    """Remove a file or object, or a whole prefix/directory; nothing there is fine."""
    if not is_url(loc):
        storage.remove_tree(Path(loc))
        return
    fs, path = filesystem(loc)
    with contextlib.suppress(FileNotFoundError), _explained(loc):
        if fs.isdir(path):
            fs.rm(path, recursive=True)
        else:
            fs.rm_file(path)
    fs.invalidate_cache()


def children(loc: Location) -> list[str]:
    """Names directly below a directory or prefix (none when it does not exist)."""
    if not is_url(loc):
        return sorted(os.listdir(loc)) if os.path.isdir(loc) else []
    fs, path = filesystem(loc)
    fs.invalidate_cache(path)
    with contextlib.suppress(FileNotFoundError), _explained(loc):
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    return []


def upload_checkpoint(local_dir: Path, loc: str, marker: str) -> None:
    """Upload a finished local checkpoint directory under the prefix ``loc``, its
    ``marker`` file last: the checkpoint counts as complete only once the marker is
    there. Rewriting it (a concurrent worker, a resumed run) puts equal bytes."""
    names = sorted(p.relative_to(local_dir).as_posix() for p in local_dir.rglob("*") if p.is_file())
    for name in [n for n in names if n != marker] + [marker]:
        upload_file(local_dir / name, f"{loc}/{name}")


@contextlib.contextmanager
def object_writer(loc: Location) -> Iterator[IO[bytes]]:
    """A binary writer of a file or object that appears only when the block succeeds:
    a temp file renamed into place, or a multipart upload completed on close (one put
    for a small object); discarded when the block fails. Closing the writer inside the
    block is fine."""
    if not is_url(loc):
        with storage.atomic_path(Path(loc), keep_suffix=True) as tmp, open(tmp, "wb") as handle:
            yield handle
        return
    fs, path = filesystem(str(loc))
    with _explained(str(loc)):
        handle = fs.open(path, "wb", block_size=COPY_BLOCK)
    try:
        yield handle
    except BaseException:
        handle.discard()
        handle.closed = True  # adlfs's discard keeps the blocks: a collected open handle would commit them
        raise
    with _explained(str(loc)):
        handle.close()
    fs.invalidate_cache()


def concatenate_into(sources: Sequence[Location], target: str) -> None:
    """Write the concatenation of ``sources`` as the object ``target`` (gzip members
    concatenate into valid gzip): on S3, from objects of the same store, with
    server-side copies (``_compose_s3``); else streamed through a bounded buffer."""
    fs, _ = filesystem(target)
    if hasattr(fs, "call_s3") and sources and all(is_url(s) and filesystem(s)[0] is fs for s in sources):
        with _explained(target):
            _compose_s3(fs, [str(s) for s in sources], target)
        fs.invalidate_cache()
        return
    with object_writer(target) as out:
        for source in sources:
            with _open_source(source) as src:
                while True:
                    block = src.read(COPY_BLOCK)
                    if not block:
                        break
                    out.write(block)


MIN_PART = 5 << 20  # S3's smallest part but the last
MAX_COPY = 4 << 30  # below S3's largest part (5 GiB)


def _compose_s3(fs, sources: list[str], target: str) -> None:  # noqa: ANN001 - an s3fs filesystem
    """One multipart upload whose parts are server-side copies (``UploadPartCopy``) of
    every source large enough to be a part, so the merge's bulk never passes through
    this process; smaller sources are read and sent as parts of at least 5 MiB (what S3
    requires of every part but the last). Completed last, aborted on any failure."""
    bucket, key, _ = fs.split_path(target)
    sizes = [fs.info(src)["size"] for src in sources]
    upload = fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)["UploadId"]
    where = {"Bucket": bucket, "Key": key, "UploadId": upload}
    parts: list[dict[str, object]] = []
    pending = bytearray()

    def send() -> None:
        number = len(parts) + 1
        reply = fs.call_s3("upload_part", PartNumber=number, Body=bytes(pending), **where)
        parts.append({"PartNumber": number, "ETag": reply["ETag"]})
        pending.clear()

    try:
        for src, size in zip(sources, sizes):
            fill = max(0, MIN_PART - len(pending)) if pending else 0
            if size - fill < MIN_PART:
                with fs.open(src, "rb", block_size=COPY_BLOCK, cache_type="none") as handle:
                    while block := handle.read(COPY_BLOCK):
                        pending += block
                        if len(pending) >= COPY_BLOCK:
                            send()
                continue
            if pending:
                pending += fs.cat_file(src, start=0, end=fill)
                send()
            src_bucket, src_key, _ = fs.split_path(src)
            for start in range(fill, size, MAX_COPY):
                stop = min(size, start + MAX_COPY) if size - start - MAX_COPY >= MIN_PART else size
                number = len(parts) + 1
                reply = fs.call_s3("upload_part_copy", PartNumber=number, CopySource={"Bucket": src_bucket, "Key": src_key},
                                   CopySourceRange=f"bytes={start}-{stop - 1}", **where)
                parts.append({"PartNumber": number, "ETag": reply["CopyPartResult"]["ETag"]})
                if stop == size:
                    break
        if pending or not parts:
            send()
        fs.call_s3("complete_multipart_upload", MultipartUpload={"Parts": parts}, **where)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.call_s3("abort_multipart_upload", **where)
        raise


def _open_source(source: Location):
    if not is_url(source):
        return open(source, "rb")
    fs, path = filesystem(source)
    with _explained(source):
        return fs.open(path, "rb", block_size=COPY_BLOCK, cache_type="none")


def upload_file(local: Path, target: str) -> None:
    """Upload a local file as one object, appearing only when complete, through the
    same bounded buffer as any copy (whole-file uploads buffer up to 100 MiB)."""
    concatenate_into([local], target)


def s3_object(loc: str) -> Optional[tuple[Any, str, str]]:
    """(s3fs filesystem, bucket, key) of an ``s3://`` location, else None: writes
    conditional on an existing object's ETag and listing unfinished multipart uploads
    are S3's."""
    fs, path = filesystem(loc)
    if not hasattr(fs, "call_s3"):
        return None
    bucket, key, _ = fs.split_path(path)
    return fs, bucket, key


def s3_conditional(loc: str, operation: str, **params: Any) -> Optional[dict[str, Any]]:
    """The S3 call ``operation`` on the object ``loc`` (an ``s3_object``), usually with a
    precondition (``IfMatch``); None when the precondition failed or there is no object."""
    fs, bucket, key = s3_object(loc)  # type: ignore[misc]
    try:
        reply = fs.call_s3(operation, Bucket=bucket, Key=key, **params)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - s3fs wraps botocore's error in an OSError
        response = getattr(exc.__cause__, "response", None) or {}
        if response.get("Error", {}).get("Code") == "PreconditionFailed":
            return None
        raise describe(exc, loc) from None
    fs.invalidate_cache()
    return reply


def remove_all_but(directory: Location, keep: Iterable[str]) -> None:
    """Remove every entry of a directory or prefix whose name is not in ``keep``."""
    kept = set(keep)
    for name in children(directory):
        if name not in kept:
            remove(join(directory, name))


def abort_uploads(prefix: str, owned: Callable[[str], bool] = lambda key: True) -> int:
    """Abort the unfinished multipart uploads under ``prefix`` whose key (relative to
    it) ``owned`` accepts (default: all); returns how many. A killed writer leaves its
    upload behind, invisible but stored (and billed); the caller knows no one else
    writes those keys now. S3 only: GCS resumable uploads and Azure uncommitted blocks
    expire by themselves (after a week)."""
    found = s3_object(prefix)
    if found is None:
        return 0
    fs, bucket, key = found
    base = key.rstrip("/") + "/"
    aborted = 0
    marker: dict[str, str] = {}
    with _explained(prefix):
        while True:
            page = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=base, **marker)
            for upload in page.get("Uploads", []):
                if owned(upload["Key"][len(base):]):
                    with contextlib.suppress(FileNotFoundError):
                        fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    aborted += 1
            if not page.get("IsTruncated"):
                return aborted
            marker = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}


def unwritable_reason(directory: Location) -> Optional[str]:
    """Why nothing can be written under ``directory`` (no such bucket, access denied,
    endpoint unreachable, a read-only filesystem, ...), or None: found by writing and
    removing a probe, so a run can say it before any work."""
    probe = join(directory, f".probe-{socket.gethostname()}-{os.getpid()}")
    try:
        write_bytes(probe, b"")
        remove(probe)
    except StorageError as exc:
        return exc.reason
    except OSError as exc:
        return reason_of(exc) if is_url(directory) else exc.strerror or str(exc)
    return None
