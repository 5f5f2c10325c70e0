"""The run summary (``summary.json``) and the end-of-run block printed after a merge."""

from __future__ import annotations

from typing import Any

from alm_lhotse.outputs.streams import FINAL_NAMES
from alm_lhotse.fs import Location, join
from alm_lhotse.report.page import REPORT_FILE
from alm_lhotse.report.tally import merge_breakdowns

COUNT_KEYS = (
    "entries",
    "windows",
    "filtered_windows",
    "filtered_dur",
    "truncation_events",
    "rejected",
    "low_sample_rate_entries",
    "unsorted_entries",
    "overlapping_segment_entries",
    "duplicate_window_entries",
)
RULE = "=" * 64


def build_summary(
    totals: dict[str, Any],
    plan: dict[str, Any],
    parameters: dict[str, Any],
    part_walls: list[float],
    merge_s: float,
    reused: dict[str, Any],
) -> dict[str, Any]:
    """Counts first, then what produced them; ``timings`` holds everything that depends on
    the run rather than on inputs and parameters: seconds per stage, and what was reused."""
    stage = totals.get("timings", {})
    summary: dict[str, Any] = {k: totals.get(k, 0) for k in COUNT_KEYS}
    summary["files"] = len(plan["files"])
    summary["partitions"] = len(plan["partitions"])
    summary["inputs"] = plan["inputs"]
    summary["fingerprint"] = plan["fingerprint"]
    summary["parameters"] = parameters
    summary["outputs"] = sorted(FINAL_NAMES.values())
    summary["breakdown"] = totals.get("breakdown") or merge_breakdowns([])
    summary["timings"] = {
        "discovery_s": plan["discovery_s"],
        "read_convert_s": stage.get("read_parse_s", 0.0),
        "windows_overlap_s": stage.get("windows_overlap_s", 0.0),
        "export_parts_s": stage.get("write_s", 0.0),
        "partitions_wall_s": sum(part_walls),
        "merge_s": merge_s,
        "reused": reused,
    }
    return summary


def _reuse_line(reused: dict[str, Any]) -> str:
    n = reused["partitions"]
    found = [
        *(["partition plan"] if reused["plan"] else []),
        *([f"{reused['conversions']} of {n} conversions"] if reused["conversions"] else []),
        *([f"{reused['windows']} of {n} partitions' windows"] if reused["windows"] else []),
    ]
    return "  reused from earlier runs: " + (", ".join(found) if found else "nothing")


def _row(label: str, seconds: float, items: str) -> str:
    return f"  {label:<34}{seconds:>9.2f} s   {items}"


def end_of_run_block(summary: dict[str, Any], output_dir: Location) -> str:
    """A block in the spirit of the reference's ``PIPELINE COMPLETE`` log, per stage."""
    t = summary["timings"]
    dur = summary["filtered_dur"]
    lines = [
        RULE,
        "PIPELINE COMPLETE",
        RULE,
        _row("discovery + partition plan", t["discovery_s"], f"files: {summary['files']}, partitions: {summary['partitions']}"),
        _row("read + convert (Lhotse)", t["read_convert_s"], f"entries processed: {summary['entries']}"),
        _row("windows + overlap filter", t["windows_overlap_s"], f"entries processed: {summary['entries']}"),
        f"      windows_created: {summary['windows']}",
        f"      output_windows (after overlap): {summary['filtered_windows']}",
        f"      filtered_audio_duration: {dur:.2f} s ({dur / 3600:.2f} h)",
        f"      truncation_events: {summary['truncation_events']}",
        _row("export (part files)", t["export_parts_s"], f"entries written: {summary['entries']}"),
        _row("merge (final outputs)", t["merge_s"], f"partitions merged: {summary['partitions']}"),
        f"  rejected entries: {summary['rejected']}" + (" (see rejects.jsonl)" if summary["rejected"] else ""),
        "  odd but valid: "
        f"unsorted {summary['unsorted_entries']}, "
        f"overlapping segments {summary['overlapping_segment_entries']}, "
        f"duplicate windows {summary['duplicate_window_entries']}, "
        f"below min_sample_rate {summary['low_sample_rate_entries']}",
        _reuse_line(t["reused"]),
        f"  outputs in {output_dir}",
        f"  report (kept and lost, charts): {join(output_dir, REPORT_FILE)}",
        RULE,
    ]
    return "\n".join(lines)
