"""Luigi pipeline: manifests -> ALM windows, Lhotse manifests and a NeMo Curator-compatible
JSONL, resumable and distributable.

    luigi --module luigi_tasks AlmWindows --local-scheduler
"""

from luigi_tasks.settings import apply_defaults

apply_defaults()

from luigi_tasks.tasks import AlmDiscover, AlmPart, AlmWindows  # noqa: E402

__all__ = ["AlmDiscover", "AlmPart", "AlmWindows"]

try:
    from luigi_tasks.shar import AlmShar  # noqa: E402,F401
except ImportError as exc:  # the Shar export task is optional until its module exists
    if exc.name != "luigi_tasks.shar":
        raise
else:
    __all__.append("AlmShar")
