"""Windows of a FLAC source cut by copying its whole frames: the samples must be exactly
those of decoding and slicing, at any start and length, and anything unexpected must
fall back to decoding and encoding."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from alm_lhotse import flac_frames
from alm_lhotse import shar_write as shar_write_module
from alm_lhotse.flac_frames import (
    FrameIndex,
    Unusable,
    crc16,
    cut_stream,
    parse_header,
    renumbered,
)
from alm_lhotse.recipe import manifest_paths, prepare_alm
from alm_lhotse.shar import export_shar
from tests.test_audio import band_limited_noise, write_conversations


def _source(tmp_path: Path, seconds: float = 20.0, channels: int = 1, subtype: str = "PCM_16", rate: int = 16000) -> Path:
    path = tmp_path / f"src-{channels}-{subtype}.flac"
    samples = band_limited_noise(seconds, rate, 3000, seed=channels, channels=channels)
    samples[-rate // 2 :] = 0  # silent frames at the end are a few bytes each
    sf.write(path, samples, rate, subtype=subtype)
    return path


def _encoder(path: Path) -> Any:
    source = sf.SoundFile(path)
    dtype = "int32" if source.subtype == "PCM_24" else "int16"

    def encode(first: int, count: int) -> bytes:
        source.seek(first)
        out = io.BytesIO()
        sf.write(out, source.read(count, dtype=dtype, always_2d=True), source.samplerate, format="FLAC", subtype=source.subtype)
        return out.getvalue()

    return encode


@pytest.mark.parametrize("channels, subtype", [(1, "PCM_16"), (2, "PCM_16"), (2, "PCM_24")])
def test_cut_streams_decode_to_the_exact_slices(tmp_path: Path, channels: int, subtype: str) -> None:
    path = _source(tmp_path, channels=channels, subtype=subtype)
    full, rate = sf.read(path, dtype="int32", always_2d=True)
    index = FrameIndex.of_file(str(path))
    encode = _encoder(path)
    rng = np.random.default_rng(7)
    spans = [(0, len(full)), (0, 4096 * 3), (4096, 4096 * 2), (4090, 8200), (4081, 9000), (5, len(full) - 5)]
    spans += [(len(full) - 4096 * 5 - 3, 4096 * 5 + 3), (len(full) - 20000, 20000)]
    spans += [(int(a), int(n)) for a, n in zip(rng.integers(0, len(full) // 2, 20), rng.integers(9000, len(full) // 2, 20))]
    for first, count in spans:
        data = cut_stream(index, first, count, encode)
        assert data is not None, (first, count)
        back, back_rate = sf.read(io.BytesIO(data), dtype="int32", always_2d=True)
        assert back_rate == rate and np.array_equal(back, full[first : first + count]), (first, count)
    assert cut_stream(index, 100, 5000, encode) is None  # no whole frame inside: encode it all
    assert cut_stream(index, len(full) - 8192, 8193, encode) is None  # past the end (rounding slack)
    index.close()


def test_renumbered_frames_keep_valid_checksums(tmp_path: Path) -> None:
    data = _source(tmp_path).read_bytes()
    index = FrameIndex.of_bytes(data)
    begin, end = index.span(3, 4)
    header = parse_header(data, begin)
    assert header is not None and header.number == 3
    frame = data[begin:end]
    assert crc16(frame[:-2]) == int.from_bytes(frame[-2:], "big")
    for sample in (0, 127, 128, 4096 * 1000, 2**35):
        lead = parse_header(data, begin)  # a frame of ``sample`` samples before this one
        assert lead is not None
        lead.blocksize = sample
        pieces = renumbered([(frame, lead), (frame, header)])[3:]  # head, data, CRC of the second
        new = b"".join(bytes(p) for p in pieces)
        assert crc16(new[:-2]) == int.from_bytes(new[-2:], "big")
        reparsed = flac_frames._read_number(new, 4)
        assert reparsed is not None and reparsed[0] == sample and new[1] == 0xF9


def test_unexpected_streams_are_refused(tmp_path: Path) -> None:
    data = bytearray(_source(tmp_path).read_bytes())
    with pytest.raises(Unusable):
        FrameIndex.of_bytes(b"RIFF" + bytes(data[4:]))
    index = FrameIndex.of_bytes(bytes(data))
    begin, _ = index.span(5, 6)
    doctored = bytearray(data)
    doctored[begin + 4] = 0x09  # frame 5 claims to be frame 9 (its CRC-8 fixed to match)
    header_end = begin + parse_header(data, begin).length - 1
    doctored[header_end] = flac_frames.crc8(bytes(doctored[begin:header_end]))
    with pytest.raises(Unusable, match="numbered 9 where 5"):
        FrameIndex.of_bytes(bytes(doctored)).span(0, 8)
    with pytest.raises(Unusable, match="ends after frame"):
        FrameIndex.of_bytes(bytes(data[: begin + 40])).span(0, index.frames())


def test_export_of_a_flac_source_copies_frames_and_equals_lhotse_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_conversations(tmp_path / "data", count=2, ext="flac")
    prepare_alm(manifest, tmp_path / "out", progress=False, overlap_percentage=90)
    cuts_path = manifest_paths(tmp_path / "out")["cuts"]
    copied = []
    real = shar_write_module.cut_stream

    def counting(*args: Any) -> Any:
        out = real(*args)
        copied.append(out is not None)
        return out

    monkeypatch.setattr(shar_write_module, "cut_stream", counting)
    export_shar(cuts_path, tmp_path / "shar", progress=False)
    source = CutSet.from_file(cuts_path).to_eager()
    assert len(copied) == len(source) and all(copied)
    for orig, cut in zip(source, CutSet.from_shar(in_dir=tmp_path / "shar")):
        np.testing.assert_array_equal(cut.load_audio(), orig.load_audio())
    export_shar(cuts_path, tmp_path / "resampled", sampling_rate=8000, progress=False)
    assert len(copied) == len(source)  # resampling decodes: no frame copying asked
