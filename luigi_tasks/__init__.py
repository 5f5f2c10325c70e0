"""Luigi pipeline: manifests -> ALM windows, Lhotse manifests and a NeMo Curator-compatible
JSONL, resumable and distributable.

    luigi --module luigi_tasks AlmWindows --local-scheduler

The task chain: ``AlmDiscover`` (partition plan) -> ``AlmPart`` per partition (its
conversion and its windows, two outputs of one pass) -> ``AlmWindows`` (the merge);
``AlmShar`` exports the windows with audio.
"""

from luigi_tasks.settings import apply_defaults, check_command_line

apply_defaults()
check_command_line()

from luigi_tasks import events  # noqa: E402,F401  (registers the failure reports)
from luigi_tasks.discovery import AlmDiscover  # noqa: E402
from luigi_tasks.merge import AlmWindows  # noqa: E402
from luigi_tasks.partition import AlmPart  # noqa: E402
from luigi_tasks.shar import AlmShar  # noqa: E402

__all__ = ["AlmDiscover", "AlmPart", "AlmShar", "AlmWindows"]
