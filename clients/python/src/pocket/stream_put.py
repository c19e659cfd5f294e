"""A put from a stream: extents filled one at a time, written with a bounded number in flight.

Memory: the extent being filled plus at most ``window`` extents being written.
Without a declared size, each extent is asked of the shard (object.extend) as
it fills, one request at a time and in order, since the shard appends extents
in the order they are asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError
from .layout import ExtentRef
from .wire import Ops

if TYPE_CHECKING:
    from .job import PocketJob


class StreamPut:
    def __init__(self, job: "PocketJob", write_id: str, known: list[ExtentRef] | None, size: int | None, window: int) -> None:
        self._job = job
        self._write_id = write_id
        self._known = known
        self._size = size
        self._window = window
        self._writes: set[asyncio.Future[None]] = set()
        self._failure: BaseException | None = None
        #: Resolved once the last object.extend asked for has been answered (or failed): the next one waits for it.
        self._extended: asyncio.Future[None] | None = None
        self.receipts = job.receipts(write_id)
        self.total = 0

    async def feed(self, source: AsyncIterable[bytes | bytearray | memoryview], extent_bytes: int) -> None:
        """Writes the stream's bytes extent by extent; returns once every extent is written."""
        buffer = bytearray(extent_bytes)
        used = 0
        async for part in source:
            data = memoryview(part)
            at = 0
            while at < len(data):
                n = min(len(data) - at, extent_bytes - used)
                buffer[used : used + n] = data[at : at + n]
                used += n
                at += n
                self.total += n
                if used == extent_bytes:
                    self._start(buffer)
                    buffer = bytearray(extent_bytes)
                    used = 0
                    while len(self._writes) >= self._window and self._failure is None:
                        await asyncio.wait(self._writes, return_when=asyncio.FIRST_COMPLETED)
                self._raise_failure()
        if used > 0:
            self._start(memoryview(buffer)[:used])
        await self.settle()
        self._raise_failure()
        if self._known:
            raise InvalidArgumentError(f"the stream ended at {self.total} bytes, short of its declared size {self._size}")

    def _start(self, chunk: bytearray | memoryview) -> None:
        ref: ExtentRef | None = None
        if self._known is not None:
            if not self._known:
                raise InvalidArgumentError(f"the stream is longer than its declared size {self._size}")
            ref = self._known.pop(0)
            if ref.length != len(chunk):
                raise InvalidArgumentError(f"the stream does not match its declared size {self._size}")
        before = self._extended
        extended: asyncio.Future[None] | None = None
        if ref is None:
            extended = self._extended = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._flush(chunk, ref, before, extended))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _flush(self, chunk: bytearray | memoryview, ref: ExtentRef | None,
                     before: asyncio.Future[None] | None, extended: asyncio.Future[None] | None) -> None:
        try:
            if ref is None:
                ref = await self._extend(len(chunk), before, extended)
            await self.receipts.add(await self._job.write_extent(ref, chunk))
        except Exception as e:  # noqa: BLE001 - kept and raised by feed
            if self._failure is None:
                self._failure = e

    async def _extend(self, length: int, before: asyncio.Future[None] | None, extended: asyncio.Future[None] | None) -> ExtentRef:
        try:
            if before is not None:
                await asyncio.wait([before])
            request: dict[str, Any] = {"writeId": self._write_id, "lengths": [length]}
            reply = await self._job.client.call_shard(self._job, Ops.OBJECT_EXTEND, {"token": self._job.token, **request})
            return ExtentRef.from_wire(reply.meta["extents"][0])
        finally:
            if extended is not None and not extended.done():
                extended.set_result(None)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def settle(self) -> None:
        """Waits for every extent write in flight to end."""
        while self._writes:
            await asyncio.wait(set(self._writes))
