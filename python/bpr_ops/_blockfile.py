"""Block files without TensorFlow (for bpr-decode): the records of an
Elephant-Bird block file, plain or gzip, held in memory. As strict as the
dataset op (bpr_protocol::block): every byte must be blocks, and anything else
is a DecodeError naming the byte offset and what was expected."""

from __future__ import annotations

import gzip
import struct
import zlib

from .decode import DecodeError

MARKER = bytes.fromhex("29d8d50658cd4c29b2bc57992171bdff")


def looks_like_block_file(data: bytes) -> bool:
    return data.startswith(MARKER) or data.startswith(b"\x1f\x8b")


def _varint(data: bytes, at: int, end: int, what: str) -> tuple[int, int]:
    value = 0
    for i in range(10):
        if at >= end:
            raise DecodeError(f"at byte {at}: {what} runs past the end of its block")
        b = data[at]
        at += 1
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if value >= 1 << 64:
                raise DecodeError(f"at byte {at - 10}: {what}: a varint over 64 bits")
            return value, at
    raise DecodeError(f"at byte {at - 10}: {what}: a varint longer than 10 bytes")


def block_records(data: bytes) -> list[bytes]:
    """The records of a block file's bytes (gzip is inflated first)."""
    if data.startswith(b"\x1f\x8b"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DecodeError(f"not a readable gzip stream: {e}") from None
    records, at = [], 0
    while at < len(data):
        if data[at : at + 16] != MARKER:
            raise DecodeError(f"at byte {at}: expected the 16-byte block marker, found {data[at:at + 16].hex(' ')}")
        if at + 20 > len(data):
            raise DecodeError(f"at byte {at}: the file ends inside a block header")
        (size,) = struct.unpack_from("<i", data, at + 16)
        start, pos = at, at + 20
        if size <= 0:
            raise DecodeError(f"at byte {at + 16}: block size {size}: expected a positive int32")
        end = pos + size
        if end > len(data):
            raise DecodeError(f"at byte {at + 16}: block size {size} runs past the end of the file")
        version = False
        while pos < end:
            tag, pos = _varint(data, pos, end, "a SerializedBlock field tag")
            number, wire = tag >> 3, tag & 7
            if number == 1 and wire == 0:
                v, pos = _varint(data, pos, end, "the version")
                if v != 1:
                    raise DecodeError(f"at byte {pos}: block at byte {start} has version {v}; expected 1")
                version = True
            elif wire == 2:
                n, pos = _varint(data, pos, end, f"field {number}")
                if pos + n > end:
                    raise DecodeError(f"at byte {pos}: field {number} has length {n}, past its block (at byte {start})")
                if number == 3:
                    if not version:
                        raise DecodeError(f"at byte {pos}: a record before the version in the block at byte {start}")
                    records.append(data[pos : pos + n])
                pos += n
            elif wire == 0:
                _, pos = _varint(data, pos, end, f"field {number}")
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
                if pos > end:
                    raise DecodeError(f"at byte {pos}: field {number} runs past its block (at byte {start})")
            else:
                raise DecodeError(f"at byte {pos}: SerializedBlock field {number} has wire type {wire}")
        if not version:
            raise DecodeError(f"at byte {start}: the block has no version")
        at = end
    return records
