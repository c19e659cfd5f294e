"""Requests and replies larger than one NATS message, in chunks.

With ``L`` = the connection's ``max_payload`` - 4096 (room for headers):

* A request whose encoded body is longer than ``L`` travels as
  ``n = ceil(len / L)`` request messages to the same subject, in order, each
  sent after the previous one's reply, each with the header
  ``Pocket-Chunk: <streamId>;<index>;<count>;<totalBytes>`` (``streamId``: 32
  lowercase hex characters, random per request) and bytes
  ``[index * L, min(len, (index + 1) * L))``. The server answers chunks
  ``0 .. n-2`` with an empty body and ``Pocket-Chunk-Ack: <index>``; the last
  chunk's reply is the operation's reply.
* A reply longer than ``L`` carries its first ``L`` bytes and the header
  ``Pocket-Reply-Chunks: <streamId>;<count>;<totalBytes>``; the caller fetches
  chunk ``i`` (``1 .. count-1``) in order with a request to the same subject,
  an empty body and ``Pocket-Reply-Chunk: <streamId>;<i>``.

The functions here take the one request/reply primitive as ``send`` (headers
and body in, a reply message out), so they run the same over any connection.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from .errors import InternalError, InvalidArgumentError, error_from_wire
from .wire import ErrorHeaders

CHUNK_HEADER = "Pocket-Chunk"
CHUNK_ACK_HEADER = "Pocket-Chunk-Ack"
REPLY_CHUNKS_HEADER = "Pocket-Reply-Chunks"
REPLY_CHUNK_HEADER = "Pocket-Reply-Chunk"
#: Bytes of ``max_payload`` left for headers in each chunk.
HEADER_ROOM_BYTES = 4096
#: The smallest chunk sent (servers refuse a first chunk shorter than this): a ``max_payload`` below
#: HEADER_ROOM_BYTES + CHUNK_BYTES_MIN cannot carry chunked bodies (``chunkBytesMin`` of bus/nats-chunks.ts).
CHUNK_BYTES_MIN = 1024

_STREAM_ID = re.compile(r"[0-9a-f]{32}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,15}")


@dataclass(frozen=True)
class Message:
    """One reply as the connection delivered it."""

    headers: Mapping[str, str] | None
    data: bytes


Send = Callable[[dict[str, str] | None, bytes | memoryview], Awaitable[Message]]


def chunk_bytes(max_payload: int) -> int:
    """``L``: the bytes of a body one message carries on a connection with this ``max_payload``;
    InvalidArgumentError when that is under CHUNK_BYTES_MIN."""
    limit = max_payload - HEADER_ROOM_BYTES
    if limit < CHUNK_BYTES_MIN:
        raise InvalidArgumentError(f"nats-server's max_payload of {max_payload} bytes leaves no room for chunks; "
                                   f"it must be at least {HEADER_ROOM_BYTES + CHUNK_BYTES_MIN}")
    return limit


def new_stream_id() -> str:
    return secrets.token_hex(16)


def request_chunks(total: int, limit: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` of each chunk of a body of ``total`` bytes (one range when it fits in one message)."""
    if total <= limit:
        return [(0, total)]
    return [(start, min(total, start + limit)) for start in range(0, total, limit)]


def raise_if_error(headers: Mapping[str, str] | None) -> None:
    """Raises the typed error a reply's ``Pocket-Error`` header carries, if any."""
    code = headers.get(ErrorHeaders.CODE) if headers else None
    if code:
        raise error_from_wire(code, headers.get(ErrorHeaders.MESSAGE, code))  # type: ignore[union-attr]


async def send_request(send: Send, body: bytes | memoryview, limit: int) -> Message:
    """Sends a request body, in chunks when it is longer than ``limit``; returns the operation's reply.

    Chunks are views of ``body``, not copies. InvalidArgumentError for chunks under CHUNK_BYTES_MIN.
    """
    view = memoryview(body)
    ranges = request_chunks(len(view), limit)
    if len(ranges) == 1:
        return await send(None, view)
    if limit < CHUNK_BYTES_MIN:
        raise InvalidArgumentError(f"chunks of {limit} bytes are under the {CHUNK_BYTES_MIN} bytes servers take")
    stream_id = new_stream_id()
    count = len(ranges)
    for index, (start, stop) in enumerate(ranges):
        headers = {CHUNK_HEADER: f"{stream_id};{index};{count};{len(view)}"}
        reply = await send(headers, view[start:stop])
        if index == count - 1:
            return reply
        raise_if_error(reply.headers)
        ack = reply.headers.get(CHUNK_ACK_HEADER) if reply.headers else None
        if ack != str(index) or len(reply.data) != 0:
            raise InternalError(f"chunk {index} of {count} was not acknowledged (the server may not take chunked requests)")
    raise AssertionError("unreachable: the last chunk returns")


def parse_reply_chunks(value: str, reply_bytes_max: int) -> tuple[str, int, int]:
    """``(streamId, count, totalBytes)`` of a ``Pocket-Reply-Chunks`` header; InternalError when malformed or past the bound."""
    parts = value.split(";")
    if len(parts) != 3 or not _STREAM_ID.fullmatch(parts[0]) or not all(_DECIMAL.fullmatch(p) for p in parts[1:]):
        raise InternalError(f"malformed {REPLY_CHUNKS_HEADER} header {value[:120]!r}")
    count, total = int(parts[1]), int(parts[2])
    if total > reply_bytes_max:
        raise InternalError(f"a reply of {total} bytes is past this client's limit of {reply_bytes_max}")
    if count < 2 or count > total:
        raise InternalError(f"a reply of {total} bytes in {count} chunks")
    return parts[0], count, total


class ReplyAssembler:
    """Puts a chunked reply back together in one buffer of its declared size, chunk by chunk, in order."""

    def __init__(self, count: int, total: int) -> None:
        self._buffer = bytearray(total)
        self._count = count
        self._next = 0
        self._filled = 0

    def add(self, index: int, data: bytes | memoryview) -> None:
        if index != self._next or index >= self._count:
            raise InternalError(f"reply chunk {index} out of order (expected {self._next} of {self._count})")
        end = self._filled + len(data)
        if len(data) == 0 or end > len(self._buffer):
            raise InternalError(f"reply chunk {index} of {len(data)} bytes does not fit a reply of {len(self._buffer)}")
        self._buffer[self._filled : end] = data
        self._filled = end
        self._next += 1

    def finish(self) -> bytearray:
        if self._next != self._count or self._filled != len(self._buffer):
            raise InternalError(f"a chunked reply ended at {self._filled} of {len(self._buffer)} bytes, {self._next} of {self._count} chunks")
        return self._buffer


async def receive_reply(send: Send, first: Message, reply_bytes_max: int) -> bytes | bytearray:
    """The whole body of a reply: ``first``'s own, or every chunk of it fetched in order."""
    spec = first.headers.get(REPLY_CHUNKS_HEADER) if first.headers else None
    if spec is None:
        return first.data
    stream_id, count, total = parse_reply_chunks(spec, reply_bytes_max)
    assembler = ReplyAssembler(count, total)
    assembler.add(0, first.data)
    for index in range(1, count):
        reply = await send({REPLY_CHUNK_HEADER: f"{stream_id};{index}"}, b"")
        raise_if_error(reply.headers)
        assembler.add(index, reply.data)
    return assembler.finish()
