"""The direct transport's handshake: bytes go only to a server that proves it is the one asked for.

The servers here are real sockets in this process speaking the handshake,
honestly or not; the client under test is the SDK's own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pocket import UnauthorizedError
from pocket.frame import FrameKind, encode_frame, read_frame
from pocket.handshake import hello_message, verify_hello
from pocket.tcp import ConnectFailedError, PeerIdentityError, TcpOptions, TcpPool
from pocket.tokens import b64url_encode


def _public(key: Ed25519PrivateKey) -> str:
    return b64url_encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def _signed(key: Ed25519PrivateKey, server_id: str, nonce: str) -> dict[str, object]:
    return {"v": 1, "id": server_id, "sig": b64url_encode(key.sign(hello_message(server_id, nonce)))}


def test_verify_hello_accepts_only_the_expected_id_and_key() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    nonce = "n" * 43
    assert verify_hello("dram-0", _public(key), nonce, _signed(key, "dram-0", nonce)) is None
    assert verify_hello("dram-0", _public(key), nonce, _signed(other, "dram-0", nonce)) is not None
    assert verify_hello("dram-0", _public(key), nonce, _signed(key, "dram-1", nonce)) is not None
    assert verify_hello("dram-0", _public(key), "m" * 43, _signed(key, "dram-0", nonce)) is not None
    assert verify_hello("dram-0", "not-a-key", nonce, _signed(key, "dram-0", nonce)) is not None
    assert verify_hello("dram-0", _public(key), nonce, {**_signed(key, "dram-0", nonce), "extra": 1}) is not None
    assert verify_hello("dram-0", _public(key), nonce, None) is not None


Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter, list[dict[str, object]]], Awaitable[None]]


@dataclass
class Served:
    """A server of this test: where it listens, what it received, and the task serving each connection it took."""

    addr: str
    received: list[dict[str, object]] = field(default_factory=list)
    handlers: list[asyncio.Task[None]] = field(default_factory=list)

    async def finished(self) -> None:
        """Waits until every connection taken so far has been served to its end (the client's EOF ends each)."""
        await asyncio.wait_for(asyncio.gather(*self.handlers), HANDLER_END_TIMEOUT_S)


#: Seconds a server's handler may take to see the client's EOF.
HANDLER_END_TIMEOUT_S = 5.0


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Serve], Awaitable[Served]]]:
    servers: list[asyncio.base_events.Server] = []

    async def start(serve: Serve) -> Served:
        served = Served(addr="")

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            served.handlers.append(task)
            try:
                await serve(reader, writer, served.received)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        s = await asyncio.start_server(on_client, "127.0.0.1", 0)
        servers.append(s)
        served.addr = f"127.0.0.1:{s.sockets[0].getsockname()[1]}"
        return served

    yield start
    for s in servers:
        s.close()
        await s.wait_closed()


async def _read_request(reader: asyncio.StreamReader, received: list[dict[str, object]]) -> tuple[int, dict[str, object]]:
    frame = await read_frame(reader, 4096)
    meta = json.loads(bytes(frame.meta))
    received.append({"name": frame.name, **meta})
    return frame.request_id, meta


def _reply(writer: asyncio.StreamWriter, request_id: int, meta: dict[str, object], kind: int = FrameKind.REPLY) -> None:
    writer.write(encode_frame(kind, request_id, "", json.dumps(meta).encode())[0])


async def test_an_impostor_never_receives_the_token(server) -> None:  # type: ignore[no-untyped-def]
    real, impostor = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[dict[str, object]]) -> None:
        rid, hello = await _read_request(reader, received)
        _reply(writer, rid, _signed(impostor, "dram-0", str(hello["nonce"])))
        await _read_request(reader, received)  # whatever comes next: the test checks there is nothing

    served = await server(serve)
    pool = TcpPool(TcpOptions(connect_timeout=2))
    try:
        with pytest.raises(PeerIdentityError):
            await pool.caller(served.addr, "dram-0", _public(real), "secret-token").call("extent.read", {"token": "secret-token", "extentId": "x"})
    finally:
        pool.close()
    # Everything the client ever sent has been read once the server has seen its end.
    await served.finished()
    assert len(served.handlers) == 1
    assert [r["name"] for r in served.received] == ["transport.hello"]
    assert "secret-token" not in json.dumps(served.received)


async def test_an_honest_server_gets_the_token_then_requests_without_it(server) -> None:  # type: ignore[no-untyped-def]
    key = Ed25519PrivateKey.generate()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[dict[str, object]]) -> None:
        rid, hello = await _read_request(reader, received)
        _reply(writer, rid, _signed(key, "s0", str(hello["nonce"])))
        rid, auth = await _read_request(reader, received)
        _reply(writer, rid, {})
        while True:
            rid, request = await _read_request(reader, received)
            _reply(writer, rid, {"echo": request})

    served = await server(serve)
    received = served.received
    pool = TcpPool(TcpOptions(connect_timeout=2))
    try:
        caller = pool.caller(served.addr, "s0", _public(key), "tok-1")
        replies = await asyncio.gather(*(caller.call("object.stat", {"token": "tok-1", "path": f"p{i}"}) for i in range(20)))
        other = await caller.call("object.stat", {"token": "tok-2", "path": "q"})
    finally:
        pool.close()
    assert [r.meta["echo"] for r in replies] == [{"path": f"p{i}"} for i in range(20)]
    assert other.meta["echo"] == {"token": "tok-2", "path": "q"}
    assert [r["name"] for r in received[:2]] == ["transport.hello", "transport.auth"] and received[1]["token"] == "tok-1"


async def test_a_refused_token_is_unauthorized_and_a_silent_port_fails_to_connect(server) -> None:  # type: ignore[no-untyped-def]
    key = Ed25519PrivateKey.generate()

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[dict[str, object]]) -> None:
        rid, hello = await _read_request(reader, received)
        _reply(writer, rid, _signed(key, "s0", str(hello["nonce"])))
        rid, _ = await _read_request(reader, received)
        _reply(writer, rid, {"code": "Unauthorized", "message": "token expired"}, FrameKind.ERROR)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[dict[str, object]]) -> None:
        await _read_request(reader, received)

    refusing = (await server(refuse)).addr
    silent = (await server(hang_up)).addr
    pool = TcpPool(TcpOptions(connect_timeout=2))
    try:
        with pytest.raises(UnauthorizedError):
            await pool.caller(refusing, "s0", _public(key), "t").call("object.stat", {"path": "a"})
        with pytest.raises(ConnectFailedError):
            await pool.caller(silent, "s0", _public(key), "t").call("object.stat", {"path": "a"})
        with pytest.raises(PeerIdentityError):
            await pool.caller(silent, "s0", "not-a-key", "t").call("object.stat", {"path": "a"})
    finally:
        pool.close()
