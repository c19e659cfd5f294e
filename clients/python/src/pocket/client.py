"""The client a Python lambda or job driver imports (``client/pocket.ts``'s ``PocketClient``).

One per process: the NATS connection and the pooled direct-transport
connections to shards and storage nodes are reused across calls and jobs.

Example::

    pocket = await PocketClient.connect(os.environ["POCKET_NATS_URL"], credentials=credentials_from_env())
    job = pocket.job(os.environ["POCKET_TOKEN"])
    await job.put("shuffle/part-0", data)
    back = await job.get("shuffle/part-0")
    await pocket.close()
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .credentials import credentials_from_env, tls_ca_from_env
from .errors import BusyError, InvalidArgumentError, NodeUnavailableError, PocketError, UnauthorizedError, UnknownJobError
from .job import PocketJob
from .layout import ExtentRef, RegisteredJob, ShardInfo
from .lease import LeaseKeeper
from .nats_transport import ControllerCaller, NatsCaller, NatsLink, connect_nats
from .tcp import ConnectFailedError, ConnectionLostError, TcpOptions, TcpPool
from .tokens import peek_job_claims
from .wire import Ops, Reply, Subjects

if TYPE_CHECKING:
    from collections.abc import Awaitable


#: Jobs whose lambda credential one client keeps a NATS connection open with (an idle one is closed past it).
JOB_CONNECTIONS_MAX = 64
#: Job credentials one client remembers.
JOB_CREDENTIALS_MAX = 10_000
#: Job handles one client caches.
JOBS_MAX = 1024


class Transport:
    #: Object bytes and the shard's operations over the direct TCP transport, the controller over NATS.
    AUTO = "auto"
    #: Everything over NATS (for clients that can reach only NATS).
    NATS = "nats"


@dataclass(frozen=True)
class JobHints:
    """What a driver tells the controller about its job; every field optional."""

    lambdas: int | None = None
    capacity_bytes: int | None = None
    throughput_bps: int | None = None
    latency_sensitive: bool | None = None
    #: Share of the job's I/O that is reads (0..1).
    read_ratio: float | None = None

    def to_wire(self) -> dict[str, Any]:
        wire = {
            "lambdas": self.lambdas, "capacityBytes": self.capacity_bytes, "throughputBps": self.throughput_bps,
            "latencySensitive": self.latency_sensitive, "readRatio": self.read_ratio,
        }
        return {k: v for k, v in wire.items() if v is not None}


V = TypeVar("V")


def _bounded_put(d: dict[str, Any], key: str, value: Any, bound: int) -> None:
    """Sets ``d[key]``, dropping the oldest entry first when ``d`` holds ``bound`` others."""
    if key not in d and len(d) >= bound:
        del d[next(iter(d))]
    d[key] = value


def _forget_if_failed(d: dict[str, V], key: str, entry: V, pending: "asyncio.Future[Any]") -> None:
    """Removes ``d[key]`` (while it is still ``entry``) once ``pending`` fails or is cancelled, whatever it raised:
    a failed lookup or connection is tried afresh by the next call, never handed out again."""
    def done(f: "asyncio.Future[Any]") -> None:
        if (f.cancelled() or f.exception() is not None) and d.get(key) is entry:
            del d[key]

    pending.add_done_callback(done)


def _check_options(transport: str, extents_inflight_max: int, request_timeout: float, shard_cache_max: int) -> None:
    """ValueError for options no client can run with (checked before anything is opened)."""
    if transport not in (Transport.AUTO, Transport.NATS):
        raise ValueError(f"transport must be {Transport.AUTO!r} or {Transport.NATS!r}")
    if isinstance(extents_inflight_max, bool) or not isinstance(extents_inflight_max, int) or extents_inflight_max < 1:
        raise ValueError("extents_inflight_max must be an integer of at least 1")
    if isinstance(request_timeout, bool) or not isinstance(request_timeout, (int, float)) or not request_timeout > 0:
        raise ValueError("request_timeout must be a number of seconds above 0")
    if isinstance(shard_cache_max, bool) or not isinstance(shard_cache_max, int) or shard_cache_max < 1:
        raise ValueError("shard_cache_max must be an integer of at least 1")


class _JobConnection:
    """A NATS connection with one job's own credential, and the calls using it now.

    Evicted (past JOB_CONNECTIONS_MAX, or its job deregistered), it is closed
    once its last call ends, never under a call.
    """

    def __init__(self, pending: "asyncio.Future[NatsLink]") -> None:
        self.pending = pending
        #: Calls holding it now.
        self.users = 0


class PocketClient:
    """Connections to one cluster; ``job(token)`` gives a handle on a job's namespace."""

    def __init__(self, link: NatsLink, servers: str | list[str], *, tls_ca: str | None, transport: str,
                 extents_inflight_max: int, request_timeout: float, name: str, shard_cache_max: int) -> None:
        _check_options(transport, extents_inflight_max, request_timeout, shard_cache_max)
        self.transport = transport
        self.extents_inflight_max = extents_inflight_max
        self.request_timeout = request_timeout
        self.controller = ControllerCaller(link, request_timeout)
        self._link = link
        self._servers = servers
        self._tls_ca = tls_ca
        self._name = name
        self._shard_cache_max = shard_cache_max
        self._pool = TcpPool(TcpOptions(request_timeout=request_timeout, tls_ca=tls_ca))
        self._leases = LeaseKeeper(self.renew_lease)
        self._jobs: dict[str, PocketJob] = {}
        self._shards: dict[str, asyncio.Future[ShardInfo]] = {}
        self._job_credentials: dict[str, str] = {}
        #: Jobs' own NATS connections, least recently used first.
        self._job_links: dict[str, _JobConnection] = {}
        #: Evicted job connections that calls still use: each is closed when its last call ends.
        self._retiring: set[_JobConnection] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    async def connect(cls, servers: str | list[str], *, credentials: str | None = None, tls_ca: str | None = None,
                      transport: str = Transport.AUTO, extents_inflight_max: int = 8, request_timeout: float = 30.0,
                      name: str = "pocket-client", shard_cache_max: int = 256) -> "PocketClient":
        """Connects to the cluster's NATS with this process's credential (creds text; see ``credentials_from_env``).

        ``tls_ca``: the cluster's CA (PEM text) when it runs TLS; NATS and the
        direct transport are then reached over TLS only. Bad options are
        ValueError, before anything is opened.
        """
        _check_options(transport, extents_inflight_max, request_timeout, shard_cache_max)
        link = await connect_nats(servers, credentials, tls_ca=tls_ca, name=name)
        try:
            return cls(link, servers, tls_ca=tls_ca, transport=transport, extents_inflight_max=extents_inflight_max,
                       request_timeout=request_timeout, name=name, shard_cache_max=shard_cache_max)
        except BaseException:
            await link.close()
            raise

    @classmethod
    async def connect_from_env(cls, **options: Any) -> "PocketClient":
        """Connects with what a lambda's environment holds: ``POCKET_NATS_URL``, the credential
        (``POCKET_CREDS`` or the file ``POCKET_NATS_CREDS`` names) and ``POCKET_TLS_CA``; ``options`` as for ``connect``."""
        url = os.environ.get("POCKET_NATS_URL")
        if not url:
            raise InvalidArgumentError("POCKET_NATS_URL is not set")
        return await cls.connect(url, credentials=credentials_from_env(), tls_ca=tls_ca_from_env(), **options)

    async def __aenter__(self) -> "PocketClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ jobs

    async def register_job(self, name: str, hints: JobHints | None = None, *, lease_ms: int | None = None,
                           renew: bool = True) -> RegisteredJob:
        """Registers a job; while this client is open it renews the job's lease unless ``renew`` is False."""
        request = {"name": name, "hints": (hints or JobHints()).to_wire(), "leaseMs": lease_ms}
        reg = RegisteredJob.from_wire((await self.controller.call(Ops.JOB_REGISTER, request)).meta)
        if renew:
            self._leases.keep(reg.token, reg.lease_ms, reg.lease_expires_at_ms)
        if reg.credentials is not None:
            _bounded_put(self._job_credentials, reg.job_id, reg.credentials, JOB_CREDENTIALS_MAX)
        return reg

    async def renew_lease(self, token: str) -> dict[str, Any]:
        """Renews a job's lease now: ``{"jobId", "leaseExpiresAtMs"}``."""
        return (await self.controller.call(Ops.JOB_RENEW, {"token": token})).meta

    def lease_error(self, token: str) -> PocketError | None:
        """The last failure renewing a job's lease in the background, if its last renewal failed."""
        return self._leases.lease_error(token)

    def renewing(self, token: str) -> bool:
        """Whether this client still renews the job's lease."""
        return self._leases.renewing(token)

    async def deregister_job(self, token: str) -> dict[str, Any]:
        """Ends a job; every byte it stored is freed: ``{"jobId", "freedBytes"}``.

        The job's lease is renewed until the controller has ended it (or says
        it is gone: UnknownJob, Unauthorized): a deregistration that failed for
        a passing reason leaves the job alive, to be deregistered again.
        """
        job_id = peek_job_claims(token).job_id
        try:
            reply = (await self.controller.call(Ops.JOB_DEREGISTER, {"token": token})).meta
        except (UnknownJobError, UnauthorizedError):
            self._forget_job(token, job_id)
            raise
        self._forget_job(token, job_id)
        return reply

    def _forget_job(self, token: str, job_id: str) -> None:
        self._jobs.pop(token, None)
        self._leases.stop(token)
        self._forget_job_link(job_id)

    def job(self, token: str, credentials: str | None = None) -> PocketJob:
        """A handle on one job's namespace (cached per token); ``credentials``: the job's lambda credential, if this client has another."""
        claims = peek_job_claims(token)
        if credentials is not None:
            _bounded_put(self._job_credentials, claims.job_id, credentials, JOB_CREDENTIALS_MAX)
        j = self._jobs.get(token)
        if j is None:
            j = PocketJob(self, token, claims)
            _bounded_put(self._jobs, token, j, JOBS_MAX)
        return j

    async def list_jobs(self) -> list[dict[str, Any]]:
        return (await self.controller.call(Ops.JOB_LIST, {})).meta["jobs"]

    async def list_nodes(self) -> list[dict[str, Any]]:
        return (await self.controller.call(Ops.NODE_LIST, {})).meta["nodes"]

    async def list_shards(self) -> list[dict[str, Any]]:
        return (await self.controller.call(Ops.SHARD_LIST, {})).meta["shards"]

    # ------------------------------------------------------------------ connections

    @asynccontextmanager
    async def nats_for(self, job_id: str) -> AsyncIterator[NatsLink]:
        """The NATS connection a job's requests go on, held for the block: one with the job's own credential
        when this client has it, else its own. ``async with client.nats_for(job_id) as link: ...``"""
        creds = self._job_credentials.get(job_id)
        if creds is None:
            yield self._link
            return
        held = self._hold_job_connection(job_id, creds)
        try:
            yield await self._shared(held.pending)
        finally:
            held.users -= 1
            if held.users == 0 and held in self._retiring:
                self._retiring.discard(held)
                self._close_later(held.pending)

    def _hold_job_connection(self, job_id: str, creds: str) -> _JobConnection:
        """The job's connection (opened if need be, the least recently used idle one closed past the bound), one more user."""
        if self._closed:
            raise NodeUnavailableError("the client is closed")
        held = self._job_links.pop(job_id, None)
        if held is None:
            if len(self._job_links) >= JOB_CONNECTIONS_MAX:
                self._evict_idle_job_connection()
            held = _JobConnection(asyncio.ensure_future(
                connect_nats(self._servers, creds, tls_ca=self._tls_ca, name=f"{self._name}-{job_id}")))
            _forget_if_failed(self._job_links, job_id, held, held.pending)
        self._job_links[job_id] = held
        held.users += 1
        return held

    def _evict_idle_job_connection(self) -> None:
        for job_id, held in self._job_links.items():
            if held.users == 0:
                del self._job_links[job_id]
                self._retire(held)
                return
        raise BusyError(f"the NATS connections of {JOB_CONNECTIONS_MAX} jobs are all in use")

    def _retire(self, held: _JobConnection) -> None:
        """Closes a job's connection now if no call uses it, else when its last call ends."""
        if held.users == 0:
            self._close_later(held.pending)
        else:
            self._retiring.add(held)

    def _forget_job_link(self, job_id: str) -> None:
        self._job_credentials.pop(job_id, None)
        held = self._job_links.pop(job_id, None)
        if held is not None:
            self._retire(held)

    def _close_later(self, pending: "asyncio.Future[NatsLink]") -> None:
        async def close() -> None:
            await asyncio.wait([pending])
            if pending.cancelled() or pending.exception() is not None:
                return  # it never opened: nothing to close (its callers got why)
            await pending.result().close()

        task = asyncio.ensure_future(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _shared(self, pending: "asyncio.Future[V]") -> V:
        """Awaits a lookup or connection that several calls share; one that close() cancelled is NodeUnavailable to them."""
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if pending.cancelled() and (task is None or task.cancelling() == 0):
                raise NodeUnavailableError("the client is closed") from None
            raise

    async def _call_over_nats(self, prefix: str, job_id: str, operation: str, request: dict[str, Any],
                              payload: bytes | bytearray | memoryview | None = None) -> Reply:
        async with self.nats_for(job_id) as link:
            return await NatsCaller(link, prefix, self.request_timeout).call(operation, request, payload)

    async def shard_info(self, shard_id: str, job_id: str) -> ShardInfo:
        """A shard's direct-transport address, transport key and limits, asked of it over NATS once and remembered
        (a lookup that failed, whatever with, is asked again by the next call)."""
        if self._closed:
            raise NodeUnavailableError("the client is closed")
        pending = self._shards.get(shard_id)
        if pending is None:
            pending = asyncio.ensure_future(self._ask_shard_info(shard_id, job_id))
            _bounded_put(self._shards, shard_id, pending, self._shard_cache_max)
            _forget_if_failed(self._shards, shard_id, pending, pending)
        return await self._shared(pending)

    async def _ask_shard_info(self, shard_id: str, job_id: str) -> ShardInfo:
        r = (await self._call_over_nats(Subjects.shard_job(shard_id, job_id), job_id, Ops.SHARD_INFO, {})).meta
        return ShardInfo(shard_id=r["shardId"], addr=r["addr"], key=r["key"], inline_bytes_max=r["inlineBytesMax"],
                         extent_bytes_max=r["extentBytesMax"])

    def _forget_shard(self, shard_id: str) -> None:
        self._shards.pop(shard_id, None)

    async def call_shard(self, job: PocketJob, operation: str, request: dict[str, Any],
                         payload: bytes | bytearray | memoryview | None = None) -> Reply:
        """Calls a shard operation: over the direct transport in auto mode (its address looked up again once
        when it stops answering), over NATS otherwise."""
        if self.transport == Transport.NATS:
            return await self._call_over_nats(Subjects.shard_job(job.shard_id, job.job_id), job.job_id, operation, request, payload)
        held = job.shard_link
        if held is not None:
            try:
                return await held[0].call(operation, request, payload)
            except (ConnectFailedError, ConnectionLostError) as e:
                job.shard_link = None
                self._forget_shard(job.shard_id)
                self._pool.drop(held[1])
                if not isinstance(e, ConnectFailedError):
                    raise
        return await self._call_shard_afresh(job, operation, request, payload)

    async def _call_shard_afresh(self, job: PocketJob, operation: str, request: dict[str, Any],
                                 payload: bytes | bytearray | memoryview | None) -> Reply:
        for attempt in range(2):
            info = await self.shard_info(job.shard_id, job.job_id)
            try:
                caller = self._pool.caller(info.addr, info.shard_id, info.key, job.token)
                reply = await caller.call(operation, request, payload)
                job.shard_link = (caller, info.addr)
                return reply
            except (ConnectFailedError, ConnectionLostError) as e:
                # The address may be stale (the shard restarted elsewhere): ask again next time.
                self._forget_shard(job.shard_id)
                self._pool.drop(info.addr)
                # Only a request that never went out (or a peer that did not prove itself) is safe to retry at once.
                if not isinstance(e, ConnectFailedError) or attempt > 0:
                    raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def call_node(self, ref: ExtentRef, operation: str, request: dict[str, Any], token: str,
                        payload: bytes | bytearray | memoryview | None = None) -> Reply:
        """Calls a storage node for a job: direct TCP to the address and key its shard gave, or NATS in NATS-only mode."""
        if self.transport == Transport.NATS:
            job_id = peek_job_claims(token).job_id
            return await self._call_over_nats(Subjects.node_job(ref.node_id, job_id), job_id, operation, request, payload)
        if not ref.addr or not ref.key:
            raise NodeUnavailableError(f"node {ref.node_id} has no known address")
        return await self._pool.caller(ref.addr, ref.node_id, ref.key, token).call(operation, request, payload)

    async def close(self) -> None:
        """Stops renewing leases, ends the lookups and connects under way (their callers get NodeUnavailable)
        and closes every connection."""
        self._closed = True
        await self._leases.close()
        lookups = list(self._shards.values())
        self._shards.clear()
        for pending in lookups:
            pending.cancel()
        self._pool.close()
        links = [*self._job_links.values(), *self._retiring]
        self._job_links.clear()
        self._retiring.clear()
        for held in links:
            held.pending.cancel()
            self._close_later(held.pending)
        waits: list[Awaitable[Any]] = [*lookups, *self._closing]
        await asyncio.gather(*waits, return_exceptions=True)
        await self._link.close()
