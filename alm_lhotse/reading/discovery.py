"""Find manifest files: a file, a directory searched recursively, or a list of those."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Iterable, Optional, Union

from alm_lhotse.errors import ManifestError
from alm_lhotse.fs import RemoteFile, describe, filesystem, is_url, local_path
from alm_lhotse.storage import LOCK_NAME

PathLike = Union[str, os.PathLike]
ManifestPaths = Union[PathLike, Iterable[PathLike]]
MANIFEST_SUFFIXES = (".jsonl", ".json", ".jsonl.gz")
# A prefix holding one of these is an output location of this tool (the lock while a
# merge runs, the state marker always), never an input.
OUTPUT_MARKS = (LOCK_NAME, ".alm_state.json")


def is_manifest_name(name: str) -> bool:
    return name.endswith(MANIFEST_SUFFIXES)


def _as_list(paths: ManifestPaths) -> list[PathLike]:
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return list(paths)


def _missing_reason(path: Path) -> str:
    """Why a path has nothing to read, so a dangling link is not reported as a typo."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop: nothing to read"
        if path.is_symlink():
            return "broken symlink: its target does not exist"
        return "no such manifest file or directory"
    return "not a regular file or directory"


def printable(path: Path) -> str:
    """A path as text that can be printed and written to JSON: bytes that are not UTF-8
    shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _dir_key(path: Path) -> Optional[tuple[int, int]]:
    """(device, inode) of a directory, so any spelling of it (relative, via a symlink)
    matches; None when it does not exist (yet)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _listing(directory: Path, seen: set[tuple[int, int]]) -> list[os.DirEntry]:
    """Sorted entries of a directory not visited yet (nothing for one seen before, or
    for an output directory of this tool below an input directory)."""
    st = directory.stat()
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return []
    seen.add(key)
    try:
        children = sorted(os.scandir(directory), key=lambda e: e.name)
    except PermissionError as exc:
        raise ManifestError(printable(directory), None, None, f"directory is not readable: {exc.strerror}") from exc
    if any(child.name == LOCK_NAME for child in children):
        return []
    return children


def _walk(root: Path, excluded: set[tuple[int, int]]) -> list[Path]:
    """Every manifest below ``root`` in sorted order; symlinked directories are followed
    once, ``excluded`` directories (by device and inode) and output directories of this
    tool (they hold its lock file) not at all. Iterative: no depth of directories can
    exhaust the recursion limit."""
    if (root / LOCK_NAME).exists():
        reason = f"holds the outputs of an earlier run ({LOCK_NAME}), which are not inputs: move the manifests out"
        raise ManifestError(printable(root), None, None, reason)
    found: list[Path] = []
    seen: set[tuple[int, int]] = set(excluded)
    pending = [iter(_listing(root, seen))]
    while pending:
        child = next(pending[-1], None)
        if child is None:
            pending.pop()
            continue
        path = Path(child.path)
        try:
            is_dir = child.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            try:
                pending.append(iter(_listing(path, seen)))
            except OSError:
                continue
        elif is_manifest_name(child.name):
            if not path.is_file():
                raise ManifestError(printable(path), None, None, _missing_reason(path))
            found.append(path)
    return found


def _check_name(path: Path) -> Path:
    """Manifest paths end up in outputs (rejects, recording ids) as UTF-8 text."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise ManifestError(
            printable(path), None, None, "file name is not valid UTF-8 (bytes shown as \\xNN); rename the file"
        ) from None
    return path


def discover_manifests(paths: ManifestPaths, exclude: Iterable[PathLike] = ()) -> list[Path]:
    """Resolve paths into the ordered list of manifest files to read.

    A path listed N times is read N times (the reference's repeat factor); files inside
    a directory come in sorted order so every run sees the same sequence. Directories
    in ``exclude`` (the run's output directory) are skipped inside input directories,
    so a run never reads its own outputs back; an input directory that is one of them
    is refused.
    """
    files: list[Path] = []
    listed = _as_list(paths)
    if not listed:
        raise ManifestError("<inputs>", None, None, "no input manifests given")
    local_excluded = [p for p in exclude if not is_url(p)]
    excluded = {key for key in map(_dir_key, map(Path, local_excluded)) if key is not None}
    for raw in listed:
        if is_url(raw):
            files.extend(_remote_manifests(str(raw).rstrip("/"), [str(p) for p in exclude if is_url(p)]))
            continue
        path = Path(local_path(raw))
        if path.is_dir():
            if _dir_key(path) in excluded:
                reason = "is the output directory too, whose outputs would be read back as inputs: write them elsewhere"
                raise ManifestError(printable(path), None, None, reason)
            found = _walk(path, excluded)
            if not found:
                reason = f"no manifest files ({', '.join(MANIFEST_SUFFIXES)}) found"
                raise ManifestError(printable(path), None, None, reason)
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ManifestError(printable(path), None, None, _missing_reason(path))
    return [_check_name(f) for f in files]


def _remote_manifests(url: str, excluded: list[str]) -> list[Path]:
    """The manifest objects a URL means: itself, or every manifest below the prefix in
    the order a local directory walk gives (sorted name by name along the key's path),
    without output prefixes of this tool."""
    try:
        fs, path = filesystem(url)
        info = fs.info(path)
        if info.get("type") != "directory":
            return [RemoteFile(url, info)]
        found = fs.find(path, detail=True)
    except Exception as exc:  # noqa: BLE001 - the backend's errors, in one line
        raise ManifestError(url, None, None, describe(exc, url).reason) from None
    scheme = url.split("://", 1)[0]
    base = path.rstrip("/")
    outputs = {key.rsplit("/", 1)[0] for key in found if key.rsplit("/", 1)[-1] in OUTPUT_MARKS}
    if base in outputs:
        reason = "holds the outputs of an earlier run, which are not inputs: move the manifests out"
        raise ManifestError(url, None, None, reason)
    skipped = [o + "/" for o in outputs] + [e.split("://", 1)[-1].rstrip("/") + "/" for e in excluded]
    keys = [
        key for key, meta in found.items()
        if meta.get("type") != "directory" and is_manifest_name(key) and not key.startswith(tuple(skipped))
    ]
    if not keys:
        raise ManifestError(url, None, None, f"no manifest files ({', '.join(MANIFEST_SUFFIXES)}) found")
    keys.sort(key=lambda key: key.split("/"))
    return [RemoteFile(f"{scheme}://{key}", found[key]) for key in keys]  # type: ignore[misc]


def listing_fingerprint(files: Iterable[Path]) -> str:
    """Hash of the file list with sizes and mtimes: changes when inputs are added or edited."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]
