"""Checksums of object bytes, end to end, exactly as ``lib/checksum.ts``.

The checksum is CRC-32/ISO-HDLC as zlib computes it (``zlib.crc32``); on the
wire an unsigned 32-bit integer, 0 for no bytes. Writers checksum every
extent and inline object; readers check every whole read, and every range by
combining the crcs of the bytes around it with its own.

Example::

    crc32(b"123456789") == 0xCBF43926
    crc32_combine(crc32(a), crc32(b), len(b)) == crc32(a + b)
"""

from __future__ import annotations

import zlib

from .errors import IntegrityError

CRC32_MAX = 0xFFFF_FFFF


def crc32(data: bytes | bytearray | memoryview, previous: int = 0) -> int:
    """CRC-32 of ``data``; ``previous`` continues a crc over bytes that came before."""
    return zlib.crc32(data, previous) & CRC32_MAX


def is_crc32(value: object) -> bool:
    """True for a value a CRC-32 can take (an int, not a bool, in 0 ..= 2**32 - 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= CRC32_MAX


def _gf2_times(mat: list[int], vec: int) -> int:
    total = 0
    i = 0
    while vec:
        if vec & 1:
            total ^= mat[i]
        vec >>= 1
        i += 1
    return total


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def _one_zero_byte() -> list[int]:
    """The operator that appends one zero byte: the one for a zero bit (the reflected polynomial's shift), squared three times."""
    op = [0xEDB8_8320] + [1 << (n - 1) for n in range(1, 32)]
    for _ in range(3):
        op = _gf2_square(op)
    return op


#: ``_operators[k]`` appends 2**k zero bytes to a crc (a 32x32 matrix over GF(2)); built once, by squaring.
_operators: list[list[int]] = []


def _zeros_operator(k: int) -> list[int]:
    while len(_operators) <= k:
        _operators.append(_gf2_square(_operators[-1]) if _operators else _one_zero_byte())
    return _operators[k]


def crc32_combine(crc_a: int, crc_b: int, length_b: int) -> int:
    """The CRC-32 of A+B from the CRC-32 of A, that of B and B's length (zlib's ``crc32_combine``)."""
    if not is_crc32(crc_a) or not is_crc32(crc_b):
        raise ValueError(f"crc32_combine: crcs must be unsigned 32-bit integers, got {crc_a!r} and {crc_b!r}")
    if not isinstance(length_b, int) or length_b < 0:
        raise ValueError(f"crc32_combine: bad length {length_b!r}")
    crc = crc_a
    bit = 0
    n = length_b
    while n:
        if n & 1:
            crc = _gf2_times(_zeros_operator(bit), crc)
        n >>= 1
        bit += 1
    return (crc ^ crc_b) & CRC32_MAX


def check_bytes(
    what: str,
    data: bytes | bytearray | memoryview,
    *,
    offset: int,
    length: int,
    total: int,
    crc: object,
    prefix_crc: object,
    suffix_crc: object,
) -> None:
    """Raises IntegrityError unless ``data`` is ``[offset, offset + length)`` of ``total`` bytes whose committed crc is ``crc``.

    A whole read is checked by its own crc; a range by combining the crcs of
    the bytes around it (from whoever served it): prefix + range + suffix must
    give ``crc``. An empty part's crc is 0, whatever the server says.
    """
    if len(data) != length:
        raise IntegrityError(f"{what}: {len(data)} bytes, expected {length}")
    if not is_crc32(crc):
        raise IntegrityError(f"{what}: the layout carries no crc to check the bytes by")
    suffix_length = total - offset - length
    prefix = 0 if offset == 0 else prefix_crc
    suffix = 0 if suffix_length == 0 else suffix_crc
    if not is_crc32(prefix) or not is_crc32(suffix):
        raise IntegrityError(f"{what}: no crcs of the bytes around the range")
    got = crc32_combine(crc32_combine(prefix, crc32(data), length), suffix, suffix_length)  # type: ignore[arg-type]
    if got != crc:
        raise IntegrityError(
            f"{what}: bytes [{offset}, {offset + length}) do not match the committed crc {crc} (got {got}); not returned"
        )
