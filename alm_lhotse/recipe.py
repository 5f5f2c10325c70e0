"""Lhotse recipe for ALM windows: ``prepare_alm``, the Python face of ``lhotse-alm prepare alm``.

It follows Lhotse's recipe conventions (``prepare_<corpus>(corpus, output_dir=None,
num_jobs=1, ...)``, a ``{part: {manifest type: set}}`` result, ``fix_manifests`` and
``validate_recordings_and_supervisions`` before anything is handed out) but does the heavy
lifting on the fast core (``run_job``), which writes the manifests as dicts, several times
faster than building Lhotse objects. Lhotse then loads, fixes and validates what was written,
so every manifest the recipe leaves behind has passed Lhotse's own checks.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import orjson
from lhotse import (
    CutSet,
    RecordingSet,
    SupervisionSet,
    fix_manifests,
    validate_recordings_and_supervisions,
)
from lhotse.qa import validate
from lhotse.utils import Pathlike
from tqdm.auto import tqdm

from alm_lhotse.audio import DEFAULT_THRESHOLD_DB, AudioCompletion
from alm_lhotse.config import (
    ON_ERROR,
    OVERLAP_PARAMS,
    WINDOW_PARAMS,
    OverlapConfig,
    WindowConfig,
)
from alm_lhotse.execution.runner import run_job
from alm_lhotse.fs import configure, is_url
from alm_lhotse.objects import upload_checkpoint
from alm_lhotse.outputs.streams import (
    CUTS_PART,
    FINAL_NAMES,
    RECORDINGS_PART,
    SUPERVISIONS_PART,
)
from alm_lhotse.params import aliases_of, renamed
from alm_lhotse.reading.discovery import ManifestPaths
from alm_lhotse.reading.reader import iter_jsonl_dicts
from alm_lhotse.storage import atomic_path

PART = "all"
LHOTSE_SUBDIR = "lhotse"
RECIPE_SUMMARY = "prepare_summary.json"
WINDOW_OPTIONS = tuple(p.name for p in WINDOW_PARAMS)
OVERLAP_OPTIONS = tuple(p.name for p in OVERLAP_PARAMS)
_OLD_NAMES = aliases_of((*WINDOW_PARAMS, *OVERLAP_PARAMS))
# Lhotse's own tolerance for a supervision reaching past its recording (lhotse.qa).
_END_TOLERANCE = 1e-3


# Lines read so far, shared with forked worker processes (they inherit it; it cannot be
# pickled). Created per run, before run_job forks its workers.
_LINES_READ: Any = None


@dataclasses.dataclass(frozen=True)
class _CountingHook:
    """Reader entry hook that counts lines for the progress bar, then runs ``inner``."""

    inner: Optional[Callable[[Any], Any]] = None

    def __call__(self, entry: Any) -> Any:
        with _LINES_READ.get_lock():
            _LINES_READ.value += 1
        return entry if self.inner is None else self.inner(entry)


def _run_job_with_progress(enabled: bool, **kwargs: Any) -> dict[str, Any]:
    """``run_job`` with a tqdm bar over manifest lines, polled from the shared counter."""
    global _LINES_READ
    _LINES_READ = multiprocessing.get_context("fork").Value("q", 0)
    done = threading.Event()

    def poll(bar: tqdm) -> None:
        while not done.wait(0.2):
            bar.update(_LINES_READ.value - bar.n)
        bar.update(_LINES_READ.value - bar.n)

    with tqdm(desc="Building ALM windows", unit="line", disable=not enabled) as bar:
        watcher = threading.Thread(target=poll, args=(bar,), daemon=True)
        watcher.start()
        try:
            return run_job(**kwargs)
        finally:
            done.set()
            watcher.join()


def configs_from_options(options: dict[str, Any]) -> tuple[WindowConfig, OverlapConfig]:
    """Split window and overlap keyword options (old names accepted); a misspelt option is
    an error, not a no-op."""
    options = renamed(options, _OLD_NAMES)
    unknown = sorted(set(options) - set(WINDOW_OPTIONS) - set(OVERLAP_OPTIONS))
    if unknown:
        raise TypeError(f"unknown window/overlap options {unknown}; known: {WINDOW_OPTIONS + OVERLAP_OPTIONS}")
    wcfg = WindowConfig(**{k: v for k, v in options.items() if k in WINDOW_OPTIONS})
    ocfg = OverlapConfig(**{k: v for k, v in options.items() if k in OVERLAP_OPTIONS})
    return wcfg, ocfg


def manifest_paths(output_dir: Pathlike) -> dict[str, Path]:
    """Where the recipe's manifests live inside ``output_dir`` (the pipeline's layout)."""
    root = Path(output_dir)
    return {
        "recordings": root / FINAL_NAMES[RECORDINGS_PART],
        "supervisions": root / FINAL_NAMES[SUPERVISIONS_PART],
        "cuts": root / FINAL_NAMES[CUTS_PART],
    }


def _replace(path: Path, manifest: Any) -> None:
    """Rewrite a manifest through a temp name, so a crash never leaves half a file."""
    with atomic_path(path, keep_suffix=True) as tmp:
        manifest.to_file(tmp)


def _fix_recordings_and_supervisions(paths: dict[str, Path]) -> tuple[RecordingSet, SupervisionSet, dict[str, int]]:
    recordings = RecordingSet.from_file(paths["recordings"]).to_eager()
    supervisions = SupervisionSet.from_file(paths["supervisions"]).to_eager()
    fixed_recordings, fixed_supervisions = fix_manifests(recordings, supervisions)
    durations = {s.id: s.duration for s in supervisions}
    trimmed = sum(1 for s in fixed_supervisions if s.duration != durations[s.id])
    report = {
        "recordings_removed": len(recordings) - len(fixed_recordings),
        "supervisions_removed": len(supervisions) - len(fixed_supervisions),
        "supervisions_trimmed": trimmed,
    }
    validate_recordings_and_supervisions(fixed_recordings, fixed_supervisions)
    if report["recordings_removed"]:
        _replace(paths["recordings"], fixed_recordings)
    if report["supervisions_removed"] or trimmed:
        _replace(paths["supervisions"], fixed_supervisions)
    return fixed_recordings, fixed_supervisions, report


def _window_fits(cut: dict[str, Any], recordings: RecordingSet) -> bool:
    rec_id = cut["recording"]["id"]
    if rec_id not in recordings:
        return False
    return cut["start"] + cut["duration"] <= recordings[rec_id].duration + _END_TOLERANCE


def _fix_and_validate_cuts(path: Path, recordings: RecordingSet, progress: bool) -> int:
    """Validate every window cut with Lhotse; drop (and count) windows whose recording was
    removed by ``fix_manifests`` or that reach past its end. Rewrites only when something went."""
    dropped = 0
    for data in tqdm(iter_jsonl_dicts(path), desc="Validating ALM windows", unit="cut", disable=not progress):
        if _window_fits(data, recordings):
            validate(CutSet.from_dicts([data]))
        else:
            dropped += 1
    if dropped:
        kept = CutSet.from_dicts(d for d in iter_jsonl_dicts(path) if _window_fits(d, recordings))
        _replace(path, kept)
    return dropped


def prepare_alm(
    manifest_path: ManifestPaths,
    output_dir: Optional[Pathlike] = None,
    num_jobs: int = 1,
    on_error: str = "fail",
    read_audio_headers: bool = True,
    estimate_bandwidth: bool = False,
    bandwidth_threshold_db: float = DEFAULT_THRESHOLD_DB,
    progress: bool = True,
    storage_options: Optional[dict[str, Any]] = None,
    **window_and_overlap_options: Any,
) -> dict[str, dict[str, Any]]:
    """Turn conversation manifests into ALM training windows as Lhotse manifests.

    :param manifest_path: a JSONL manifest (optionally gzipped), a directory searched
        recursively for manifests, or a list of either.
    :param output_dir: where to write ``alm_output.jsonl`` (NeMo Curator-compatible),
        ``rejects.jsonl``, ``prepare_summary.json`` and ``lhotse/alm_{recordings,supervisions,cuts_windows}_all.jsonl.gz``;
        when None, nothing is kept on disk and the manifests are returned in memory. A
        URL (``s3://...``) gets the outputs uploaded when complete, the summary last.
    :param num_jobs: worker processes for the windowing.
    :param on_error: ``"fail"`` stops at the first bad line (file, line, field, reason);
        ``"skip"`` writes it to ``rejects.jsonl`` and goes on.
    :param read_audio_headers: fill a missing ``audio_sample_rate``/``duration`` from the
        audio header when the file exists.
    :param estimate_bandwidth: estimate a missing segment ``metrics.bandwidth`` from the audio
        (see ``alm_lhotse.audio``).
    :param storage_options: fsspec options for URLs (the reference's ``storage_options``).
    :param window_and_overlap_options: any field of ``WindowConfig`` and ``OverlapConfig``
        (docs/parameters.md); an invalid value raises ``ValueError`` before any work.
    :return: ``{"all": {"recordings": RecordingSet, "supervisions": SupervisionSet, "cuts": CutSet}}``;
        ``cuts`` are the kept windows (read lazily from disk when ``output_dir`` is given).
    """
    wcfg, ocfg = configs_from_options(window_and_overlap_options)
    ON_ERROR.check(on_error)
    hook = None
    if read_audio_headers or estimate_bandwidth:
        hook = AudioCompletion(read_audio_headers, estimate_bandwidth, bandwidth_threshold_db)
    if storage_options is not None:
        configure(storage_options)
    if output_dir is None or is_url(output_dir):
        with tempfile.TemporaryDirectory(prefix="alm-prepare-") as tmp:
            result = _prepare(manifest_path, Path(tmp), num_jobs, on_error, hook, wcfg, ocfg, progress)
            result[PART]["cuts"] = result[PART]["cuts"].to_eager()
            if output_dir is not None:
                upload_checkpoint(Path(tmp), str(output_dir).rstrip("/"), RECIPE_SUMMARY)
            return result
    return _prepare(manifest_path, Path(output_dir), num_jobs, on_error, hook, wcfg, ocfg, progress)


def _prepare(
    manifest_path: ManifestPaths,
    output_dir: Path,
    num_jobs: int,
    on_error: str,
    hook: Optional[AudioCompletion],
    wcfg: WindowConfig,
    ocfg: OverlapConfig,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = _run_job_with_progress(
        progress,
        paths=manifest_path,
        output_dir=output_dir,
        wcfg=wcfg,
        ocfg=ocfg,
        jobs=num_jobs,
        on_error=on_error,
        prepare=_CountingHook(hook),
    )
    paths = manifest_paths(output_dir)
    if summary["entries"]:
        recordings, supervisions, fixes = _fix_recordings_and_supervisions(paths)
        fixes["windows_removed"] = _fix_and_validate_cuts(paths["cuts"], recordings, progress)
    else:
        recordings, supervisions, fixes = RecordingSet(), SupervisionSet(), {}
    summary["lhotse_fixes"] = fixes
    summary["window_config"] = wcfg.to_dict()
    summary["overlap_config"] = ocfg.to_dict()
    (output_dir / RECIPE_SUMMARY).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    cuts = CutSet.from_jsonl_lazy(paths["cuts"])
    return {PART: {"recordings": recordings, "supervisions": supervisions, "cuts": cuts}}
