"""The parts of an object a read needs, and the typed values the SDK returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgumentError


@dataclass(frozen=True)
class ExtentRef:
    """One extent of an object: where it lives (node, address, transport key), its length and crc or grant."""

    node_id: str
    addr: str
    key: str
    extent_id: str
    length: int
    crc: int | None = None
    grant: str | None = None

    @classmethod
    def from_wire(cls, ref: dict[str, Any]) -> "ExtentRef":
        return cls(
            node_id=ref["nodeId"], addr=ref.get("addr", ""), key=ref.get("key", ""), extent_id=ref["extentId"],
            length=ref["length"], crc=ref.get("crc"), grant=ref.get("grant"),
        )


@dataclass(frozen=True)
class Piece:
    """``length`` bytes from ``offset`` of one extent."""

    ref: ExtentRef
    offset: int
    length: int


def pieces_for(extents: list[ExtentRef], offset: int, length: int) -> list[Piece]:
    """The parts of extents that cover ``[offset, offset + length)``."""
    pieces: list[Piece] = []
    end = offset + length
    start = 0
    for ref in extents:
        stop = start + ref.length
        if stop > offset and start < end:
            begin = max(offset, start) - start
            pieces.append(Piece(ref=ref, offset=begin, length=min(end, stop) - start - begin))
        if stop >= end:
            break
        start = stop
    return pieces


def clamp_range(size: int, offset: int | None, length: int | None) -> tuple[int, int]:
    """``(offset, length)`` of a range within an object of ``size`` bytes (to the end when ``length`` is None)."""
    at = 0 if offset is None else offset
    if not isinstance(at, int) or isinstance(at, bool) or at < 0:
        raise InvalidArgumentError(f"bad offset {offset!r}")
    if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length < 0):
        raise InvalidArgumentError(f"bad length {length!r}")
    start = min(at, size)
    return start, min(size - start, size if length is None else length)


@dataclass(frozen=True)
class Weight:
    node_id: str
    weight: float


@dataclass(frozen=True)
class RegisteredJob:
    """A registered job: hand ``token`` and ``credentials`` to its lambdas."""

    job_id: str
    token: str
    shard_id: str
    expires_at_ms: int
    lease_expires_at_ms: int
    lease_ms: int
    tier: str
    weights: list[Weight]
    #: The NATS credential the job's lambdas connect with (None when the bus has no authentication).
    credentials: str | None

    @classmethod
    def from_wire(cls, r: dict[str, Any]) -> "RegisteredJob":
        return cls(
            job_id=r["jobId"], token=r["token"], shard_id=r["shardId"], expires_at_ms=r["expiresAtMs"],
            lease_expires_at_ms=r["leaseExpiresAtMs"], lease_ms=r["leaseMs"], tier=r["tier"],
            weights=[Weight(node_id=w["nodeId"], weight=w["weight"]) for w in r.get("weights", [])],
            credentials=r.get("credentials"),
        )


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    addr: str
    key: str
    inline_bytes_max: int
    extent_bytes_max: int


@dataclass(frozen=True)
class PutResult:
    version: int
    size: int


@dataclass(frozen=True)
class Stat:
    path: str
    type: str
    size: int
    version: int
    modified_at_ms: int
    children: int


@dataclass(frozen=True)
class ListEntry:
    name: str
    type: str
    size: int


@dataclass(frozen=True)
class ListPage:
    entries: list[ListEntry]
    more: bool


@dataclass(frozen=True)
class Count:
    objects: int
    directories: int
    bytes: int


@dataclass(frozen=True)
class Deleted:
    objects: int
    bytes: int
