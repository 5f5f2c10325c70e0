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
   directory (or the bucket), under temp names, renamed into place (or uploaded as
   objects that appear only when complete), then recorded as done;
3. finish: rejects and summary from the done markers; the summary is written last.

A killed export resumes shard by shard and ends with the same bytes. ``CutSet.from_shar
(in_dir=...)`` treats every file in its directory as a field, so the bookkeeping
(parameters, plan, inputs, done markers, temp files, ``rejects.jsonl``,
``summary.json``) lives beside the shards, in ``<output_dir>.export/``. The output
directory may be a URL (``s3://``, ``gs://``, ``az://``): then the bookkeeping is in the
bucket too, and the shards are read back with ``shar_read.shar_fields``.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import orjson

from alm_lhotse import objects
from alm_lhotse.fs import Location, StorageError, configure, describe, filesystem, is_url, join, location, stat_of
from alm_lhotse.shar_options import AUDIO_FORMATS, SharOptions, shar_options
from alm_lhotse.shar_plan import INPUT_DIR, Pathlike, plan_shards, read_plan
from alm_lhotse.shar_write import TMP_DIR, SharExportError, read_done, write_shard

__all__ = ["AUDIO_FORMATS", "SharDirError", "SharExportError", "SharOptions", "export_shar", "state_dir_for"]

STATE_SUFFIX = ".export"
PARAMS = "params.json"
SUMMARY = "summary.json"
REJECTS = "rejects.jsonl"
RULE = "=" * 64


def shar_location(output_dir: Pathlike) -> Location:
    """A URL without trailing slashes, or the local path as given."""
    return location(output_dir) if is_url(output_dir) else Path(output_dir)


def state_dir_for(output_dir: Pathlike) -> Location:
    out = shar_location(output_dir)
    if isinstance(out, str):
        return out + STATE_SUFFIX
    return out.with_name(out.name + STATE_SUFFIX)


def input_identity(cuts: Any) -> Optional[dict[str, Any]]:
    """A manifest file (or object) by path, size and mtime; other inputs cannot be identified."""
    if is_url(cuts):
        store, path = filesystem(cuts)
        try:
            st = stat_of(store.info(path))
        except FileNotFoundError:
            raise StorageError(cuts, "no such object") from None
        except Exception as exc:  # noqa: BLE001 - the backend's error, in one line naming the URL
            raise describe(exc, cuts) from None
        return {"path": str(location(cuts)), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if isinstance(cuts, (str, os.PathLike)):
        st = os.stat(cuts)
        return {"path": str(Path(cuts).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return None


class SharDirError(ValueError):
    """The output directory holds something else than this export's shards."""


def _check_resumable(out: Location, state: Location, params: dict[str, Any]) -> None:
    """Refuse to mix shards of different exports in one directory."""
    try:
        previous = orjson.loads(objects.read_bytes(join(state, PARAMS)))
    except FileNotFoundError:
        previous = None
    if previous is not None:
        if previous != params:
            raise SharDirError(
                f"{out} holds a Shar export made with other parameters or input ({previous}); "
                f"remove {out} and {state} or choose another output directory"
            )
    elif objects.children(out):
        raise SharDirError(f"{out} is not empty and was not written by an unfinished export; choose an empty directory")


def check_writable(state: str) -> None:
    """Fail before any work, with the reason, when the bucket cannot take the export."""
    reason = objects.unwritable_reason(state)
    if reason is not None:
        raise SharDirError(f"Shar directory {state[: -len(STATE_SUFFIX)]} is not writable: {reason}")


def prepare_export(
    cuts: Union[Pathlike, Iterable[Any]], output_dir: Pathlike, options: SharOptions, identity: Any = None
) -> dict[str, Any]:
    """Check the directory, then plan the shards unless an earlier run did; returns the plan.
    ``identity`` names the input (default: the manifest's path, size and mtime)."""
    out = shar_location(output_dir)
    state = state_dir_for(out)
    params = {"options": options.to_dict(), "input": identity if identity is not None else input_identity(cuts)}
    if isinstance(state, str):
        check_writable(state)
    _check_resumable(out, state, params)
    if isinstance(out, Path):
        out.mkdir(parents=True, exist_ok=True)
    if not objects.exists(join(state, PARAMS)):
        objects.write_bytes(join(state, PARAMS), orjson.dumps(params))
    return read_plan(state) or plan_shards(cuts, state, options)


def finish_export(output_dir: Pathlike, resumed: int = 0) -> dict[str, Any]:
    """Rejects and summary from the done markers of every planned shard (summary last)."""
    out = shar_location(output_dir)
    state = state_dir_for(out)
    plan = read_plan(state)
    if plan is None:
        raise RuntimeError(f"{state} holds no plan: the export was not prepared")
    results = [read_done(state, index) for index in range(len(plan["shards"]))]
    missing = [index for index, result in enumerate(results) if result is None]
    if missing:
        raise RuntimeError(f"shards {missing[:5]} of {out} are not written yet")
    if isinstance(out, str):  # every shard is done: an upload still open here is a killed writer's
        for prefix in (out, state):
            objects.abort_uploads(prefix)
    rejects = [r for result in results for r in result["rejects"]]  # type: ignore[index]
    objects.write_bytes(join(state, REJECTS), b"".join(orjson.dumps(r) + b"\n" for r in rejects))
    summary = {
        "output_dir": str(out),
        "shards": sum(1 for r in results if r["written"]),  # type: ignore[index]
        "windows": plan["windows"],
        "written": sum(r["written"] for r in results),  # type: ignore[index]
        "hours": sum(r["seconds"] for r in results) / 3600,  # type: ignore[index]
        "rejected": len(rejects),
        "resumed_shards": resumed,
        "rejects_path": str(join(state, REJECTS)),
    }
    objects.write_bytes(join(state, SUMMARY), orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    for sub in (TMP_DIR, INPUT_DIR):
        objects.remove(join(state, sub))
    return summary


def read_summary(output_dir: Pathlike) -> Optional[dict[str, Any]]:
    try:
        return orjson.loads(objects.read_bytes(join(state_dir_for(output_dir), SUMMARY)))
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
            f"  read them with {reading_hint(summary['output_dir'])}",
            RULE,
        ]
    )


def reading_hint(output_dir: str) -> str:
    """How to read the shards back: Lhotse globs a local directory only, so shards in a
    bucket are named one by one as commands that stream them (``shar_read``)."""
    if is_url(output_dir):
        return f"CutSet.from_shar(fields=shar_fields({output_dir!r})) (from alm_lhotse.shar_read import shar_fields)"
    return f"CutSet.from_shar(in_dir={output_dir!r})"


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
    storage_options: Optional[dict[str, Any]] = None,
    **options: Any,
) -> dict[str, Any]:
    """Write window cuts (a manifest path, a CutSet or cut dicts) with audio as Shar shards.

    ``options`` are those of ``SharOptions`` (``shard_duration``, ``shard_size``,
    ``audio_format``, ``sampling_rate``, ``mono``, ``compact_audio``, ``on_error``).
    Re-running with the same input and options resumes a killed export (finished shards
    are kept) and is a no-op once it is complete. Returns the summary, also written to
    ``<output_dir>.export/summary.json``; with ``on_error="skip"`` the rejected windows are
    in ``<output_dir>.export/rejects.jsonl``. ``cuts`` and ``output_dir`` may be URLs
    (opened with ``storage_options``, fsspec's keyword arguments, and the backends'
    credential chains): the shards and the bookkeeping then go to the bucket.
    """
    from tqdm.auto import tqdm

    if storage_options is not None:
        configure(storage_options)
    settings = shar_options(**options)
    out = shar_location(output_dir)
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
