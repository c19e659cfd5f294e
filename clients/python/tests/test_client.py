"""The client's own bookkeeping over a real nats-server: options checked before connecting, failed lookups
asked again, close() ending what is under way, deregistration, job connections evicted only when idle, one
deadline per call.

The cluster's services are played by ``Service`` below, this test's responder
on its own NATS connection: it answers as a Pocket service does (bodies of
wire.py, errors in the ``Pocket-Error`` headers), or holds a reply back until
the test lets it go.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from conftest import StartNats
from nats_server import NatsServer
from pocket import BusyError, NodeUnavailableError, PocketClient, PocketError, TimeoutError, Transport, UnknownJobError
from pocket.chunking import CHUNK_ACK_HEADER, CHUNK_HEADER
from pocket.client import JOB_CONNECTIONS_MAX
from pocket.nats_transport import NatsCaller, connect_nats
from pocket.tokens import b64url_encode
from pocket.wire import ErrorHeaders, Subjects, decode_body, encode_body, encode_json

# A user nkey seed made by bus/nkeys.ts (test_credentials.py signs with it too); a server without authentication ignores it.
SEED = "SUABLTY25EBWPHDVBTMOPSJN46EWUN6CDE5TLDNUBPLDZ4SD3EJUQX4Y4U"

@dataclass(frozen=True)
class RawAnswer:
    """A reply message as it goes on the wire (a chunk's acknowledgement)."""

    headers: dict[str, str]
    data: bytes


#: A reply's meta, a typed error, or a message as is.
Answer = dict[str, Any] | PocketError | RawAnswer


def job_token(job_id: str, shard_id: str = "s0") -> str:
    claims = {"k": "job", "j": job_id, "s": shard_id, "e": int(time.time() * 1000) + 3_600_000}
    return f"{b64url_encode(json.dumps(claims).encode())}.c2ln"


def job_creds(job_id: str) -> str:
    header = b64url_encode(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    claims = b64url_encode(json.dumps({"sub": job_id, "nats": {"sub": {"allow": [f"_INBOX_{job_id}.>"]}}}).encode())
    return "\n".join(["-----BEGIN NATS USER JWT-----", f"{header}.{claims}.c2ln", "------END NATS USER JWT------", "",
                      "-----BEGIN USER NKEY SEED-----", SEED, "------END USER NKEY SEED------", ""])


class Service:
    """Answers requests on subjects (wildcards allowed) with what ``handler`` returns for each, concurrently."""

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, server: NatsServer) -> "Service":
        return cls(await nats.connect(server.url))

    async def serve(self, subject: str, handler: Callable[[Msg], Awaitable[Answer]]) -> None:
        async def on_message(msg: Msg) -> None:
            task = asyncio.ensure_future(self._answer(msg, handler))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        await self.nc.subscribe(subject, cb=on_message)
        await self.nc.flush()

    async def _answer(self, msg: Msg, handler: Callable[[Msg], Awaitable[Answer]]) -> None:
        answer = await handler(msg)
        if isinstance(answer, RawAnswer):
            await self.nc.publish(msg.reply, answer.data, headers=answer.headers)
        elif isinstance(answer, PocketError):
            await self.nc.publish(msg.reply, b"", headers={ErrorHeaders.CODE: answer.code, ErrorHeaders.MESSAGE: answer.message})
        else:
            await self.nc.publish(msg.reply, encode_body(encode_json(answer)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.nc.close()


@pytest.fixture
async def nats_server(start_nats: StartNats) -> NatsServer:
    return await start_nats()


@pytest.fixture
async def service(nats_server: NatsServer) -> AsyncIterator[Service]:
    s = await Service.start(nats_server)
    yield s
    await s.close()


async def until(probe: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def shard_info_reply(shard_id: str) -> dict[str, Any]:
    return {"shardId": shard_id, "addr": "127.0.0.1:1", "key": "k", "inlineBytesMax": 4096, "extentBytesMax": 1 << 20}


STAT = {"path": "p", "type": "object", "size": 1, "version": 1, "modifiedAtMs": 0, "children": 0}


@pytest.mark.parametrize("options", [
    {"transport": "tcp"}, {"extents_inflight_max": 0}, {"request_timeout": 0}, {"shard_cache_max": 0},
])
async def test_bad_options_are_refused_before_a_connection_is_opened(nats_server: NatsServer, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        await PocketClient.connect(nats_server.url, **options)
    assert await nats_server.connections() == 0


async def test_a_failed_shard_lookup_is_asked_again_whatever_it_failed_with(nats_server: NatsServer, service: Service) -> None:
    answers: list[Answer] = [{"shardId": "s0"}, shard_info_reply("s0")]  # the first lacks fields: a KeyError, not a PocketError

    async def shard_info(msg: Msg) -> Answer:
        return answers.pop(0)

    await service.serve(f"{Subjects.shard_job('s0', 'j1')}.shard.info", shard_info)
    async with await PocketClient.connect(nats_server.url, request_timeout=5) as client:
        with pytest.raises(KeyError):
            await client.shard_info("s0", "j1")
        info = await client.shard_info("s0", "j1")
    assert info.shard_id == "s0" and answers == []


async def test_close_ends_a_shard_lookup_under_way(nats_server: NatsServer, service: Service) -> None:
    asked = asyncio.Event()
    never = asyncio.Event()

    async def silent(msg: Msg) -> Answer:
        asked.set()
        await never.wait()
        return shard_info_reply("s0")

    await service.serve(f"{Subjects.shard_job('s0', 'j1')}.shard.info", silent)
    client = await PocketClient.connect(nats_server.url, request_timeout=30)
    lookup = asyncio.ensure_future(client.shard_info("s0", "j1"))
    await asyncio.wait_for(asked.wait(), 5)
    started = time.monotonic()
    await client.close()
    with pytest.raises(NodeUnavailableError, match="closed"):
        await asyncio.wait_for(lookup, 5)
    assert time.monotonic() - started < 2
    with pytest.raises(NodeUnavailableError):
        await client.shard_info("s0", "j1")


async def test_deregistering_keeps_renewing_the_lease_until_the_controller_has_ended_the_job(nats_server: NatsServer, service: Service) -> None:
    deregistrations: list[Answer] = [TimeoutError("the controller is restarting"), {"jobId": "j1", "freedBytes": 0},
                                      UnknownJobError("job j2 is not registered")]

    async def register(msg: Msg) -> Answer:
        name = json.loads(bytes(decode_body(msg.data)[0]))["name"]
        now = int(time.time() * 1000)
        return {"jobId": name, "token": job_token(name), "shardId": "s0", "expiresAtMs": now + 3_600_000,
                "leaseExpiresAtMs": now + 60_000, "leaseMs": 60_000, "tier": "dram", "weights": []}

    async def deregister(msg: Msg) -> Answer:
        return deregistrations.pop(0)

    await service.serve(f"{Subjects.CONTROLLER_DRIVER}.job.register", register)
    await service.serve(f"{Subjects.CONTROLLER_DRIVER}.job.deregister", deregister)
    async with await PocketClient.connect(nats_server.url, request_timeout=5) as driver:
        j1 = await driver.register_job("j1")
        with pytest.raises(TimeoutError):
            await driver.deregister_job(j1.token)
        assert driver.renewing(j1.token), "a deregistration that failed for a passing reason stopped the renewals"
        assert (await driver.deregister_job(j1.token))["jobId"] == "j1"
        assert not driver.renewing(j1.token)
        j2 = await driver.register_job("j2")
        with pytest.raises(UnknownJobError):
            await driver.deregister_job(j2.token)
        assert not driver.renewing(j2.token)


async def test_a_job_connection_in_use_is_never_evicted_and_idle_ones_go_least_recently_used_first(
    nats_server: NatsServer, service: Service,
) -> None:
    held: set[str] = set()
    received: set[str] = set()
    release = asyncio.Event()

    async def stat(msg: Msg) -> Answer:
        job_id = msg.subject.split(".")[4]
        received.add(job_id)
        if job_id in held:
            await release.wait()
        return STAT

    await service.serve(f"{Subjects.shard_job('s0', '*')}.object.stat", stat)
    ids = [f"j{i}" for i in range(JOB_CONNECTIONS_MAX + 1)]
    async with await PocketClient.connect(nats_server.url, transport=Transport.NATS, request_timeout=10) as client:
        jobs = {i: client.job(job_token(i), credentials=job_creds(i)) for i in ids}
        held.add(ids[0])
        first = asyncio.ensure_future(jobs[ids[0]].stat("p"))
        await until(lambda: asyncio.sleep(0, ids[0] in received))
        for i in ids[1:]:
            # The last one needs a connection past the bound: the least recently used idle one (j1) goes, not j0 in use.
            assert (await jobs[i].stat("p")).path == "p"
        # This client's own connection, the responder's, and JOB_CONNECTIONS_MAX of jobs' once j1's has closed.
        await until(lambda: _connections_are(nats_server, 2 + JOB_CONNECTIONS_MAX))
        held.update(ids)
        received.clear()
        rest = [asyncio.ensure_future(jobs[i].stat("p")) for i in ids[2:]]
        await until(lambda: asyncio.sleep(0, len(received) == len(rest)))
        with pytest.raises(BusyError):
            await jobs[ids[1]].stat("p")
        release.set()
        results = await asyncio.gather(first, *rest)
    assert all(r.path == "p" for r in results)


async def _connections_are(server: NatsServer, n: int) -> bool:
    return await server.connections() == n


async def test_every_chunk_of_a_call_shares_one_deadline(start_nats: StartNats) -> None:
    server = await start_nats(max_payload=8192)  # chunks of 8192 - 4096 bytes
    service = await Service.start(server)
    acks = 0

    async def slow_chunks(msg: Msg) -> Answer:
        nonlocal acks
        await asyncio.sleep(0.25)  # a slow server: each chunk answered a quarter second after it came
        index, count = (int(v) for v in (msg.headers or {})[CHUNK_HEADER].split(";")[1:3])
        if index < count - 1:
            acks += 1
            return RawAnswer(headers={CHUNK_ACK_HEADER: str(index)}, data=b"")
        return {"version": 1, "size": 0}

    await service.serve(f"{Subjects.shard_job('s0', 'j1')}.object.put", slow_chunks)
    link = await connect_nats(server.url, None)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            # 8 chunks at a quarter second each take 2 s: past the call's 1 s, though each chunk alone is quick enough.
            await NatsCaller(link, Subjects.shard_job("s0", "j1"), 1.0).call("object.put", {"path": "p"}, b"x" * (8 * 4096 - 100))
        assert time.monotonic() - started < 1.6
        assert acks <= 4
    finally:
        await link.close()
        await service.close()
