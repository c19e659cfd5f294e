"""Operations over NATS request/reply (``bus/nats-rpc.ts``, ``bus/nats-connect.ts``).

A request goes to ``<service prefix>.<operation>`` with the body of
``wire.py``; a reply carries its error, if any, in the ``Pocket-Error`` and
``Pocket-Message`` headers. Bodies longer than one message travel in chunks
(``chunking.py``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.client import RawCredentials

from .chunking import Message, chunk_bytes, raise_if_error, receive_reply, send_request
from .credentials import NkeySigner, inbox_of_creds, user_jwt_of_creds
from .errors import NodeUnavailableError, TimeoutError, UnauthorizedError
from .tls import tls_context
from .wire import DRIVER_OPERATIONS, Reply, Subjects, decode_body, decode_reply_meta, encode_body, encode_json, operation_subject

log = logging.getLogger("pocket")

#: Requests in flight on one NATS connection; more wait for a slot.
REQUESTS_INFLIGHT_MAX = 1024
#: Reconnections tried after a connection is lost, and the wait between them (nats.js's defaults).
RECONNECT_ATTEMPTS_MAX = 10
RECONNECT_WAIT_S = 2.0
#: Largest reply body reassembled from chunks (an extent and its meta fit with room).
REPLY_BYTES_MAX = 72 * 1024 * 1024

#: The NATS protocol's only form of a publish permission violation: ``-ERR 'Permissions Violation for Publish to "<subject>"'``
#: (nats.js reads the same line into its PermissionViolationError).
_PUBLISH_DENIED = re.compile(r'permissions violation for publish to "([^"]+)"', re.IGNORECASE)
#: The NATS protocol's ``-ERR`` lines that refuse a connection's credential (nats.js reads them into its AuthorizationError).
_CREDENTIAL_REFUSALS = frozenset({"authorization violation", "user authentication expired", "user authentication revoked",
                                  "account authentication expired", "authentication timeout"})
#: How nats-py words a protocol ``-ERR`` line it raises: ``nats: '<text>'``.
_PROTOCOL_ERROR = re.compile(r"nats: '([^']*)'")


class _CredsClient(NatsClient):
    """nats-py's client, answering the server's nonce with this package's nkey code (nats-py's own needs the nkeys package)."""

    def __init__(self, creds: str) -> None:
        super().__init__()
        self._pocket_jwt = user_jwt_of_creds(creds).encode()
        self._pocket_signer = NkeySigner.from_creds(creds)

    def _setup_nkeys_connect(self) -> None:
        jwt = self._pocket_jwt
        self._user_jwt_cb = lambda: bytearray(jwt)
        self._signature_cb = self._pocket_signer.sign_nonce


class PermissionDenials:
    """Requests in flight by subject: the server's permission violation for a subject fails them with Unauthorized.

    NATS does not answer a request it refuses to route; it tells the
    connection, naming the subject. Entries live as long as their request.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}

    def watch(self, subject: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(subject, set()).add(fut)
        return fut

    def release(self, subject: str, fut: asyncio.Future[None]) -> None:
        waiting = self._waiting.get(subject)
        if waiting is not None:
            waiting.discard(fut)
            if not waiting:
                del self._waiting[subject]
        fut.cancel()

    async def on_error(self, e: Exception) -> None:
        m = _PUBLISH_DENIED.search(str(e))
        if m is None:
            log.debug("NATS connection error: %s", e)
            return
        for fut in self._waiting.pop(m.group(1), ()):
            if not fut.done():
                fut.set_exception(UnauthorizedError(f"this connection's credential may not send to {m.group(1)}"))


class NatsLink:
    """One NATS connection and what its requests share: the in-flight window and the permission denials."""

    def __init__(self, nc: NatsClient, denials: PermissionDenials) -> None:
        self.nc = nc
        self._denials = denials
        self._window = asyncio.Semaphore(REQUESTS_INFLIGHT_MAX)

    async def request(self, subject: str, data: bytes | bytearray | memoryview, headers: dict[str, str] | None, timeout: float,
                      *, call_timeout: float | None = None) -> Message:
        """One request message and its reply within ``timeout`` seconds (of a call allowed ``call_timeout`` in all);
        NATS failures become typed errors. ``data`` goes to nats-py as it is (it takes any bytes-like body), not copied."""
        async with self._window:
            denied = self._denials.watch(subject)
            # nats-py's type hint says bytes; it only takes len() of the body and adds it to bytes, as any buffer allows.
            sent = asyncio.ensure_future(self.nc.request(subject, data, timeout=timeout, headers=headers))  # type: ignore[arg-type]
            try:
                done, _ = await asyncio.wait({sent, denied}, return_when=asyncio.FIRST_COMPLETED)
                if denied in done:
                    denied.result()
                msg = sent.result()
            except nats.errors.NoRespondersError as e:
                raise NodeUnavailableError(f"no service answers on {subject}") from e
            except nats.errors.TimeoutError as e:
                raise TimeoutError(f"no reply on {subject} within {call_timeout or timeout:g} s") from e
            except nats.errors.Error as e:
                raise NodeUnavailableError(f"request on {subject} failed: {e}") from e
            finally:
                self._denials.release(subject, denied)
                if not sent.done():
                    sent.cancel()
            return Message(headers=msg.headers, data=msg.data)

    async def close(self) -> None:
        try:
            await self.nc.drain()
        except nats.errors.Error as e:
            log.debug("draining a NATS connection: %s", e)


async def connect_nats(
    servers: str | list[str], creds: str | None, *, tls_ca: str | None = None, name: str = "pocket-client", connect_timeout: float = 5.0
) -> NatsLink:
    """Connects with creds text (or none, for a server without authentication), using the inbox prefix the credential allows.

    A refused credential is UnauthorizedError; an unreachable server NodeUnavailableError.
    """
    denials = PermissionDenials()
    nc = _CredsClient(creds) if creds is not None else NatsClient()
    options: dict[str, Any] = {
        "servers": [servers] if isinstance(servers, str) else list(servers),
        "name": name,
        "connect_timeout": connect_timeout,
        # The first connect fails fast (one server, tried twice); once connected, the link reconnects (below).
        "allow_reconnect": False,
        "max_reconnect_attempts": 1,
        "reconnect_time_wait": 0.25,
        "error_cb": denials.on_error,
    }
    if creds is not None:
        options["user_credentials"] = RawCredentials(creds)
        inbox = inbox_of_creds(creds)
        if inbox is not None:
            options["inbox_prefix"] = inbox
    if tls_ca is not None:
        options["tls"] = tls_context(tls_ca)
    try:
        await nc.connect(**options)
    except (nats.errors.Error, OSError, asyncio.TimeoutError) as e:
        await _abandon(nc)
        if isinstance(e, nats.errors.AuthorizationError) or _refuses_credential(e):
            raise UnauthorizedError(f"NATS refused the credential: {e}") from e
        raise NodeUnavailableError(f"cannot reach NATS at {servers}: {e}") from e
    except BaseException:
        # Cancelled (the client closing) or failing otherwise: nothing half-open stays behind.
        await _abandon(nc)
        raise
    # Connected: from now on the connection comes back after a loss, as the TypeScript SDK's does.
    nc.options.update(allow_reconnect=True, max_reconnect_attempts=RECONNECT_ATTEMPTS_MAX, reconnect_time_wait=RECONNECT_WAIT_S)
    return NatsLink(nc, denials)


async def _abandon(nc: NatsClient) -> None:
    """Closes what a failed connect left open."""
    try:
        await nc.close()
    except nats.errors.Error as e:
        log.debug("closing a connection that failed to open: %s", e)


def _refuses_credential(e: Exception) -> bool:
    """Whether nats-py's error is the server's ``-ERR`` refusing the credential at connect (it raises those as a plain Error)."""
    m = _PROTOCOL_ERROR.fullmatch(str(e).strip())
    return m is not None and m.group(1).strip().lower() in _CREDENTIAL_REFUSALS


class NatsCaller:
    """Calls the operations of one service (a subject prefix) over NATS."""

    def __init__(self, link: NatsLink, prefix: str, timeout: float) -> None:
        self._link = link
        self._prefix = prefix
        self._timeout = timeout

    async def call(self, operation: str, request: dict[str, Any], payload: bytes | bytearray | memoryview | None = None) -> Reply:
        """One operation: every message of it (a body or a reply in chunks) within one deadline, ``timeout`` from now."""
        subject = operation_subject(self._prefix, operation)
        body = encode_body(encode_json(request), payload)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout

        async def send(headers: dict[str, str] | None, data: bytes | memoryview) -> Message:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"{operation[:64]} on {subject}: no reply within {self._timeout:g} s")
            return await self._link.request(subject, data, headers, left, call_timeout=self._timeout)

        limit = chunk_bytes(self._link.nc.max_payload)
        reply = await send_request(send, body, limit)
        raise_if_error(reply.headers)
        data = await receive_reply(send, reply, REPLY_BYTES_MAX)
        meta, reply_payload = decode_body(data)
        return Reply(meta=decode_reply_meta(operation, meta), payload=reply_payload)


class ControllerCaller:
    """Calls the controller: drivers' operations and operators' live under different subjects."""

    def __init__(self, link: NatsLink, timeout: float) -> None:
        self._driver = NatsCaller(link, Subjects.CONTROLLER_DRIVER, timeout)
        self._admin = NatsCaller(link, Subjects.CONTROLLER_ADMIN, timeout)

    async def call(self, operation: str, request: dict[str, Any]) -> Reply:
        return await (self._driver if operation in DRIVER_OPERATIONS else self._admin).call(operation, request)

