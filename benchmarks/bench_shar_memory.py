"""Peak RSS of a dataloader worker reading 120 s windows from Shar, per sampler buffer size.

A cut read from Shar holds its encoded audio in memory, so the sampler's buffer holds
``buffer`` windows' audio at once. White noise is the worst case for
compression. Prints one line per buffer size: the worker's peak RSS and MiB per window.

    python benchmarks/bench_shar_memory.py --windows 120 --buffers 10,40,120 --rate 16000
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import click

CHILD = """
import json, resource, sys
import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler
from lhotse.dataset.collation import collate_audio
args = json.loads(sys.argv[1])

class Audio(torch.utils.data.Dataset):
    def __getitem__(self, cuts):
        return collate_audio(cuts)[0].shape

cuts = CutSet.from_shar(in_dir=args["shar"])
sampler = DynamicBucketingSampler(cuts, max_duration=240.0, num_buckets=2, buffer_size=args["buffer"], shuffle=True, seed=0)
loader = torch.utils.data.DataLoader(Audio(), sampler=sampler, batch_size=None, num_workers=1)
batches = sum(1 for _ in loader)
print(json.dumps({"batches": batches, "worker_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def make_shar(directory: Path, windows: int, rate: int, seconds: float) -> float:
    """``windows`` noise windows of ``seconds`` each as FLAC Shar; returns MiB per window."""
    import numpy as np
    import soundfile as sf
    from lhotse import CutSet, Recording

    rng = np.random.default_rng(0)
    cuts = []
    for k in range(windows):
        path = directory / f"noise{k}.flac"
        sf.write(path, (rng.standard_normal(int(seconds * rate)) * 0.2).clip(-1, 1), rate)
        cuts.append(Recording.from_file(path).to_cut())
    (directory / "shar").mkdir()
    CutSet.from_cuts(cuts).to_shar(directory / "shar", fields={"recording": "flac"}, shard_size=max(1, windows // 4))
    audio = sum(p.stat().st_size for p in (directory / "shar").glob("recording.*"))
    return audio / windows / 2**20


@click.command()
@click.option("--windows", default=120, show_default=True)
@click.option("--buffers", default="10,40,120", show_default=True, help="Comma-separated sampler buffer sizes.")
@click.option("--rate", default=16000, show_default=True, help="Sample rate of the windows' audio.")
@click.option("--seconds", default=120.0, show_default=True, help="Window duration.")
def main(windows: int, buffers: str, rate: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        per_window = make_shar(Path(tmp), windows, rate, seconds)
        print(f"{windows} windows of {seconds:g} s at {rate} Hz mono, FLAC in Shar: {per_window:.2f} MiB per window")
        for size in (int(b) for b in buffers.split(",")):
            args = json.dumps({"shar": str(Path(tmp) / "shar"), "buffer": size})
            done = subprocess.run([sys.executable, "-c", CHILD, args], capture_output=True, text=True, check=True)
            peak = json.loads(done.stdout.strip().splitlines()[-1])["worker_peak_mib"]
            print(f"buffer {size:>6} windows   worker peak RSS {peak:>7.0f} MiB")


if __name__ == "__main__":
    main()
