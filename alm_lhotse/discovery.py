"""Find manifest files: a file, a directory searched recursively, or a list of those."""

from __future__ import annotations

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
            elif is_manifest_name(child.name) and path.exists():
                found.append(path)

    visit(root)
    return found


def discover_manifests(paths: ManifestPaths) -> list[Path]:
    """Resolve paths into the ordered list of manifest files to read.

    A path listed N times is read N times (the reference's repeat factor); files inside
    a directory come in sorted order so every run sees the same sequence.
    """
    files: list[Path] = []
    for raw in _as_list(paths):
        path = Path(raw)
        if path.is_dir():
            files.extend(_walk(path))
        elif path.is_file():
            files.append(path)
        else:
            raise ManifestError(str(path), None, None, "no such manifest file or directory")
    return files


def listing_fingerprint(files: Iterable[Path]) -> str:
    """Hash of the file list with sizes and mtimes: changes when inputs are added or edited."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]
