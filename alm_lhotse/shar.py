"""Export ALM window cuts, with their audio, as Lhotse Shar shards.

Why not ``CutSet.to_shar``: it writes shards straight to their final names (a killed export
leaves a truncated shard that ``from_shar`` then reads), cannot resume or spread over
machines, decodes a recording again for every window, sizes shards by count, pads or
fails on short audio according to Lhotse-wide tolerances, and has no rejects list. This
exporter writes the same format (``cuts.NNNNNN.jsonl.gz`` + ``recording.NNNNNN.tar``
holding ``<cut id>.<format>`` and ``<cut id>.json``) in three steps:

1. plan (``shar_plan``): windows in output order into shards of about ``shard_duration``
   seconds of audio, each shard's windows into its own input file;
2. write (``shar_write``): any shard, in any process or on any machine sharing the
   directory, under temp names, renamed into place, then recorded as done;
3. finish: rejects and summary from the done markers; the summary is written last.

A killed export resumes shard by shard and ends with the same bytes. ``CutSet.from_shar
(in_dir=...)`` treats every file in its directory as a field, so the bookkeeping
(parameters, plan, inputs, done markers, temp files, ``rejects.jsonl``,
``summary.json``) lives beside the shards, in ``<output_dir>.export/``.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import orjson

from alm_lhotse.fs import is_url
from alm_lhotse.shar_options import AUDIO_FORMATS, SharOptions, shar_options
from alm_lhotse.shar_plan import INPUT_DIR, Pathlike, plan_shards, read_plan
from alm_lhotse.shar_write import TMP_DIR, SharExportError, read_done, write_shard
from alm_lhotse.storage import remove_tree, write_atomic

__all__ = ["AUDIO_FORMATS", "SharDirError", "SharExportError", "SharOptions", "export_shar", "state_dir_for"]

STATE_SUFFIX = ".export"
PARAMS = "params.json"
SUMMARY = "summary.json"
REJECTS = "rejects.jsonl"
RULE = "=" * 64


def state_dir_for(output_dir: Pathlike) -> Path:
    out = Path(output_dir)
    return out.with_name(out.name + STATE_SUFFIX)


def input_identity(cuts: Any) -> Optional[dict[str, Any]]:
    """A manifest file by path, size and mtime; other inputs cannot be identified."""
    if isinstance(cuts, (str, os.PathLike)):
        st = os.stat(cuts)
        return {"path": str(Path(cuts).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return None


class SharDirError(ValueError):
    """The output directory holds something else than this export's shards."""


def _check_resumable(out: Path, state: Path, params: dict[str, Any]) -> None:
    """Refuse to mix shards of different exports in one directory."""
    params_file = state / PARAMS
    if params_file.exists():
        previous = orjson.loads(params_file.read_bytes())
        if previous != params:
            raise SharDirError(
                f"{out} holds a Shar export made with other parameters or input ({previous}); "
                f"remove {out} and {state} or choose another output directory"
            )
    elif out.exists() and any(out.iterdir()):
        raise SharDirError(f"{out} is not empty and was not written by an unfinished export; choose an empty directory")


def prepare_export(
    cuts: Union[Pathlike, Iterable[Any]], output_dir: Pathlike, options: SharOptions, identity: Any = None
) -> dict[str, Any]:
    """Check the directory, then plan the shards unless an earlier run did; returns the plan.
    ``identity`` names the input (default: the manifest file's path, size and mtime)."""
    out = Path(output_dir)
    state = state_dir_for(out)
    params = {"options": options.to_dict(), "input": identity if identity is not None else input_identity(cuts)}
    _check_resumable(out, state, params)
    out.mkdir(parents=True, exist_ok=True)
    if not (state / PARAMS).exists():
        write_atomic(state / PARAMS, orjson.dumps(params))
    return read_plan(state) or plan_shards(cuts, state, options)


def finish_export(output_dir: Pathlike, resumed: int = 0) -> dict[str, Any]:
    """Rejects and summary from the done markers of every planned shard (summary last)."""
    out = Path(output_dir)
    state = state_dir_for(out)
    plan = read_plan(state)
    if plan is None:
        raise RuntimeError(f"{state} holds no plan: the export was not prepared")
    results = [read_done(state, index) for index in range(len(plan["shards"]))]
    missing = [index for index, result in enumerate(results) if result is None]
    if missing:
        raise RuntimeError(f"shards {missing[:5]} of {out} are not written yet")
    rejects = [r for result in results for r in result["rejects"]]  # type: ignore[index]
    write_atomic(state / REJECTS, b"".join(orjson.dumps(r) + b"\n" for r in rejects))
    summary = {
        "output_dir": str(out),
        "shards": sum(1 for r in results if r["written"]),  # type: ignore[index]
        "windows": plan["windows"],
        "written": sum(r["written"] for r in results),  # type: ignore[index]
        "hours": sum(r["seconds"] for r in results) / 3600,  # type: ignore[index]
        "rejected": len(rejects),
        "resumed_shards": resumed,
        "rejects_path": str(state / REJECTS),
    }
    write_atomic(state / SUMMARY, orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    for sub in (TMP_DIR, INPUT_DIR):
        remove_tree(state / sub)
    return summary


def read_summary(output_dir: Pathlike) -> Optional[dict[str, Any]]:
    try:
        return orjson.loads((state_dir_for(output_dir) / SUMMARY).read_bytes())
    except FileNotFoundError:
        return None


def end_of_export_block(summary: dict[str, Any]) -> str:
    """What was written and where, in one block."""
    rejected = f", {summary['rejected']} rejected (see {summary['rejects_path']})" if summary["rejected"] else ""
    return "\n".join(
        [
            RULE,
            "SHAR EXPORT COMPLETE",
            f"  Shar export: {summary['shards']} shards, {summary['written']} windows written to {summary['output_dir']}{rejected}",
            f"  windows: {summary['written']} of {summary['windows']} written, {summary['hours']:.2f} h of audio",
            f"  read them with CutSet.from_shar(in_dir={summary['output_dir']!r})",
            RULE,
        ]
    )


def nothing_written_warning(summary: dict[str, Any], no_windows: str = "there were no windows to export") -> Optional[str]:
    """A loud line for an export that wrote nothing (a valid result, easily missed)."""
    if summary["written"]:
        return None
    why = f"all {summary['rejected']} windows were rejected" if summary["rejected"] else no_windows
    return f"WARNING: the Shar export wrote nothing: {why}; 0 shards"


def export_shar(
    cuts: Union[Pathlike, Iterable[Any]],
    output_dir: Pathlike,
    num_jobs: int = 1,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Write window cuts (a manifest path, a CutSet or cut dicts) with audio as Shar shards.

    ``options`` are those of ``SharOptions`` (``shard_duration``, ``shard_size``,
    ``audio_format``, ``sampling_rate``, ``mono``, ``compact_audio``, ``on_error``).
    Re-running with the same input and options resumes a killed export (finished shards
    are kept) and is a no-op once it is complete. Returns the summary, also written to
    ``<output_dir>.export/summary.json``; with ``on_error="skip"`` the rejected windows are
    in ``<output_dir>.export/rejects.jsonl``.
    """
    from tqdm.auto import tqdm

    if is_url(output_dir):
        raise ValueError(f"{output_dir}: the Shar export needs a local output directory for now (audio sources may be URLs)")
    settings = shar_options(**options)
    out = Path(output_dir)
    state = state_dir_for(out)
    plan = prepare_export(cuts, out, settings)
    todo = [index for index in range(len(plan["shards"])) if read_done(state, index) is None]
    resumed = len(plan["shards"]) - len(todo)
    with tqdm(total=plan["windows"], desc="Exporting ALM windows to Shar", unit=" windows", disable=not progress) as bar:
        bar.update(plan["windows"] - sum(plan["shards"][index][0] for index in todo))
        if num_jobs <= 1:
            for index in todo:
                write_shard(state, out, index, settings, progress=bar.update)
        elif todo:
            with ProcessPoolExecutor(num_jobs, mp_context=get_context("fork")) as pool:
                for result in pool.map(write_shard, *zip(*[(state, out, index, settings) for index in todo])):
                    bar.update(result["windows"])
    return finish_export(out, resumed)
