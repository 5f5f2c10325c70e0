"""Gzip outputs are a function of their content: the same writes give the same bytes in
any process, whatever its heap held before, and a header without a timestamp.

Issue 15 (one partition's gzip member differing in one LZ77 choice, content equal) was
not caused by the writer; these tests pin down the writer's side of that guarantee."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys

from alm_lhotse.outputs.registry import GzipWriter

_N_LINES = 6000  # about 2.6 MiB: three batches of the writer


def _lines(n: int = _N_LINES) -> list[bytes]:
    """JSON-like lines with repeats at many distances, like a supervisions manifest."""
    out = []
    for i in range(n):
        words = ",".join(f'"w{(i * 7 + k) % 911}"' for k in range(i % 40))
        out.append(f'{{"id":"rec-{i % 97}-{i}","start":{i * 0.37:.2f},"text":[{words}]}}\n'.encode())
    return out


def _compressed(lines: list[bytes]) -> bytes:
    class _Keep(io.BytesIO):
        def close(self) -> None:  # keep the bytes readable after the writer closes it
            pass

    target = _Keep()
    writer = GzipWriter(target)
    for line in lines:
        writer.write(line)
    writer.close()
    return target.getvalue()


def _churn_heap() -> None:
    """Leave freed, non-zero memory of the compressor's buffer sizes behind."""
    junk = [os.urandom(size) for size in (1 << 16, 300_000, 1 << 20, 3 << 20)]
    del junk


def test_same_writes_same_bytes_in_one_process() -> None:
    lines = _lines()
    first = _compressed(lines)
    _churn_heap()
    assert _compressed(lines) == first
    assert gzip.decompress(first) == b"".join(lines)
    assert first[4:8] == b"\0\0\0\0"  # no timestamp in the gzip header


def test_same_writes_same_bytes_in_fresh_processes() -> None:
    code = (
        "import hashlib, sys, tests.test_determinism as t\n"
        "t._churn_heap()\n"
        "sys.stdout.write(hashlib.md5(t._compressed(t._lines())).hexdigest())\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    digests = {
        subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True, capture_output=True, text=True).stdout
        for _ in range(3)
    }
    assert digests == {hashlib.md5(_compressed(_lines())).hexdigest()}


def test_batches_follow_sizes_not_time() -> None:
    """The writer compresses when its pending bytes reach the batch size, so where the
    batches end depends on the writes only: a small batch size gives other bytes, the
    same batch size the same bytes, and the content is equal either way."""
    lines = _lines(1500)

    def with_batch(batch: int) -> bytes:
        target = io.BytesIO()
        writer = GzipWriter(target, batch_bytes=batch)
        target.close = lambda: None  # type: ignore[method-assign]
        for line in lines:
            writer.write(line)
        writer.close()
        return target.getvalue()

    assert with_batch(4096) == with_batch(4096)
    assert gzip.decompress(with_batch(4096)) == gzip.decompress(with_batch(1 << 20)) == b"".join(lines)
