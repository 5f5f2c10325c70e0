"""The audio export against the reference's cutter, on the same windows; prints figures.

    PYTHONPATH=. python benchmarks/bench_shar.py --reference-python VENV/bin/python

Generates (deterministically, once, under ``--workdir``) the audio sets of issue 13:
12 recordings x 20 min of 16 kHz mono FLAC and 4 x 20 min of 48 kHz stereo 16-bit WAV,
each with a manifest of three speakers taking turns, and makes their windows with
``AlmWindows`` (not timed). Then, alternately, for each set and repeat:

* ours: ``luigi --module luigi_tasks AlmShar --mono --sampling-rate 16000 --workers N``
  as a whole process (start-up, scheduling, planning, writing, summary), N = 1 and 2;
* the reference: NeMo Curator 1.4.0's ``SnippetExtractionStage`` run in-process in its
  own venv (``--reference-python``) on the same windows, one recording per task; its
  time is the extraction alone (``process`` calls and ``teardown``), not its start-up.

Also the compact-audio option on the 48 kHz stereo set: bytes per window on disk and
what a window costs in memory (encoded, as a Shar cut holds it; decoded float32).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SETS = {
    "flac16k": {"count": 12, "rate": 16000, "channels": 1, "ext": "flac"},
    "wav48k": {"count": 4, "rate": 48000, "channels": 2, "ext": "wav"},
}
SECONDS = 1200
EXPORT_ARGS = ["--mono", "--sampling-rate", "16000"]

REFERENCE_SCRIPT = r"""
import json, sys, time, gzip, os
from collections import OrderedDict
from nemo_curator.stages.audio.alm.pretrain.extraction import SnippetExtractionStage
from nemo_curator.tasks import AudioTask
cuts_path, out = sys.argv[1], sys.argv[2]
plans = OrderedDict()
with gzip.open(cuts_path, "rt") as f:
    for line in f:
        cut = json.loads(line)
        path = cut["recording"]["sources"][0]["source"]
        plans.setdefault(path, []).append({"start": cut["start"], "end": cut["start"] + cut["duration"], "segments": []})
stage = SnippetExtractionStage(output_dir=out, output_audio_tar_path=out + "/audio.tar", target_sample_rate=16000, output_format="flac")
stage.setup_on_node(); stage.setup()
started = time.perf_counter()
cpu = time.process_time()
snippets = 0
for i, (path, plan) in enumerate(plans.items()):
    task = AudioTask(task_id=f"rec{i}", dataset_name="bench", data={"id": f"rec{i}", "audio_filepath": path, "_snippet_plan": plan})
    snippets += len(stage.process(task))
stage.teardown()
print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "snippets": snippets}))
"""


def speech_like(seconds: int, rate: int, channels: int, seed: int) -> np.ndarray:
    """Low-passed noise under a syllable-rate envelope with pauses: compresses about as
    speech does, unlike white noise."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    n = seconds * rate
    sos = butter(4, min(3400, rate / 2 - 1), fs=rate, output="sos")
    frames = -(-n // (rate // 5))
    envelope = np.repeat(rng.uniform(0, 1, frames) * (rng.uniform(0, 1, frames) > 0.2), rate // 5)[:n]
    envelope = np.convolve(envelope, np.ones(rate // 50) / (rate // 50), mode="same")
    out = np.empty((n, channels), dtype=np.float32)
    for c in range(channels):
        out[:, c] = 0.3 * sosfilt(sos, rng.standard_normal(n)) * envelope
    return out


def turns(seconds: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(1000 + seed)
    segments, t, k = [], 0.0, 0
    while True:
        length = float(rng.uniform(2.0, 14.0))
        if t + length > seconds:
            return segments
        start, end = round(t, 2), round(t + length, 2)
        words = [{"word": f"w{k}_{j}", "start": round(start + j, 2), "end": round(start + j + 0.8, 2)} for j in range(int(length))]
        segments.append({"start": start, "end": end, "speaker": f"spk{k % 3}", "text": " ".join(w["word"] for w in words),
                         "words": words, "metrics": {"bandwidth": 8000}})
        t = end + float(rng.uniform(0.0, 0.6))
        k += 1


def make_set(root: Path, name: str, spec: dict) -> Path:
    directory = root / name
    manifest = directory / "manifest.jsonl"
    if manifest.exists():
        return manifest
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(spec["count"]):
        path = directory / f"rec{i:02d}.{spec['ext']}"
        sf.write(path, speech_like(SECONDS, spec["rate"], spec["channels"], seed=i), spec["rate"], subtype="PCM_16")
        entry = {"audio_filepath": str(path), "audio_sample_rate": spec["rate"], "duration": SECONDS, "segments": turns(SECONDS, i)}
        lines.append(json.dumps(entry))
    manifest.with_suffix(".tmp").write_text("\n".join(lines) + "\n")
    manifest.with_suffix(".tmp").rename(manifest)
    return manifest


def luigi(*args: str, workers: int = 1) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS in MiB of the largest process of one luigi run."""
    cmd = [sys.executable, "-m", "luigi", "--module", "luigi_tasks", *args, "--workers", str(workers), "--local-scheduler"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-3000:]}")
    return took, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def windows_of(manifest: Path, out: Path) -> Path:
    luigi("AlmWindows", "--manifest-path", str(manifest), "--output-dir", str(out), workers=2)
    return out / "lhotse" / "alm_cuts_windows_all.jsonl.gz"


def ours(manifest: Path, out: Path, shar: Path, workers: int, extra: list[str]) -> tuple[float, float, float]:
    shutil.rmtree(shar, ignore_errors=True)
    shutil.rmtree(shar.with_name(shar.name + ".export"), ignore_errors=True)
    return luigi("AlmShar", "--manifest-path", str(manifest), "--output-dir", str(out), "--shar-dir", str(shar), *extra, workers=workers)


def reference(python: str, cuts: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    script = out.parent / "reference_cutter.py"
    script.write_text(REFERENCE_SCRIPT)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": ""}
    proc = subprocess.run([python, str(script), str(cuts), str(out)], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"reference cutter failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def window_stats(cuts: Path) -> tuple[int, float]:
    with gzip.open(cuts, "rt") as f:
        durations = [json.loads(line)["duration"] for line in f]
    return len(durations), sum(durations) / 3600


def compact_figures(manifest: Path, out: Path, root: Path) -> None:
    from lhotse import CutSet

    for label, extra in [("as the source (48 kHz stereo 16-bit FLAC)", []), ("--compact-audio (16 kHz mono 16-bit FLAC)", ["--compact-audio"])]:
        shar = root / ("shar-compact" if extra else "shar-full")
        ours(manifest, out, shar, 2, extra)
        size = sum(p.stat().st_size for p in shar.glob("recording.*.tar"))
        cuts = list(CutSet.from_shar(in_dir=shar))
        held = statistics.mean(len(c.recording.sources[0].source) for c in cuts)
        decoded = statistics.mean(c.num_samples * len(c.recording.channel_ids) * 4 for c in cuts)
        print(f"  {label}: {size / len(cuts) / 2**20:.2f} MiB per window on disk, "
              f"{held / 2**20:.2f} MiB held per cut read from Shar, {decoded / 2**20:.1f} MiB decoded (float32)")


def resampler_figures() -> None:
    """600 s of 48 kHz mono to 16 kHz: soxr (ours) against Lhotse's own resampler."""
    from lhotse.augmentation import Resample

    from alm_lhotse.audio import resample

    x = speech_like(600, 48000, 1, seed=99)
    for label, run in [("soxr HQ (ours)", lambda: resample(x, 48000, 16000)),
                       ("Lhotse Resample", lambda: Resample(48000, 16000)(np.ascontiguousarray(x.T)))]:
        best = min(_timed(run) for _ in range(3))
        print(f"  resampling 600 s 48 kHz mono to 16 kHz, {label}: {best:.3f} s CPU")


def _timed(run: object) -> float:
    started = time.process_time()
    run()  # type: ignore[operator]
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("bench_shar_data"))
    parser.add_argument("--reference-python", help="python of a venv with nemo-curator 1.4.0 (see docs/performance.md)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    args = parser.parse_args()
    root = args.workdir.absolute()
    for name in args.sets:
        manifest = make_set(root, name, SETS[name])
        out = root / f"{name}-out"
        cuts = windows_of(manifest, out)
        count, hours = window_stats(cuts)
        print(f"{name}: {SETS[name]['count']} recordings x {SECONDS // 60} min, {count} windows, {hours:.2f} h of windows")
        times: dict[str, list[float]] = {k: [] for k in ("ref", "ref_cpu", "w1", "w1_cpu", "w1_rss", "w2", "w2_cpu", "w2_rss")}
        for _ in range(args.repeats):
            if args.reference_python:
                ref = reference(args.reference_python, cuts, root / "ref-out")
                times["ref"].append(ref["seconds"])
                times["ref_cpu"].append(ref["cpu"])
            for workers in (1, 2):
                wall, cpu, rss = ours(manifest, out, root / "shar-bench", workers, EXPORT_ARGS)
                times[f"w{workers}"].append(wall)
                times[f"w{workers}_cpu"].append(cpu)
                times[f"w{workers}_rss"].append(rss)
        med = {k: statistics.median(v) for k, v in times.items() if v}
        for workers in (1, 2):
            runs = ", ".join(f"{t:.2f}" for t in times[f"w{workers}"])
            print(f"  ours --workers {workers}: {med[f'w{workers}']:.2f} s whole process, {med[f'w{workers}_cpu']:.2f} s CPU, "
                  f"largest process {max(times[f'w{workers}_rss']):.0f} MiB (runs {runs})")
        if "ref" in med:
            runs = ", ".join(f"{t:.2f}" for t in times["ref"])
            print(f"  reference cutter: {med['ref']:.2f} s extraction, {med['ref_cpu']:.2f} s CPU (runs {runs})")
            print(f"  wall ratio: {med['ref'] / med['w1']:.2f}x with one worker, {med['ref'] / med['w2']:.2f}x with two")
            print(f"  CPU ratio (work per core): {med['ref_cpu'] / med['w1_cpu']:.2f}x with one worker, "
                  f"{med['ref_cpu'] / med['w2_cpu']:.2f}x with two")
        if name == "wav48k":
            compact_figures(manifest, out, root)
    resampler_figures()


if __name__ == "__main__":
    main()
