"""Luigi task ``AlmShar``: the kept windows of ``AlmWindows`` as Lhotse Shar shards with audio.

    luigi --module luigi_tasks AlmShar --output-dir out --local-scheduler

The shards go to ``OUTPUT_DIR/shar-<key>/`` (``key`` hashes the upstream job and the
export options, so a changed input or option never reuses stale shards) unless
``--shar-dir`` names a directory; the export's bookkeeping, rejects and summary go beside
it in ``<shar dir>.export/``. The summary is written last, so it marks completion; a
killed export resumes shard by shard (see ``alm_lhotse.shar``).
"""

from __future__ import annotations

import sys
from functools import cached_property
from pathlib import Path

import luigi
from luigi.util import inherits

from alm_lhotse.shar import AUDIO_FORMATS, ON_ERROR_CHOICES, export_shar, state_dir_for
from alm_lhotse.storage import key_of
from luigi_tasks.merge import AlmWindows


@inherits(AlmWindows)
class AlmShar(luigi.Task):
    """Export the windows of ``AlmWindows`` (same parameters) with their audio as Shar."""

    shard_size = luigi.IntParameter(default=1000, description="Windows per shard.")
    audio_format = luigi.ChoiceParameter(default="flac", choices=AUDIO_FORMATS, description="Audio format in the shards.")
    sampling_rate = luigi.IntParameter(default=0, description="Resample to this rate (0: keep the source rate).")
    mono = luigi.BoolParameter(default=False, description="Mix multi-channel audio to mono.")
    audio_on_error = luigi.ChoiceParameter(
        default="fail",
        choices=ON_ERROR_CHOICES,
        description="fail: stop at a window whose audio is missing or unreadable; skip: list it in the rejects.",
    )
    shar_dir = luigi.Parameter(default="", description="Shard directory (default: OUTPUT_DIR/shar-<key>).")
    shar_jobs = luigi.IntParameter(default=1, significant=False, description="Processes writing shards.")

    @cached_property
    def _windows(self) -> AlmWindows:
        return self.clone(AlmWindows)

    def requires(self) -> AlmWindows:
        return self._windows

    def _options(self) -> dict:
        return {
            "shard_size": self.shard_size,
            "audio_format": self.audio_format,
            "sampling_rate": self.sampling_rate or None,
            "mono": self.mono,
            "on_error": self.audio_on_error,
        }

    @property
    def shar_path(self) -> Path:
        if self.shar_dir:
            return Path(self.shar_dir).absolute()
        return self._windows.final_dir / f"shar-{key_of([self._windows.job_key, self._options()], 12)}"

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(state_dir_for(self.shar_path) / "summary.json"))

    def run(self) -> None:
        summary = export_shar(self._windows.cuts_path, self.shar_path, num_jobs=self.shar_jobs, progress=False, **self._options())
        rejected = f", {summary['rejected']} rejected (see {summary['rejects_path']})" if summary["rejected"] else ""
        print(f"Shar export: {summary['shards']} shards, {summary['written']} windows written to {self.shar_path}{rejected}", flush=True)
        if not summary["written"]:
            why = f"all {summary['rejected']} windows were rejected" if summary["rejected"] else "AlmWindows kept no windows"
            print(f"WARNING: the Shar export wrote nothing: {why}", file=sys.stderr, flush=True)
