"""twml's feature-id hash in pure Python, so ids need no TensorFlow and no
eager kernel (issue 20: TensorFlow 2.21's eager kernel cache keys `FeatureId`
kernels by a summary of the attr, which keeps only the ends of long names, and
handed a later name an earlier name's kernel, so its id).

The same function as `bpr_protocol::feature_id` (Rust): MurmurHash3 x64 128,
seed 0, over the name's UTF-16 code units as little-endian bytes; the id is
the digest's first 8 bytes as a signed little-endian int64. A name whose
first `#` is at index k > 0 is hashed in two steps (README, "Feature names").
The tests check it against `mmh3` and against the op.
"""

from __future__ import annotations

_M = (1 << 64) - 1
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M
    k ^= k >> 33
    return k


def murmur3_x64_128_h1(data: bytes) -> int:
    """The first 64 bits (h1) of MurmurHash3 x64 128 of `data`, seed 0, unsigned."""
    n = len(data)
    h1 = h2 = 0
    blocks = n // 16
    from_le = int.from_bytes
    for i in range(0, blocks * 16, 16):
        k1 = from_le(data[i:i + 8], "little")
        k2 = from_le(data[i + 8:i + 16], "little")
        k1 = (_rotl((k1 * _C1) & _M, 31) * _C2) & _M
        h1 ^= k1
        h1 = (_rotl(h1, 27) + h2) & _M
        h1 = (h1 * 5 + 0x52DCE729) & _M
        k2 = (_rotl((k2 * _C2) & _M, 33) * _C1) & _M
        h2 ^= k2
        h2 = (_rotl(h2, 31) + h1) & _M
        h2 = (h2 * 5 + 0x38495AB5) & _M
    tail = data[blocks * 16:]
    if len(tail) > 8:
        k2 = from_le(tail[8:], "little")
        h2 ^= (_rotl((k2 * _C2) & _M, 33) * _C1) & _M
    if tail:
        k1 = from_le(tail[:8], "little")
        h1 ^= (_rotl((k1 * _C1) & _M, 31) * _C2) & _M
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & _M
    h2 = (h2 + h1) & _M
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    return (h1 + h2) & _M


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def feature_id_of_text(name: str) -> int:
    """twml's feature id of a name given as text (every code point but lone surrogates)."""
    k = name.find("#")
    if k > 0:
        prefix = murmur3_x64_128_h1(name[:k].encode("utf-16-le"))
        return _signed(murmur3_x64_128_h1(prefix.to_bytes(8, "little") + name[k + 1:].encode("utf-16-le")))
    return _signed(murmur3_x64_128_h1(name.encode("utf-16-le")))


_SHOWN_BYTES = 64


def _escape_ascii(data: bytes) -> str:
    # As Rust's `<[u8]>::escape_ascii`, so the message is the op's word for word.
    out = []
    for b in data:
        if b == 0x09:
            out.append("\\t")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x0D:
            out.append("\\r")
        elif b in (0x5C, 0x27, 0x22):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def not_utf8_message(what: str, name: bytes, error: UnicodeDecodeError) -> str:
    """The message the FeatureId op gives for a name that is not UTF-8."""
    at = error.start
    bad = " ".join(f"0x{b:02x}" for b in name[at:error.end])
    if error.end == len(name) and "unexpected end" in error.reason:
        problem = f"truncated sequence {bad} at byte offset {at} (the name ends inside a character)"
    else:
        problem = f"invalid byte sequence {bad} at byte offset {at}"
    more = "..." if len(name) > _SHOWN_BYTES else ""
    return (
        f"{what} is not valid UTF-8: {problem}; name b\"{_escape_ascii(name[:_SHOWN_BYTES])}\"{more} "
        f"({len(name)} bytes). Feature names are hashed as UTF-8 text, as twml does"
    )
