"""Find manifest files: a file, a directory searched recursively, or a list of those."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Iterable, Union

from alm_lhotse.errors import ManifestError

PathLike = Union[str, os.PathLike]
ManifestPaths = Union[PathLike, Iterable[PathLike]]
MANIFEST_SUFFIXES = (".jsonl", ".json", ".jsonl.gz")


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


def _walk(root: Path) -> list[Path]:
    """Every manifest below ``root`` in sorted order; symlinked directories are followed once."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def visit(directory: Path) -> None:
        st = directory.stat()
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return
        seen.add(key)
        try:
            children = sorted(os.scandir(directory), key=lambda e: e.name)
        except PermissionError as exc:
            raise ManifestError(str(directory), None, None, f"directory is not readable: {exc.strerror}") from exc
        for child in children:
            path = Path(child.path)
            try:
                is_dir = child.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                try:
                    visit(path)
                except OSError:
                    continue
            elif is_manifest_name(child.name):
                if not path.is_file():
                    raise ManifestError(str(path), None, None, _missing_reason(path))
                found.append(path)

    visit(root)
    return found


def discover_manifests(paths: ManifestPaths) -> list[Path]:
    """Resolve paths into the ordered list of manifest files to read.

    A path listed N times is read N times (the reference's repeat factor); files inside
    a directory come in sorted order so every run sees the same sequence.
    """
    files: list[Path] = []
    listed = _as_list(paths)
    if not listed:
        raise ManifestError("<inputs>", None, None, "no input manifests given")
    for raw in listed:
        path = Path(raw)
        if path.is_dir():
            found = _walk(path)
            if not found:
                raise ManifestError(str(path), None, None, f"no manifest files ({', '.join(MANIFEST_SUFFIXES)}) found")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ManifestError(str(path), None, None, _missing_reason(path))
    return files


def listing_fingerprint(files: Iterable[Path]) -> str:
    """Hash of the file list with sizes and mtimes: changes when inputs are added or edited."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]
