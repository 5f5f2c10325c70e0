"""``rejects.jsonl``: the lines a run with ``on_error="skip"`` left out, and why."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from alm_lhotse.errors import InvalidEntry
from alm_lhotse.outputs.registry import CONVERSION, Output, Target
from alm_lhotse.reading.reader import ManifestLine


def reject_record(line: ManifestLine, error: InvalidEntry) -> dict[str, Any]:
    """What ``rejects.jsonl`` keeps of a bad line: where, why, and the line itself."""
    record: dict[str, Any] = {
        "source": line.source,
        "line": line.line,
        "field": error.field,
        "reason": error.reason,
    }
    try:
        record["raw"] = line.raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(line.raw).decode("ascii")
    return record


def _write(target: Target, line: ManifestLine, error: InvalidEntry) -> None:
    target.write(orjson.dumps(reject_record(line, error), option=orjson.OPT_APPEND_NEWLINE))


REJECTS = Output(name="rejects.jsonl", final="rejects.jsonl", stage=CONVERSION, reject=_write)
