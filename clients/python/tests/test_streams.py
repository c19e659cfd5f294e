"""Streams hold a bounded window of an object, not the object: a 40 MiB stream through a real cluster
(Python's own allocations, measured by tracemalloc, stay far below the stream's size). A whole get holds
the object once: it is read into the buffer it returns, not copied again."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from pocket import PocketClient, Transport, credentials_from_env, tls_ca_from_env

MiB = 1 << 20
STREAM_BYTES = 40 * MiB
#: Extents in flight (4) plus the one being filled, the transports' write buffers and reply frames, with room.
PEAK_BYTES_MAX = 24 * MiB


@pytest.mark.parametrize("transport", [Transport.AUTO, Transport.NATS])
async def test_a_stream_through_the_cluster_is_held_a_window_at_a_time(nats_url: str, transport: str) -> None:
    block = os.urandom(MiB // 2)
    blocks = STREAM_BYTES // len(block)
    want = hashlib.sha256(block * blocks).hexdigest()

    async def source() -> AsyncIterator[bytes]:
        for _ in range(blocks):
            yield block

    async with await PocketClient.connect(nats_url, credentials=credentials_from_env(), tls_ca=tls_ca_from_env()) as driver:
        reg = await driver.register_job(f"streams-{transport}", renew=False)
        try:
            async with await PocketClient.connect(nats_url, credentials=reg.credentials, tls_ca=tls_ca_from_env(),
                                                  transport=transport, extents_inflight_max=4) as lam:
                job = lam.job(reg.token)
                await job.put("warm", b"w" * (2 * MiB))  # connections and shard limits in place before measuring
                tracemalloc.start()
                try:
                    put = await job.put_stream("big", source())
                    put_peak = tracemalloc.get_traced_memory()[1]
                    tracemalloc.reset_peak()
                    digest = hashlib.sha256()
                    got = 0
                    async for part in job.get_stream("big"):
                        digest.update(part)
                        got += len(part)
                    get_peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
        finally:
            await driver.deregister_job(reg.token)
    assert (put.size, got, digest.hexdigest()) == (STREAM_BYTES, STREAM_BYTES, want)
    assert put_peak < PEAK_BYTES_MAX, f"put_stream held {put_peak / MiB:.1f} MiB at once"
    assert get_peak < PEAK_BYTES_MAX, f"get_stream held {get_peak / MiB:.1f} MiB at once"


GET_BYTES = 24 * MiB
#: The object once, plus the extents in flight (2) and the transports' buffers, with room; a second copy is past it.
GET_PEAK_BYTES_MAX = GET_BYTES * 3 // 2


@pytest.mark.parametrize("transport", [Transport.AUTO, Transport.NATS])
async def test_a_get_of_many_extents_holds_the_object_once(nats_url: str, transport: str) -> None:
    data = os.urandom(GET_BYTES)
    async with await PocketClient.connect(nats_url, credentials=credentials_from_env(), tls_ca=tls_ca_from_env()) as driver:
        reg = await driver.register_job(f"get-once-{transport}", renew=False)
        try:
            async with await PocketClient.connect(nats_url, credentials=reg.credentials, tls_ca=tls_ca_from_env(),
                                                  transport=transport, extents_inflight_max=2) as lam:
                job = lam.job(reg.token)
                await job.put("big", data)
                tracemalloc.start()
                try:
                    got = await job.get("big")
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
        finally:
            await driver.deregister_job(reg.token)
    assert peak < GET_PEAK_BYTES_MAX, f"get held {peak / MiB:.1f} MiB at once for a {GET_BYTES // MiB} MiB object"
    assert got == data and isinstance(got, bytearray)
