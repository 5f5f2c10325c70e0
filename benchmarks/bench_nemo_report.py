"""Cost of the outputs made for training: the NeMo manifest per entry (compiled writer vs
its Python rule), the report per run (matplotlib import, drawing) and the transcript view
(off by default) on the job's window cuts.

The input is generated as in ``bench_job.py``; the job runs once (``run_job`` with the
Lhotse manifests), then each part is timed on its own, best of ``--repeat``.

    python benchmarks/bench_nemo_report.py --entries 10000
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_job import ROOT, SHARED_SAMPLE, make_input  # noqa: E402

IMPORT_REPORT = "import time; t = time.perf_counter(); import alm_lhotse.report.page; print(time.perf_counter() - t)"
IMPORT_BASE = "import time; t = time.perf_counter(); import alm_lhotse.execution.runner; print(time.perf_counter() - t)"


def best(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def processed_entries(path: Path) -> list[Any]:
    """Every entry after the core, as the writers get it, its recording already made
    (the Lhotse outputs share it), so only the NeMo lines are timed."""
    from alm_lhotse.config import OverlapConfig, WindowConfig
    from alm_lhotse.core.entry import process_entry
    from alm_lhotse.outputs.lhotse_outputs import entry_recording
    from alm_lhotse.outputs.registry import ProcessedEntry
    from alm_lhotse.reading.reader import read_entries

    wcfg, ocfg = WindowConfig(), OverlapConfig()
    out = []
    for k, entry in enumerate(read_entries(path)):
        result = process_entry(entry, wcfg, ocfg, False)
        p = ProcessedEntry(entry, f"in:{k}", result.built.segments, result, wcfg, frozenset())
        p.shared("recording", entry_recording)
        out.append(p)
    return out


def import_seconds(code: str, repeat: int) -> float:
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout) for _ in range(repeat))


@click.command()
@click.option("--entries", default=10000, show_default=True, help="Entries to generate.")
@click.option("--repeat", default=3, show_default=True, help="Runs per figure (the best is printed).")
def main(entries: int, repeat: int) -> None:
    from alm_lhotse import native
    from alm_lhotse.config import OverlapConfig, WindowConfig
    from alm_lhotse.execution.runner import run_job
    from alm_lhotse.outputs.nemo_manifest import nemo_lines

    sample = SHARED_SAMPLE if SHARED_SAMPLE.exists() else ROOT / "alm_lhotse" / "data" / "sample_manifest.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "input.jsonl", Path(tmp) / "out"
        make_input(inp, entries, sample)
        summary = run_job(inp, out, WindowConfig(), OverlapConfig(), jobs=1, lhotse=True)
        ps = processed_entries(inp)
        compiled = best(repeat, lambda: [nemo_lines(p) for p in ps]) if native.kernel_enabled() else float("nan")
        native._PURE_PYTHON = True
        python = best(repeat, lambda: [nemo_lines(p) for p in ps])
        native._PURE_PYTHON = False
        from alm_lhotse.report.page import write_report

        report_import = import_seconds(IMPORT_REPORT, repeat) - import_seconds(IMPORT_BASE, repeat)
        draw = best(repeat, lambda: write_report(out, summary))
        from alm_lhotse.lhotse_io import write_transcript_view
        from alm_lhotse.outputs.streams import CUTS_PART, FINAL_NAMES, TRANSCRIPTS_FINAL

        view = best(repeat, lambda: write_transcript_view(out / FINAL_NAMES[CUTS_PART], out / TRANSCRIPTS_FINAL))
        nemo_mb = (out / FINAL_NAMES["windows_nemo.jsonl"]).stat().st_size / 2**20
    kept = summary["filtered_windows"]
    print(f"entries {summary['entries']}, windows kept {kept}, alm_windows_nemo.jsonl {nemo_mb:.1f} MiB")
    print(f"NeMo manifest, compiled   {compiled:6.3f} s  ({compiled / entries * 1e6:5.1f} us/entry)")
    print(f"NeMo manifest, Python     {python:6.3f} s  ({python / entries * 1e6:5.1f} us/entry)")
    print(f"report: matplotlib import {report_import:6.3f} s  (per process that imports the pipeline)")
    print(f"report: charts and page   {draw:6.3f} s  (per run, from summary.json)")
    print(f"transcript view (if on)   {view:6.3f} s  ({view / max(kept, 1) * 1e6:5.0f} us/window)")


if __name__ == "__main__":
    main()
