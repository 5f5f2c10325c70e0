"""Locations: a plain path or an fsspec URL (``s3://``, ``gs://``, ``az://``, ...).

The storage layer's front door for everything that may live in object storage. Plain
paths and ``file://`` URLs stay ``Path`` objects and keep the local fast paths (mmap,
``copy_file_range``, rename, ``flock`` in ``alm_lhotse.storage``); anything else goes
through fsspec (s3fs, gcsfs, adlfs, installed with ``alm-lhotse[cloud]``), configured
by the storage options (the reference's ``storage_options``) plus the backends' standard
credential chains (``AWS_ENDPOINT_URL``, ``AWS_*``, ``GOOGLE_APPLICATION_CREDENTIALS``).
What object stores can do instead of rename and flock is in ``alm_lhotse.objects``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import IO, Any, Mapping, NamedTuple, Optional, Union

import orjson

Location = Union[Path, str]
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_LOCAL_SCHEMES = ("file", "local")
# Read buffers: bounded, so a remote manifest streams with flat memory.
READ_BLOCK = 4 << 20
_options: dict[str, Any] = {}


class StorageError(ValueError):
    """A location that cannot be read or written, with the reason in one line."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


class MissingBucket(StorageError, FileNotFoundError):
    """A location in a bucket that does not exist: still "not found" to a caller that
    treats a missing object as absent, with the reason for one that explains it."""


def is_url(location: Any) -> bool:
    """Whether ``location`` names object storage (a URL that is not ``file://``)."""
    if not isinstance(location, str):
        return False
    match = _SCHEME.match(location)
    return match is not None and match.group(1).lower() not in _LOCAL_SCHEMES


def local_path(text: Union[str, os.PathLike]) -> Union[str, bytes]:
    """A local path as given, or the path of a ``file://`` URL."""
    raw = os.fspath(text)
    if isinstance(raw, str) and _SCHEME.match(raw):
        return raw.split("://", 1)[1]
    return raw


def location(text: Union[str, os.PathLike]) -> Location:
    """A location as the pipeline keys it: a URL without trailing slashes, or an
    absolute ``Path`` (``file://`` URLs included)."""
    if is_url(text):
        return str(text).rstrip("/")
    return Path(os.path.abspath(local_path(text)))


def join(base: Location, *names: str) -> Location:
    """``base / name / ...`` for either kind of location."""
    if isinstance(base, str):
        return "/".join([base.rstrip("/"), *names])
    return base.joinpath(*names)


def name_of(loc: Location) -> str:
    return loc.rstrip("/").rsplit("/", 1)[-1] if isinstance(loc, str) else loc.name


def configure(options: Optional[Mapping[str, Any]]) -> None:
    """Set the storage options every URL of this process is opened with (fsspec keyword
    arguments, e.g. ``{"client_kwargs": {"endpoint_url": ...}}`` or ``{"anon": true}``)."""
    _options.clear()
    _options.update(options or {})


def parse_options(text: str) -> dict[str, Any]:
    """Storage options given as JSON text (an object; empty text: none)."""
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise StorageError("storage options", f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise StorageError("storage options", "must be a JSON object, e.g. '{\"anon\": true}'")
    return value


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and the path inside it for a URL."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, **_options)
    except (ImportError, ValueError) as exc:
        raise StorageError(url, f"cannot open this kind of URL: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a backend's own error, explained in one line
        raise describe(exc, url) from None


NO_BUCKET = "no such bucket"
NO_OBJECT = "no such object or prefix"
_MISSING_BUCKET = ("bucket does not exist", "nosuchbucket", "container does not exist", "containernotfound")
_DENIED = ("access denied", "forbidden", "failed to authenticate", "authorizationfailure", "unauthorized")
_UNREACHABLE = ("could not connect", "cannot connect", "connection", "name or service not known")


def reason_of(exc: BaseException) -> str:
    """Why a storage call failed, in one line: no such bucket or object, access denied,
    endpoint unreachable, or the backend's own message (the words of s3fs, gcsfs and
    adlfs, and the HTTP status where the message has no such words)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    kind = type(exc).__name__
    lowered = text.lower()
    status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    if any(words in lowered for words in _MISSING_BUCKET):
        reason = NO_BUCKET
    elif isinstance(exc, PermissionError) or status in (401, 403) or any(words in lowered for words in _DENIED):
        reason = f"access denied ({text})"
    elif "connect" in kind.lower() or any(words in lowered for words in _UNREACHABLE):
        reason = f"endpoint unreachable ({text})"
    elif isinstance(exc, FileNotFoundError):
        reason = NO_OBJECT
    else:
        reason = f"{kind}: {text}"
    return reason


def describe(exc: BaseException, url: str) -> StorageError:
    """``exc`` as a one-line error naming ``url``. A backend that reports a missing
    bucket as a plain "not found" (gcsfs, adlfs) is asked whether the bucket exists."""
    if isinstance(exc, StorageError):
        return exc
    reason = reason_of(exc)
    if reason == NO_BUCKET or (reason == NO_OBJECT and is_url(url) and _bucket_missing(url)):
        return MissingBucket(url, NO_BUCKET)
    return StorageError(url, reason)


def _bucket_missing(url: str) -> bool:
    """Whether the bucket of ``url`` is missing. The answer is not cached: fsspec would
    keep the listing of buckets, and a bucket created later would stay missing."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url, **_options)
    except Exception:  # noqa: BLE001 - unknown: keep the backend's "not found"
        return False
    try:
        fs.info(path.split("/", 1)[0])
    except FileNotFoundError:
        return True
    except Exception:  # noqa: BLE001
        return False
    finally:
        fs.invalidate_cache()
    return False


class ObjectStat(NamedTuple):
    """What the pipeline keys inputs by, for an object: its size and a version (the
    modification time in ns, or a hash of the ETag where a backend gives none)."""

    st_size: int
    st_mtime_ns: int


def stat_of(info: Mapping[str, Any]) -> ObjectStat:
    modified = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("last_modified")
    if hasattr(modified, "timestamp"):
        version = int(modified.timestamp() * 1_000_000_000)
    elif isinstance(modified, (int, float)):
        version = int(modified * 1_000_000_000)
    else:
        tag = str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or "")
        version = int.from_bytes(hashlib.sha256(tag.encode()).digest()[:7], "big")
    return ObjectStat(int(info.get("size") or 0), version)


class RemoteFile(str):
    """A manifest object: its URL, with the ``name`` and ``stat()`` the planner asks a
    ``Path`` for (the stat is the listing's, so planning costs no extra request)."""

    def __new__(cls, url: str, info: Mapping[str, Any]) -> "RemoteFile":
        made = super().__new__(cls, url)
        made._stat = stat_of(info)
        return made

    @property
    def name(self) -> str:
        return name_of(str(self))

    def stat(self) -> ObjectStat:
        return self._stat


def open_url(url: Location, mode: str = "rb") -> IO[bytes]:
    """Open a location for reading (buffered, seekable): a plain file, or an object
    streamed through fsspec in bounded blocks. The audio exporters open sources with it."""
    if not is_url(url):
        return open(url, mode)  # noqa: SIM115 - the caller closes it
    fs, path = filesystem(str(url))
    try:
        raw = fs.open(path, "rb", block_size=READ_BLOCK, cache_type="readahead")
    except Exception as exc:  # noqa: BLE001
        raise describe(exc, str(url)) from None
    return io.BufferedReader(raw, buffer_size=1 << 20)
