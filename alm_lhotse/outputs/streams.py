"""The outputs of a run, registered in order, and the names derived from them.

A new output is declared once, with its writer, in its own module (an ``Output``) and
listed in ``OUTPUTS``: the per-entry loop, the runner, the merge and the pipeline's
checkpoints take it from here. ``OUTPUTS``' order is the order of the streams everywhere.
"""

from __future__ import annotations

from typing import IO, Mapping, Sequence

from alm_lhotse.outputs.compat import COMPAT
from alm_lhotse.outputs.lhotse_outputs import CUTS, RECORDINGS, SUPERVISIONS
from alm_lhotse.outputs.nemo_manifest import NEMO
from alm_lhotse.outputs.registry import CONVERSION, WINDOWS, GzipWriter, Output, Target
from alm_lhotse.outputs.rejects import REJECTS

OUTPUTS: tuple[Output, ...] = (COMPAT, REJECTS, RECORDINGS, SUPERVISIONS, CUTS, NEMO)

# Each output's part-file name is its key (the ``*_PART`` names and the streams).
STREAMS = tuple(o.name for o in OUTPUTS)
CONVERT_STREAMS = tuple(o.name for o in OUTPUTS if o.stage == CONVERSION)
WINDOW_STREAMS = tuple(o.name for o in OUTPUTS if o.stage == WINDOWS)
FINAL_NAMES = {o.name: o.final for o in OUTPUTS}

COMPAT_PART = COMPAT.name
REJECTS_PART = REJECTS.name
RECORDINGS_PART = RECORDINGS.name
SUPERVISIONS_PART = SUPERVISIONS.name
CUTS_PART = CUTS.name

# The transcript view of the window cuts: a final output made from the merged cuts when
# asked for (``TranscriptConfig``), not a stream.
TRANSCRIPTS_FINAL = "lhotse/alm_cuts_transcripts_all.jsonl.gz"

# A partition's counts, next to its part files (not an output).
SUMMARY_PART = "summary.json"


def stream_names(lhotse: bool = True) -> tuple[str, ...]:
    """The streams of a run with or without the Lhotse manifests."""
    return tuple(o.name for o in OUTPUTS if lhotse or not o.lhotse)


class Sinks:
    """Where one run of the loop writes: the target of each of ``outputs`` named in
    ``targets`` (gzip outputs compressed here), in their order; an output absent from
    ``targets`` is not written."""

    def __init__(self, targets: Mapping[str, IO[bytes]], outputs: Sequence[Output] = OUTPUTS) -> None:
        self.targets: list[tuple[Output, Target]] = [
            (o, GzipWriter(targets[o.name]) if o.gzip else targets[o.name]) for o in outputs if o.name in targets
        ]

    def close(self) -> None:
        for _, target in self.targets:
            target.close()
