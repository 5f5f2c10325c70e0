"""Where a job's final outputs and checkpoints live in its output directory DIR::

    DIR/alm_output.jsonl, rejects.jsonl, summary.json, lhotse/*.jsonl.gz   final outputs
    DIR/.alm_state.json      which job (inputs + parameters) the final outputs belong to
    DIR/.alm.lock            lock held while final outputs are written
    DIR/.alm_publish.json    while final outputs are renamed into place: the renames, so
                             a run killed half-way is rolled forward by the next one
    DIR/.work/discovery/     partition plans (AlmDiscover), keyed by the input listing
    DIR/.work/convert/       a partition's conversion (AlmPart), keyed by its slices, file
                             stats, on_error and sort_segments
    DIR/.work/parts/         a partition's windows (AlmPart), keyed by its slices, file
                             stats, every parameter and the job: counts, and the part files
                             until they are placed in the job's staging
    DIR/.work/staging/       per job, the window streams assembled from the partitions as
                             they finish (luigi_tasks.staging); the final outputs link them
    DIR/.work/publishing/    the next set of final outputs, written before it is published

DIR may be a URL (``s3://bucket/prefix``): then the checkpoints live in the bucket as
objects, a checkpoint counting as complete when its ``task.json`` (uploaded last) exists,
the lock is an object made by a conditional put, and there is no staging (the merge
streams the partitions' part objects into the final objects; ``luigi_tasks.bucket``).

Every path under ``.work`` carries a hash of what determines its content, so a changed
input or parameter never reuses stale work, while unchanged work (the plan, and the
conversion when only window or overlap parameters change) is reused.
"""

from __future__ import annotations

from alm_lhotse import objects
from alm_lhotse.fs import Location, join
from alm_lhotse.outputs.streams import FINAL_NAMES, SUMMARY_PART
from alm_lhotse.report.page import CHART_DIR

WORK_DIR = ".work"
MARKER = ".alm_state.json"
SUMMARY = SUMMARY_PART  # the job's summary has the name of a part's counts
SAMPLE_DIR = "sample_data"
PART_WALL = "task.json"  # a partition checkpoint's share of its task's wall time, written last
DISCOVERY, CONVERT, PARTS, STAGING = "discovery", "convert", "parts", "staging"
PUBLISHING = "publishing"  # the next set of final outputs, until it is renamed into place
CHECKPOINT_DIRS = (CONVERT, PARTS, STAGING)


class PipelineError(RuntimeError):
    """A problem with the run itself (output directory, concurrent runs), not the data."""


def work_dir(final_dir: Location) -> Location:
    return join(final_dir, WORK_DIR)


def written_by_the_job(key: str) -> bool:
    """Whether a key (relative to the output directory) is the main job's to write: a
    file at the top, or anything in its own folders (not a Shar export's, say)."""
    top, _, rest = key.partition("/")
    return not rest or top in {WORK_DIR, CHART_DIR, *(name.split("/")[0] for name in FINAL_NAMES.values())}


def final_files(final_dir: Location) -> list[Location]:
    """Every final output of a job, the summary last (the marker is not an output)."""
    return [join(final_dir, name) for name in [*FINAL_NAMES.values(), SUMMARY]]


def ensure_writable(directory: Location) -> None:
    """Fail at scheduling time, with the reason, when DIR cannot hold outputs (for a
    URL: no such bucket, access denied, endpoint unreachable)."""
    reason = objects.unwritable_reason(work_dir(directory))
    if reason is not None:
        raise PipelineError(f"output directory {directory} is not writable: {reason}")
