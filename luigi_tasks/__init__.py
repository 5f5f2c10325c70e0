"""Luigi pipeline: manifests -> ALM windows, Lhotse manifests and a NeMo Curator-compatible
JSONL, resumable and distributable.

    luigi --module luigi_tasks AlmWindows --local-scheduler
"""

from luigi_tasks.settings import apply_defaults

apply_defaults()

from luigi_tasks.shar import AlmShar  # noqa: E402
from luigi_tasks.tasks import AlmConvert, AlmDiscover, AlmPart, AlmWindows  # noqa: E402

__all__ = ["AlmConvert", "AlmDiscover", "AlmPart", "AlmShar", "AlmWindows"]
