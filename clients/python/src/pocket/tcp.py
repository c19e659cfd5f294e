"""The direct TCP transport's client side (``bus/tcp-client.ts``): pipelined frames, one connection per server.

A connection opens with the handshake of ``handshake.py`` (the server proves
who it is before the token is sent), then carries many requests at once,
bounded: at most ``inflight_max`` in flight, ``waiters_max`` waiting for a
slot (more get Busy), frames of at most ``frame_bytes_max``.
"""

from __future__ import annotations

import asyncio
import builtins
import ssl
from dataclasses import dataclass
from typing import Any

from .errors import BusyError, ErrorCode, InternalError, NodeUnavailableError, PocketError, TimeoutError, error_from_wire
from .frame import Frame, FrameError, FrameKind, encode_frame, parse_frame, read_frame
from .handshake import AUTH, HELLO, HELLO_FRAME_BYTES_MAX, HELLO_REFUSALS, is_transport_key, new_hello, verify_hello
from .tls import tls_context
from .wire import Reply, decode_json, decode_reply_meta, encode_json

#: Where a client is told to find the cluster's CA.
TLS_CA_HINT = "give the client the cluster's CA (tls_ca or POCKET_TLS_CA)"


class ConnectFailedError(NodeUnavailableError):
    """The connection could not be opened: the request was never sent, so it may be retried elsewhere."""


class PeerIdentityError(ConnectFailedError):
    """The process at an address did not prove it is the server expected there; it was sent nothing but the hello."""


class ConnectionLostError(NodeUnavailableError):
    """An open connection failed with the request on it: it may or may not have been carried out."""


@dataclass(frozen=True)
class TcpOptions:
    #: Requests in flight on one connection; more wait for a slot.
    inflight_max: int = 64
    #: Callers waiting for a slot on one connection (or for its handshake); more get Busy.
    waiters_max: int = 4096
    #: Open connections kept by a pool; an idle one is closed past it.
    connections_max: int = 1024
    frame_bytes_max: int = 72 * 1024 * 1024
    #: Seconds to connect and complete the handshake.
    connect_timeout: float = 3.0
    request_timeout: float = 30.0
    #: Connect over TLS, verifying the server's certificate with this CA (PEM).
    tls_ca: str | None = None


def parse_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise NodeUnavailableError(f"bad node address {addr[:256]!r}")
    return host.strip("[]"), int(port)


def _looks_like_tls(first: bytes) -> bool:
    """The first bytes of a TLS record (handshake or alert): a peer that speaks TLS where frames were expected."""
    return len(first) >= 2 and first[0] in (0x15, 0x16) and first[1] == 0x03


def _error_of(frame: Frame) -> tuple[object, object]:
    """The code and message of an error frame (what is not JSON gives neither)."""
    try:
        meta = decode_json(frame.meta)
    except PocketError:
        return None, None
    return (meta.get("code"), meta.get("message")) if isinstance(meta, dict) else (None, None)


class TcpConnection:
    """One pipelined, authenticated connection; requests wait until the server has proved itself and accepted the token."""

    def __init__(self, addr: str, peer_id: str, peer_key: str, token: str, options: TcpOptions) -> None:
        self.addr = addr
        self.peer_id = peer_id
        self.peer_key = peer_key
        self.token = token
        self._options = options
        self._pending: dict[int, asyncio.Future[Frame]] = {}
        self._slots = asyncio.Semaphore(options.inflight_max)
        self._waiting = 0
        self._next_id = 3
        self._closed_error: PocketError | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._opening = asyncio.ensure_future(self._open())

    @property
    def closed(self) -> bool:
        return self._closed_error is not None

    @property
    def busy(self) -> bool:
        return bool(self._pending) or self._waiting > 0

    async def request(self, name: str, meta: bytes, payload: bytes | bytearray | memoryview | None, timeout: float) -> Frame:
        """Sends one request; returns its reply frame (an error frame too)."""
        if self._closed_error is not None:
            raise self._closed_error
        if self._waiting >= self._options.waiters_max:
            raise BusyError(f"more than {self._options.waiters_max} requests queued for {self.addr}")
        self._waiting += 1
        try:
            await asyncio.shield(self._opening)
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            return await self._exchange(name, meta, payload, timeout)
        finally:
            self._slots.release()

    async def _exchange(self, name: str, meta: bytes, payload: bytes | bytearray | memoryview | None, timeout: float) -> Frame:
        if self._closed_error is not None:
            raise self._closed_error
        request_id = self._next_id
        self._next_id = 3 if self._next_id >= 0xFFFF_FFFF else self._next_id + 1
        head, body = encode_frame(FrameKind.REQUEST, request_id, name, meta, payload)
        reply: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        writer = self._writer
        assert writer is not None, "an open connection has a writer"
        writer.write(head)
        if body is not None:
            writer.write(body)
        try:
            async with asyncio.timeout(timeout):
                await writer.drain()
                return await reply
        except builtins.TimeoutError:
            raise TimeoutError(f"{name} to {self.addr}: no reply within {timeout:g} s") from None
        except (ConnectionError, OSError) as e:
            self._fail(ConnectionLostError(f"connection to {self.addr} failed: {e}"))
            raise self._closed_error from e  # type: ignore[misc]
        finally:
            self._pending.pop(request_id, None)

    async def _open(self) -> None:
        try:
            async with asyncio.timeout(self._options.connect_timeout):
                reader, writer = await self._connect()
                self._writer = writer
                await self._handshake(reader, writer)
        except builtins.TimeoutError:
            self._fail(ConnectFailedError(f"connect and handshake with {self.addr} did not complete within {self._options.connect_timeout:g} s"))
        except PocketError as e:
            self._fail(e)
        if self._closed_error is not None:
            raise self._closed_error
        self._reader_task = asyncio.ensure_future(self._read_replies(reader))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = parse_addr(self.addr)
        ca = self._options.tls_ca
        try:
            if ca is None:
                return await asyncio.open_connection(host, port)
            return await asyncio.open_connection(host, port, ssl=tls_context(ca), server_hostname=host)
        except ssl.SSLCertVerificationError as e:
            raise ConnectFailedError(f"connection to {self.addr} failed: TLS: the server's certificate does not verify ({e.verify_message}); {TLS_CA_HINT}") from e
        except ssl.SSLError as e:
            raise ConnectFailedError(f"connection to {self.addr} failed: TLS handshake failed, the port may not serve TLS ({e})") from e
        except OSError as e:
            raise ConnectFailedError(f"connection to {self.addr} failed: {e}") from e

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Round 1: the server proves who it is; round 2, only then: the token."""
        hello = new_hello()
        writer.write(encode_frame(FrameKind.REQUEST, 1, HELLO, encode_json(hello))[0])
        frame = await self._handshake_frame(reader, hello_round=True)
        if frame.kind == FrameKind.ERROR and frame.request_id in (0, 1):
            code, message = _error_of(frame)
            if code in HELLO_REFUSALS:
                raise error_from_wire(code, f"{self.addr} refused the hello: {message}")
            raise self._not_the_peer(f"it answered the hello with an error {str(code)[:80]!r}")
        if frame.kind != FrameKind.REPLY or frame.request_id != 1:
            raise self._not_the_peer("it sent a frame other than the hello reply")
        try:
            meta: Any = decode_json(frame.meta)
        except PocketError:
            meta = None
        why = verify_hello(self.peer_id, self.peer_key, hello["nonce"], meta)
        if why is not None:
            raise self._not_the_peer(why)
        writer.write(encode_frame(FrameKind.REQUEST, 2, AUTH, encode_json({"token": self.token}))[0])
        frame = await self._handshake_frame(reader, hello_round=False)
        if frame.kind == FrameKind.ERROR and frame.request_id in (0, 2):
            code, message = _error_of(frame)
            raise error_from_wire(code, f"{self.addr} refused the credential: {message}")
        if frame.kind != FrameKind.REPLY or frame.request_id != 2 or bytes(frame.meta) != b"{}":
            raise ConnectFailedError(f"{self.addr} did not answer {AUTH} with {{}}")

    async def _handshake_frame(self, reader: asyncio.StreamReader, *, hello_round: bool) -> Frame:
        """One frame of the handshake, at most HELLO_FRAME_BYTES_MAX long."""
        try:
            head = await reader.readexactly(4)
            if hello_round and _looks_like_tls(head):
                raise ConnectFailedError(f"{self.addr} answered in TLS: it serves the direct transport over TLS only; {TLS_CA_HINT}")
            length = int.from_bytes(head, "big")
            if length > HELLO_FRAME_BYTES_MAX:
                raise FrameError(f"a handshake frame of {length} bytes")
            return parse_frame(await reader.readexactly(length))
        except asyncio.IncompleteReadError as e:
            hint = f"; if it serves TLS, {TLS_CA_HINT}" if hello_round and not e.partial and self._options.tls_ca is None else ""
            raise ConnectFailedError(f"connection to {self.addr} closed before the handshake completed{hint}") from e
        except FrameError as e:
            why = f"bad frame from {self.addr}: {e}"
            raise (self._not_the_peer(why) if hello_round else ConnectFailedError(why)) from e
        except OSError as e:
            raise ConnectFailedError(f"connection to {self.addr} failed: {e}") from e

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                frame = await read_frame(reader, self._options.frame_bytes_max)
                if frame.request_id == 0 and frame.kind == FrameKind.ERROR:
                    # The server is closing the connection; tell every caller why.
                    code, message = _error_of(frame)
                    self._fail(error_from_wire(code, message))
                    return
                reply = self._pending.pop(frame.request_id, None)
                if reply is not None and not reply.done():
                    reply.set_result(frame)
        except asyncio.IncompleteReadError:
            self._fail(ConnectionLostError(f"connection to {self.addr} closed"))
        except FrameError as e:
            self._fail(InternalError(f"bad frame from {self.addr}: {e}") if e.code != ErrorCode.TOO_LARGE else error_from_wire(e.code, str(e)))
        except OSError as e:
            self._fail(ConnectionLostError(f"connection to {self.addr} failed: {e}"))

    def _not_the_peer(self, reason: str) -> PeerIdentityError:
        return PeerIdentityError(f"{self.addr} did not prove it is {self.peer_id!r} with key {self.peer_key}: {reason}")

    def _fail(self, e: PocketError) -> None:
        if self._closed_error is not None:
            return
        self._closed_error = e
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(e)
        self._pending.clear()

    def close(self) -> None:
        self._fail(NodeUnavailableError(f"connection to {self.addr} closed by the client"))
        if not self._opening.done():
            self._opening.cancel()
        # Nobody may ever await the opening again: mark its outcome seen.
        self._opening.add_done_callback(lambda t: t.cancelled() or t.exception())


class TcpPool:
    """Connections to direct-transport servers, one per address and expected identity, reopened after a failure."""

    def __init__(self, options: TcpOptions | None = None) -> None:
        self.options = options or TcpOptions()
        #: Keyed by address, id and key: a new key for an address never reuses a connection proved with the old one.
        self._connections: dict[tuple[str, str, str], TcpConnection] = {}

    def connection(self, addr: str, peer_id: str, peer_key: str, token: str) -> TcpConnection:
        key = (addr, peer_id, peer_key)
        c = self._connections.get(key)
        if c is None or c.closed:
            if c is not None:
                del self._connections[key]
            if not is_transport_key(peer_key):
                raise PeerIdentityError(f"the key given for {peer_id!r} at {addr} is not a raw Ed25519 public key")
            if len(self._connections) >= self.options.connections_max:
                self._evict_idle()
            c = TcpConnection(addr, peer_id, peer_key, token, self.options)
            self._connections[key] = c
        return c

    def _evict_idle(self) -> None:
        for key, c in self._connections.items():
            if c.closed or not c.busy:
                c.close()
                del self._connections[key]
                return
        raise BusyError(f"{self.options.connections_max} connections are busy")

    def drop(self, addr: str) -> None:
        """Forgets the connections to an address (after a failure), so the next call opens a new one."""
        for key in [k for k, c in self._connections.items() if c.addr == addr]:
            self._connections.pop(key).close()

    def caller(self, addr: str, peer_id: str, peer_key: str, token: str) -> "TcpCaller":
        return TcpCaller(self, addr, peer_id, peer_key, token)

    def close(self) -> None:
        for c in self._connections.values():
            c.close()
        self._connections.clear()


class TcpCaller:
    """A caller bound to the server that proves it is ``peer_id`` at ``addr``; ``token`` authenticates a new connection."""

    def __init__(self, pool: TcpPool, addr: str, peer_id: str, peer_key: str, token: str) -> None:
        self._pool = pool
        self._addr = addr
        self._peer_id = peer_id
        self._peer_key = peer_key
        self._token = token
        self._connection: TcpConnection | None = None

    async def call(self, operation: str, request: dict[str, Any], payload: bytes | bytearray | memoryview | None = None) -> Reply:
        c = self._connection
        if c is None or c.closed:
            c = self._connection = self._pool.connection(self._addr, self._peer_id, self._peer_key, self._token)
        # A request that carries its connection's token goes without it: the server fills in the session's.
        if request.get("token") == c.token:
            request = {k: v for k, v in request.items() if k != "token"}
        frame = await c.request(operation, encode_json(request), payload, self._pool.options.request_timeout)
        if frame.kind == FrameKind.ERROR:
            code, message = _error_of(frame)
            raise error_from_wire(code, message)
        return Reply(meta=decode_reply_meta(operation, frame.meta), payload=frame.payload)
