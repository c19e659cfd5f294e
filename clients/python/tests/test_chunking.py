"""Bodies larger than one NATS message: the client's side of the chunking protocol.

``ChunkingServer`` below is the protocol's other side as its specification
words it (chunking.py's docstring): it reassembles chunked requests, checks
every header it is sent, and serves long replies in chunks.
"""

from __future__ import annotations

import os
import re

import pytest

from pocket import InternalError, InvalidArgumentError, NotFoundError
from pocket.chunking import (
    CHUNK_ACK_HEADER,
    CHUNK_BYTES_MIN,
    CHUNK_HEADER,
    HEADER_ROOM_BYTES,
    REPLY_CHUNK_HEADER,
    REPLY_CHUNKS_HEADER,
    Message,
    chunk_bytes,
    parse_reply_chunks,
    receive_reply,
    request_chunks,
    send_request,
)

#: The smallest chunk servers take.
LIMIT = CHUNK_BYTES_MIN


class ChunkingServer:
    def __init__(self, limit: int, reply: bytes) -> None:
        self.limit = limit
        self.reply = reply
        self.requests: list[tuple[dict[str, str] | None, bytes]] = []
        self.received = b""
        self.stream_id: str | None = None
        self.reply_stream = "f" * 32

    async def send(self, headers: dict[str, str] | None, data: bytes | memoryview) -> Message:
        self.requests.append((headers, bytes(data)))
        if headers and REPLY_CHUNK_HEADER in headers:
            stream, index = headers[REPLY_CHUNK_HEADER].split(";")
            assert stream == self.reply_stream and len(data) == 0
            i = int(index)
            return Message(headers=None, data=self.reply[i * self.limit : (i + 1) * self.limit])
        if headers and CHUNK_HEADER in headers:
            stream, index, count, total = headers[CHUNK_HEADER].split(";")
            assert re.fullmatch(r"[0-9a-f]{32}", stream)
            assert self.stream_id in (None, stream)
            self.stream_id = stream
            assert int(index) * self.limit == len(self.received) and 0 < len(data) <= self.limit
            self.received += bytes(data)
            if int(index) < int(count) - 1:
                return Message(headers={CHUNK_ACK_HEADER: index}, data=b"")
            assert len(self.received) == int(total)
        else:
            self.received = bytes(data)
        return self._answer()

    def _answer(self) -> Message:
        if len(self.reply) <= self.limit:
            return Message(headers=None, data=self.reply)
        count = -(-len(self.reply) // self.limit)
        return Message(headers={REPLY_CHUNKS_HEADER: f"{self.reply_stream};{count};{len(self.reply)}"}, data=self.reply[: self.limit])


def test_chunk_bytes_leaves_room_for_headers_and_refuses_chunks_servers_refuse() -> None:
    assert chunk_bytes(8 * 1024 * 1024) == 8 * 1024 * 1024 - HEADER_ROOM_BYTES
    assert chunk_bytes(HEADER_ROOM_BYTES + 1024) == 1024
    for max_payload in (HEADER_ROOM_BYTES, HEADER_ROOM_BYTES + 1, HEADER_ROOM_BYTES + 1023):
        with pytest.raises(InvalidArgumentError, match=f"must be at least {HEADER_ROOM_BYTES + 1024}"):
            chunk_bytes(max_payload)


async def test_a_body_that_needs_chunks_under_the_minimum_is_refused_before_anything_is_sent() -> None:
    server = ChunkingServer(LIMIT - 1, b"ok")
    with pytest.raises(InvalidArgumentError):
        await send_request(server.send, b"x" * LIMIT, LIMIT - 1)
    assert server.requests == []
    # A body that fits one message needs no chunks: any limit carries it.
    assert (await send_request(server.send, b"x" * 10, LIMIT - 1)).data == b"ok"


L = LIMIT


@pytest.mark.parametrize(("total", "ranges"), [
    (0, [(0, 0)]), (L, [(0, L)]), (L + 1, [(0, L), (L, L + 1)]),
    (3 * L, [(0, L), (L, 2 * L), (2 * L, 3 * L)]), (3 * L - 1, [(0, L), (L, 2 * L), (2 * L, 3 * L - 1)]),
])
def test_request_chunks_cover_the_body_in_order(total: int, ranges: list[tuple[int, int]]) -> None:
    assert request_chunks(total, LIMIT) == ranges


async def test_a_body_that_fits_goes_in_one_message_without_chunk_headers() -> None:
    server = ChunkingServer(LIMIT, b"ok")
    reply = await send_request(server.send, b"x" * LIMIT, LIMIT)
    assert reply.data == b"ok" and server.requests == [(None, b"x" * LIMIT)]


@pytest.mark.parametrize("size", [LIMIT + 1, 2 * LIMIT, 5 * LIMIT + 17])
async def test_a_long_request_goes_in_chunks_each_after_the_last_ones_ack(size: int) -> None:
    body = os.urandom(size)
    server = ChunkingServer(LIMIT, b"done")
    reply = await send_request(server.send, body, LIMIT)
    assert reply.data == b"done"
    assert server.received == body
    count = -(-size // LIMIT)
    assert [h[CHUNK_HEADER].split(";")[1:] for h, _ in server.requests if h] == [[str(i), str(count), str(size)] for i in range(count)]


async def test_each_request_gets_a_stream_id_of_its_own() -> None:
    ids = set()
    for _ in range(5):
        server = ChunkingServer(LIMIT, b"")
        await send_request(server.send, b"y" * (LIMIT + 1), LIMIT)
        ids.add(server.stream_id)
    assert len(ids) == 5


@pytest.mark.parametrize("size", [LIMIT + 1, 3 * LIMIT, 7 * LIMIT + 3])
async def test_a_long_reply_is_fetched_chunk_by_chunk_and_reassembled(size: int) -> None:
    reply = os.urandom(size)
    server = ChunkingServer(LIMIT, reply)
    first = await send_request(server.send, b"request", LIMIT)
    assert await receive_reply(server.send, first, 1 << 20) == reply
    fetches = [h[REPLY_CHUNK_HEADER] for h, _ in server.requests if h and REPLY_CHUNK_HEADER in h]
    assert fetches == [f"{'f' * 32};{i}" for i in range(1, -(-size // LIMIT))]


async def test_an_unacknowledged_chunk_stops_the_request() -> None:
    sent: list[bytes] = []

    async def old_server(headers: dict[str, str] | None, data: bytes | memoryview) -> Message:
        sent.append(bytes(data))
        return Message(headers=None, data=b"\x00\x00\x00\x02{}")

    with pytest.raises(InternalError):
        await send_request(old_server, b"z" * (3 * LIMIT), LIMIT)
    assert len(sent) == 1


async def test_an_error_on_a_chunk_is_the_typed_error() -> None:
    async def refusing(headers: dict[str, str] | None, data: bytes | memoryview) -> Message:
        return Message(headers={"Pocket-Error": "NotFound", "Pocket-Message": "no such stream"}, data=b"")

    with pytest.raises(NotFoundError):
        await send_request(refusing, b"z" * (3 * LIMIT), LIMIT)
    with pytest.raises(NotFoundError):
        first = Message(headers={REPLY_CHUNKS_HEADER: f"{'a' * 32};2;{LIMIT + 1}"}, data=b"q" * LIMIT)
        await receive_reply(refusing, first, 1 << 20)


@pytest.mark.parametrize("value", [
    "", "abc;2;10", f"{'A' * 32};2;2000", f"{'a' * 32};1;2000", f"{'a' * 32};2;1", f"{'a' * 32};2;01000",
    f"{'a' * 32};2;{(1 << 20) + 1}", f"{'a' * 32};x;2000", f"{'a' * 32};2;2000;1",
])
def test_malformed_or_unbounded_reply_chunk_headers_are_refused(value: str) -> None:
    with pytest.raises(InternalError):
        parse_reply_chunks(value, 1 << 20)


async def test_reply_chunks_that_do_not_add_up_are_refused() -> None:
    async def short(headers: dict[str, str] | None, data: bytes | memoryview) -> Message:
        return Message(headers=None, data=b"s" * 10)

    async def long(headers: dict[str, str] | None, data: bytes | memoryview) -> Message:
        return Message(headers=None, data=b"l" * (LIMIT + 1))

    first = Message(headers={REPLY_CHUNKS_HEADER: f"{'a' * 32};2;{2 * LIMIT}"}, data=b"q" * LIMIT)
    for server in (short, long):
        with pytest.raises(InternalError):
            await receive_reply(server, first, 1 << 20)
