"""Cutting a FLAC file at any sample without re-encoding most of it.

A FLAC stream is a header (``fLaC`` + metadata blocks, STREAMINFO first) and frames that
each decode on their own. A window of a FLAC source stored as FLAC at the same rate,
channels and bit depth is therefore: the samples before the first whole frame of the
window (re-encoded), the source frames inside the window (copied byte for byte), and the
samples after the last whole frame (re-encoded). Decoding gives exactly the samples the
decode-and-encode path gives; encoding and decoding, about all of the export's work, is
left for two partial frames per window.

The new stream uses variable block sizes (its first frame is shorter), so every frame
header is rewritten to carry its first sample's number: the header's CRC-8 is computed
again, and the frame's CRC-16 is updated without reading the frame, from the change of the
header (CRC is linear: ``crc(H'+R) = crc(H+R) ^ (crc(H) ^ crc(H')) * x^(8 len(R)) mod P``).

Frames are found by their sync code, checked by the header's CRC-8 and by their number
being the next one; anything unexpected (another blocking strategy, a number out of order,
metadata we do not know, a header that does not parse) makes ``FrameIndex`` give up, and
the caller decodes and encodes instead. STREAMINFO's MD5 is left zero ("not computed"),
as the format allows.
"""

from __future__ import annotations

import os
import struct
from typing import Any, BinaryIO, Callable, Optional

MAGIC = b"fLaC"
_SYNC = b"\xff\xf8"  # fixed-blocksize frames; the sources we copy from
_CHUNK = 1 << 20
_CRC16_POLY = 0x8005
Reader = Callable[[int, int], bytes]  # (offset, size) -> bytes
Encoder = Callable[[int, int], bytes]  # (first sample, count) -> a FLAC stream of them


def _crc8_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC16_POLY) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


CRC8 = _crc8_table()
CRC16 = _crc16_table()
_SHIFTS = [1]  # x^(8n) mod P, n bytes


def crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = CRC8[crc ^ byte]
    return crc


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ CRC16[(crc >> 8) ^ byte]
    return crc


def _extend_shifts(nbytes: int) -> None:
    """``_SHIFTS[n]`` = x^(8n) modulo the CRC-16 polynomial, up to ``nbytes``."""
    while len(_SHIFTS) <= nbytes:
        v = _SHIFTS[-1]
        _SHIFTS.append(((v << 8) & 0xFFFF) ^ CRC16[v >> 8])


def _utf8_number(value: int) -> bytes:
    """FLAC's UTF-8-like coding of frame and sample numbers (up to 36 bits)."""
    if value < 0x80:
        return bytes([value])
    for length, limit in ((2, 11), (3, 16), (4, 21), (5, 26), (6, 31), (7, 36)):
        if value < 1 << limit:
            lead = (0xFF00 >> length) & 0xFF
            tail = [0x80 | ((value >> (6 * i)) & 0x3F) for i in range(length - 2, -1, -1)]
            return bytes([lead | (value >> (6 * (length - 1))) & 0xFF, *tail])
    raise ValueError(f"sample number {value} too large for FLAC")


def _read_number(buf: bytes, pos: int) -> Optional[tuple[int, int]]:
    """(value, length) of a coded number at ``pos``; None when it is not one."""
    first = buf[pos]
    if first < 0x80:
        return first, 1
    length = next((n for n in range(2, 8) if first & (0x80 >> n) == 0), 0)
    if not length or first & (0x80 >> (length - 1)) == 0 or pos + length > len(buf):
        return None
    value = first & (0x7F >> length)
    for byte in buf[pos + 1 : pos + length]:
        if byte & 0xC0 != 0x80:
            return None
        value = (value << 6) | (byte & 0x3F)
    return value, length


class Header:
    """A parsed frame header: what a rewrite keeps, and where the frame's data starts."""

    __slots__ = ("fixed_fields", "extra", "number", "blocksize", "length")

    def __init__(self, fixed_fields: bytes, extra: bytes, number: int, blocksize: int, length: int) -> None:
        self.fixed_fields, self.extra, self.number = fixed_fields, extra, number
        self.blocksize, self.length = blocksize, length

    def rewritten(self, sample_number: int) -> bytes:
        """The header of a variable-blocksize stream starting at ``sample_number``."""
        head = b"\xff\xf9" + self.fixed_fields + _utf8_number(sample_number) + self.extra
        return head + bytes([crc8(head)])


def parse_header(buf: bytes, pos: int) -> Optional[Header]:
    """The fixed-blocksize frame header at ``pos`` when its fields and CRC-8 are valid."""
    if pos + 6 > len(buf) or buf[pos] != 0xFF or buf[pos + 1] != 0xF8:
        return None
    bs_code, sr_code = buf[pos + 2] >> 4, buf[pos + 2] & 0x0F
    if bs_code == 0 or sr_code == 15 or buf[pos + 3] & 0x01 or (buf[pos + 3] >> 4) > 10 or (buf[pos + 3] >> 1) & 7 == 3:
        return None
    number = _read_number(buf, pos + 4)
    if number is None:
        return None
    at = pos + 4 + number[1]
    extra_len = (1 if bs_code == 6 else 2 if bs_code == 7 else 0) + (1 if sr_code == 12 else 2 if sr_code in (13, 14) else 0)
    if at + extra_len >= len(buf):
        return None
    extra = buf[at : at + extra_len]
    if crc8(buf[pos : at + extra_len]) != buf[at + extra_len]:
        return None
    if bs_code in (6, 7):
        blocksize = (extra[0] if bs_code == 6 else (extra[0] << 8) | extra[1]) + 1
    else:
        blocksize = 192 if bs_code == 1 else 576 << (bs_code - 2) if bs_code < 8 else 256 << (bs_code - 8)
    return Header(bytes(buf[pos + 2 : pos + 4]), bytes(extra), number[0], blocksize, at + extra_len + 1 - pos)


def _shift_all(values: list[int], nbytes: list[int]) -> list[int]:
    """Each value times x^(8n) modulo the CRC-16 polynomial (carry-less, with numpy): what a
    CRC-16 over a header becomes once ``n`` more bytes follow it."""
    import numpy as np

    _extend_shifts(max(nbytes, default=0))
    a = np.array(values, dtype=np.uint32)
    b = np.array([_SHIFTS[n] for n in nbytes], dtype=np.uint32)
    result = np.zeros_like(a)
    for bit in range(15, -1, -1):
        result = np.where(result & 0x8000, ((result << 1) ^ _CRC16_POLY) & 0xFFFF, result << 1)
        result ^= np.where((b >> bit) & 1, a, 0).astype(np.uint32)
    return result.tolist()


def renumbered(frames: list[tuple[Any, Header]]) -> list[Any]:
    """The frames as pieces of a variable-blocksize stream from sample 0: each header
    rewritten with its first sample's number, each CRC-16 updated for the new header."""
    heads, deltas, rests, sample = [], [], [], 0
    for frame, header in frames:
        new_head = header.rewritten(sample)
        heads.append(new_head)
        deltas.append(crc16(frame[: header.length]) ^ crc16(new_head))
        rests.append(len(frame) - header.length - 2)
        sample += header.blocksize
    pieces: list[Any] = []
    for (frame, header), new_head, shifted in zip(frames, heads, _shift_all(deltas, rests)):
        old_crc = (frame[-2] << 8) | frame[-1]
        pieces += [new_head, frame[header.length : -2], struct.pack(">H", old_crc ^ shifted)]
    return pieces


class Unusable(Exception):
    """The file is not one this module can copy frames from; decode and encode instead."""


class StreamInfo:
    """The fields of STREAMINFO a cut stream repeats."""

    def __init__(self, block: bytes) -> None:
        self.min_block, self.max_block = struct.unpack(">HH", block[:4])
        packed = int.from_bytes(block[10:18], "big")
        self.rate = packed >> 44
        self.channels = ((packed >> 41) & 0x7) + 1
        self.bits = ((packed >> 36) & 0x1F) + 1
        self.total = packed & ((1 << 36) - 1)

    def packed(self, min_block: int, max_block: int, total: int) -> bytes:
        fields = (self.rate << 44) | ((self.channels - 1) << 41) | ((self.bits - 1) << 36) | total
        return struct.pack(">HH", min_block, max_block) + bytes(6) + fields.to_bytes(8, "big") + bytes(16)


def _metadata_end(read: Reader) -> tuple[StreamInfo, int]:
    """STREAMINFO and the offset of the first frame; ``read(offset, n)`` gives bytes."""
    if read(0, 4) != MAGIC:
        raise Unusable("not a FLAC stream")
    pos, info = 4, None
    while True:
        head = read(pos, 4)
        if len(head) < 4:
            raise Unusable("truncated metadata")
        kind, length = head[0] & 0x7F, int.from_bytes(head[1:4], "big")
        if kind == 0:
            info = StreamInfo(read(pos + 4, length))
        pos += 4 + length
        if head[0] & 0x80:
            break
    if info is None or info.min_block != info.max_block or info.min_block < 16:
        raise Unusable("no fixed block size")
    return info, pos


class FrameIndex:
    """Offsets of the frames of a fixed-blocksize FLAC source, found as far as asked."""

    def __init__(self, read: Reader, size: int, release: Optional[Callable[[], None]] = None) -> None:
        self.read, self.size, self.release = read, size, release
        self.info, first = _metadata_end(read)
        self.block = self.info.min_block
        self.offsets = [first]  # offsets[k]: frame k; one past the last frame: the stream's end
        self.headers: list[Header] = []
        self.buf, self.buf_start = b"", first
        self._fill(first, 32)
        self.codes = self.buf[2] if len(self.buf) > 2 else -1  # frame 0's codes: every frame has its rate code
        self.ended = False

    @classmethod
    def of_bytes(cls, data: bytes) -> "FrameIndex":
        return cls(lambda offset, n: data[offset : offset + n], len(data))

    @classmethod
    def of_file(cls, path: str) -> "FrameIndex":
        """The index of a file, read with ``pread`` as far as windows ask; ``close()`` it."""
        fd = os.open(path, os.O_RDONLY)
        try:
            return cls(lambda offset, n: os.pread(fd, n, offset), os.fstat(fd).st_size, lambda: os.close(fd))
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def of_stream(cls, stream: BinaryIO) -> "FrameIndex":
        """The index of a seekable stream it now owns (an object in storage); ``close()`` it."""

        def read(offset: int, n: int) -> bytes:
            stream.seek(offset)
            return stream.read(n)

        try:
            return cls(read, stream.seek(0, os.SEEK_END), stream.close)
        except BaseException:
            stream.close()
            raise

    def close(self) -> None:
        if self.release is not None:
            self.release()
            self.release = None

    def frames(self) -> int:
        return -(-self.info.total // self.block)

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Byte range of frames ``first`` .. ``last - 1``."""
        while len(self.offsets) <= last and not self.ended:
            self._next()
        if len(self.offsets) <= last:
            raise Unusable("fewer frames than STREAMINFO says")
        return self.offsets[first], self.offsets[last]

    def _next(self) -> None:
        """Find where frame ``len(offsets) - 1`` ends: the next valid header, numbered next.
        A candidate whose sample rate code differs from frame 0's is skipped unparsed (the
        last frame's block size code may differ); a valid header with another number ends
        copying."""
        start = self.offsets[-1]
        header = self._header_at(start)
        if header is None or header.number != len(self.offsets) - 1:
            raise Unusable(f"no frame {len(self.offsets) - 1} at byte {start}")
        self.headers.append(header)
        pos = start + header.length
        while True:
            found = self._find(pos)
            if found is None:
                if len(self.offsets) != self.frames():
                    raise Unusable(f"the stream ends after frame {len(self.offsets) - 1} of {self.frames()}")
                self.offsets.append(self.size)
                self.ended = True
                return
            self._fill(found, 32)
            codes = self.buf[found - self.buf_start + 2] if found + 2 < self.buf_start + len(self.buf) else -1
            candidate = self._header_at(found) if codes & 0x0F == self.codes & 0x0F else None
            if candidate is not None:
                if candidate.number != len(self.offsets):
                    raise Unusable(f"frame numbered {candidate.number} where {len(self.offsets)} was due")
                self.offsets.append(found)
                return
            pos = found + 1

    def _header_at(self, pos: int) -> Optional[Header]:
        self._fill(pos, 32)
        return parse_header(self.buf, pos - self.buf_start)

    def _find(self, pos: int) -> Optional[int]:
        while True:
            self._fill(pos, 2)
            at = self.buf.find(_SYNC, pos - self.buf_start)
            if at >= 0:
                return self.buf_start + at
            if self.buf_start + len(self.buf) >= self.size:
                return None
            pos = max(pos, self.buf_start + len(self.buf) - 1)
            self._fill(pos, _CHUNK)

    def _fill(self, pos: int, need: int) -> None:
        """Make ``buf`` hold ``pos`` .. ``pos + need`` (as far as the stream goes)."""
        end = self.buf_start + len(self.buf)
        if pos >= self.buf_start and pos + need <= end or end >= self.size and pos >= self.buf_start:
            return
        keep = self.buf[pos - self.buf_start :] if self.buf_start <= pos <= end else b""
        start = pos + len(keep)
        self.buf = keep + self.read(start, max(need, _CHUNK))
        self.buf_start = pos


def _frames_of(data: bytes, index: FrameIndex, first: int, last: int) -> list[tuple[memoryview, Header]]:
    """Frames ``first`` .. ``last - 1`` with their headers; ``data`` starts at frame ``first``."""
    begin, _ = index.span(first, last)
    view = memoryview(data)
    return [
        (view[index.offsets[k] - begin : index.offsets[k + 1] - begin], index.headers[k]) for k in range(first, last)
    ]


def cut_stream(index: FrameIndex, first: int, count: int, encode: Encoder) -> Optional[bytes]:
    """FLAC bytes of samples ``first`` .. ``first + count`` of the indexed source: whole
    frames copied, the partial ones at both ends from ``encode(first, count)`` (a FLAC
    stream of those samples). None when the window holds no whole frame to copy or
    reaches past the last whole frame."""
    block, end = index.block, first + count
    inner = -(-first // block)
    if 0 < inner * block - first < 16:  # a first block must have at least 16 samples
        inner += 1
    outer = end // block
    if outer <= inner or outer * block > index.info.total or end > index.info.total:
        return None
    begin, stop = index.span(inner, outer)
    pieces: list[tuple[memoryview, Header]] = []
    if inner * block > first:
        pieces += _all_frames(encode(first, inner * block - first))
    pieces += _frames_of(index.read(begin, stop - begin), index, inner, outer)
    if end > outer * block:
        pieces += _all_frames(encode(outer * block, end - outer * block))
    sizes = [h.blocksize for _, h in pieces]
    if sum(sizes) != count:
        raise Unusable(f"frames hold {sum(sizes)} samples, not {count}")
    info = index.info.packed(min(sizes[:-1] or sizes), max(sizes), count)
    return b"".join([MAGIC, bytes([0x80, 0, 0, len(info)]), info, *renumbered(pieces)])


def _all_frames(stream: bytes) -> list[tuple[memoryview, Header]]:
    index = FrameIndex.of_bytes(stream)
    begin, end = index.span(0, index.frames())
    return _frames_of(stream[begin:end], index, 0, index.frames())
