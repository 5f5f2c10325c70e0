"""The parameters every ALM task shares: builder, overlap and error policy."""

from __future__ import annotations

from typing import Any

import luigi

from alm_lhotse.config import OverlapConfig, WindowConfig, params_digest
from alm_lhotse.execution.loop import ON_ERROR_CHOICES
from alm_lhotse.storage import key_of

FORMAT_VERSION = 1


class AlmParameters:
    """Builder, overlap and error-policy parameters: everything that changes the output."""

    target_window_duration = luigi.FloatParameter(default=120.0, description="Target window length in seconds.")
    tolerance = luigi.FloatParameter(default=0.1, description="Allowed relative deviation from the target.")
    min_sample_rate = luigi.IntParameter(default=16000, description="Entries below this sample rate get no windows.")
    min_bandwidth = luigi.IntParameter(default=8000, description="Minimum segment bandwidth in Hz.")
    min_speakers = luigi.IntParameter(default=2, description="Minimum speakers per window.")
    max_speakers = luigi.IntParameter(default=5, description="Maximum speakers per window.")
    truncation = luigi.BoolParameter(
        default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING, description="Truncate the last segment at a word (true|false)."
    )
    drop_fields = luigi.Parameter(default="words", description="Comma-separated segment fields dropped from windows.")
    drop_fields_top_level = luigi.Parameter(
        default="words,segments", description="Comma-separated top-level fields dropped from output entries."
    )
    sort_segments = luigi.BoolParameter(default=False, description="Sort segments by start before building windows.")
    overlap_percentage = luigi.FloatParameter(default=50.0, description="Overlap (0-100) above which windows compete.")
    overlap_target_duration = luigi.FloatParameter(default=120.0, description="Duration the overlap filter prefers.")
    on_error = luigi.ChoiceParameter(
        default="fail", choices=ON_ERROR_CHOICES, description="fail: stop at the first bad line; skip: write it to rejects.jsonl."
    )

    WINDOW_NAMES = (
        "target_window_duration", "tolerance", "min_sample_rate", "min_bandwidth", "min_speakers",
        "max_speakers", "truncation", "drop_fields", "drop_fields_top_level", "sort_segments",
    )
    PARAMETER_NAMES = (*WINDOW_NAMES, "overlap_percentage", "overlap_target_duration", "on_error")

    def window_config(self) -> WindowConfig:
        return WindowConfig(**{name: getattr(self, name) for name in self.WINDOW_NAMES})

    def overlap_config(self) -> OverlapConfig:
        return OverlapConfig(self.overlap_percentage, self.overlap_target_duration)

    def processing_params(self) -> dict[str, Any]:
        """The values to hand to downstream tasks explicitly (else they use defaults)."""
        return {name: getattr(self, name) for name in self.PARAMETER_NAMES}

    def parameters_record(self) -> dict[str, Any]:
        return {
            "window": self.window_config().to_dict(),
            "overlap": self.overlap_config().to_dict(),
            "on_error": self.on_error,
        }

    def results_digest(self) -> str:
        """Hash of every parameter that changes results (validates them on the way)."""
        return key_of([FORMAT_VERSION, params_digest(self.window_config(), self.overlap_config()), self.on_error])
