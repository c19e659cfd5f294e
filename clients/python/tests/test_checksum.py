"""CRC-32 exactly as lib/checksum.ts (zlib's), and the checks every read goes through."""

from __future__ import annotations

import os
import random
import zlib

import pytest

from pocket import IntegrityError
from pocket.checksum import check_bytes, crc32, crc32_combine, is_crc32


def test_crc32_is_zlibs_unsigned_crc() -> None:
    assert crc32(b"123456789") == 0xCBF43926
    assert crc32(b"") == 0
    data = os.urandom(10_000)
    assert crc32(data) == zlib.crc32(data) & 0xFFFFFFFF
    assert crc32(data[5000:], crc32(data[:5000])) == crc32(data)


def test_crc32_combine_matches_the_crc_of_the_concatenation() -> None:
    rng = random.Random(7)
    for _ in range(200):
        a = rng.randbytes(rng.randrange(0, 3000))
        b = rng.randbytes(rng.choice([0, 1, 2, 3, 511, 4096, rng.randrange(0, 70_000)]))
        assert crc32_combine(crc32(a), crc32(b), len(b)) == crc32(a + b)


def test_crc32_combine_rejects_what_is_not_a_crc() -> None:
    with pytest.raises(ValueError):
        crc32_combine(-1, 0, 1)
    with pytest.raises(ValueError):
        crc32_combine(0, 2**32, 1)
    with pytest.raises(ValueError):
        crc32_combine(0, 0, -1)
    assert not is_crc32(True)
    assert is_crc32(0xFFFFFFFF)


def _check(data: bytes, *, offset: int, total: bytes, prefix: object = None, suffix: object = None) -> None:
    length = len(data)
    check_bytes(
        "test", data, offset=offset, length=length, total=len(total), crc=crc32(total),
        prefix_crc=crc32(total[:offset]) if prefix is None else prefix,
        suffix_crc=crc32(total[offset + length :]) if suffix is None else suffix,
    )


def test_ranges_check_against_the_committed_crc_with_the_crcs_around_them() -> None:
    whole = os.urandom(1 << 16)
    _check(whole, offset=0, total=whole)
    _check(whole[100:2000], offset=100, total=whole)
    _check(whole[-7:], offset=len(whole) - 7, total=whole)
    _check(b"", offset=500, total=whole)


@pytest.mark.parametrize("where", [0, 1, 999, 1899])
def test_a_flipped_byte_is_an_integrity_error_never_data(where: int) -> None:
    whole = os.urandom(4096)
    got = bytearray(whole[100:2000])
    got[where] ^= 0x40
    with pytest.raises(IntegrityError):
        _check(bytes(got), offset=100, total=whole)


def test_lying_or_missing_crcs_around_a_range_are_integrity_errors() -> None:
    whole = os.urandom(4096)
    with pytest.raises(IntegrityError):
        _check(whole[100:200], offset=100, total=whole, prefix=crc32(whole[:100]) ^ 1)
    with pytest.raises(IntegrityError):
        _check(whole[100:200], offset=100, total=whole, suffix="x")
    with pytest.raises(IntegrityError):
        check_bytes("test", whole, offset=0, length=len(whole), total=len(whole), crc=None, prefix_crc=0, suffix_crc=0)
    with pytest.raises(IntegrityError):
        check_bytes("test", whole[:10], offset=0, length=11, total=len(whole), crc=crc32(whole), prefix_crc=0, suffix_crc=0)
