"""Errors that point at the exact place in the input that caused them."""

from __future__ import annotations

from typing import Optional


class ManifestError(ValueError):
    """An input manifest line that cannot be processed.

    A ``ValueError`` so code written against the reference's validation keeps working.
    """

    def __init__(self, source: str, line: Optional[int], field: Optional[str], reason: str) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.reason = reason
        where = source if line is None else f"{source}:{line}"
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {reason}")

    def __reduce__(self) -> tuple:
        # Rebuilt from its parts, so it survives the trip back from a worker process.
        return (type(self), (self.source, self.line, self.field, self.reason))


class InvalidEntry(ValueError):
    """An entry failed validation; the reader adds file and line to make a ManifestError."""

    def __init__(self, field: Optional[str], reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"field '{field}': {reason}" if field else reason)

    def __reduce__(self) -> tuple:
        return (type(self), (self.field, self.reason))


class OutputError(OSError):
    """Writing the outputs failed (full disk, read-only or missing directory); every
    output of the run was removed, and earlier complete outputs were left as they were."""
