"""One job's namespace (``client/pocket.ts``'s ``PocketJob``). Paths are relative to the job: ``a/b/c``.

Small objects (up to the shard's ``inline_bytes_max``, 4 KiB by default) live
in the shard: a put or a get is one round trip. Larger ones are laid out by
the shard over storage nodes in extents (1 MiB by default), written and read
with at most ``extents_inflight_max`` extents in flight, each with its
CRC-32; a put becomes visible, whole, at its commit. Every read is checked
against the committed crcs: bytes that do not match are read once more, then
IntegrityError, never returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .checksum import check_bytes, crc32
from .errors import IntegrityError, NodeUnavailableError, NotFoundError
from .layout import Count, Deleted, ExtentRef, ListEntry, ListPage, Piece, PutResult, ShardInfo, Stat, clamp_range, pieces_for
from .stream_put import StreamPut
from .wire import Ops, Reply, WireLimits

if TYPE_CHECKING:
    from .client import PocketClient
    from .tcp import TcpCaller
    from .tokens import JobClaims

#: A lookup can race an overwrite that frees the old extents: the whole read is tried again this many times.
STALE_READ_RETRIES_MAX = 3
#: Reads whose bytes do not match their checksums are tried again this many times (with a fresh layout) before IntegrityError.
INTEGRITY_RETRIES_MAX = 1

Data = bytes | bytearray | memoryview | str
T = TypeVar("T")


async def map_limit(items: Sequence[T], limit: int, fn: Callable[[T, int], Awaitable[None]]) -> None:
    """Runs ``fn`` over ``items`` with at most ``limit`` at once; the first failure cancels the rest and is raised."""
    queue = iter(enumerate(items))

    async def worker() -> None:
        for i, item in queue:
            await fn(item, i)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(limit, len(items)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise


def as_bytes(data: Data) -> bytes | bytearray | memoryview:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, memoryview):
        return data.cast("B") if data.format != "B" or data.ndim != 1 else data
    if isinstance(data, (bytes, bytearray)):
        return data
    raise TypeError(f"object data must be bytes, bytearray, memoryview or str, not {type(data).__name__}")


class ReceiptBatches:
    """A put's receipts: a full batch (one commit's worth) goes to the shard at once, one batch at a time; the commit carries the rest."""

    def __init__(self, send: Callable[[list[dict[str, Any]]], Awaitable[None]]) -> None:
        self._send = send
        self._batch: list[dict[str, Any]] = []
        self._sending = asyncio.Lock()

    async def add(self, receipt: dict[str, Any]) -> None:
        self._batch.append(receipt)
        if len(self._batch) < WireLimits.RECEIPTS_PER_CALL_MAX:
            return
        full, self._batch = self._batch, []
        async with self._sending:
            await self._send(full)

    async def rest(self) -> list[dict[str, Any]]:
        """Waits for the batches sent so far; the receipts left for the commit."""
        async with self._sending:
            return self._batch


def _checked_inline(r: Reply, offset: int | None, length: int | None) -> memoryview:
    """An inline object's bytes from object.get (a view of the reply, not a copy), checked against its committed crc."""
    got = r.payload if r.payload is not None else memoryview(b"")
    start, n = clamp_range(r.meta["size"], offset, length)
    check_bytes(f"inline object {r.meta.get('path')}", got, offset=start, length=n, total=r.meta["size"], crc=r.meta.get("crc"),
                prefix_crc=r.meta.get("prefixCrc"), suffix_crc=r.meta.get("suffixCrc"))
    return got


class PocketJob:
    """A handle on one job's namespace, from its capability token."""

    def __init__(self, client: "PocketClient", token: str, claims: "JobClaims") -> None:
        self.client = client
        self.token = token
        self.job_id = claims.job_id
        self.shard_id = claims.shard_id
        #: The job's resolved shard caller on the direct transport and its address, once a call through it succeeded.
        self.shard_link: tuple["TcpCaller", str] | None = None
        self._limits: ShardInfo | None = None

    async def _shard(self, operation: str, request: dict[str, Any], payload: bytes | bytearray | memoryview | None = None) -> Reply:
        return await self.client.call_shard(self, operation, {"token": self.token, **request}, payload)

    async def limits(self) -> ShardInfo:
        """The shard's limits (inline threshold, extent size), asked once."""
        if self._limits is None:
            self._limits = await self.client.shard_info(self.shard_id, self.job_id)
        return self._limits

    # ------------------------------------------------------------------ writes

    async def put(self, path: str, data: Data, *, create_only: bool = False) -> PutResult:
        """Stores an object (overwriting unless ``create_only``); it becomes visible, whole, when this returns."""
        body = as_bytes(data)
        limits = await self.limits()
        if len(body) <= limits.inline_bytes_max:
            request = {"path": path, "createOnly": create_only or None, "crc": crc32(body)}
            r = (await self._shard(Ops.OBJECT_PUT, request, body)).meta
            return PutResult(version=r["version"], size=r["size"])
        created = (await self._shard(Ops.OBJECT_CREATE, {"path": path, "size": len(body), "createOnly": create_only or None})).meta
        write_id = created["writeId"]
        try:
            receipts = self.receipts(write_id)
            view = memoryview(body)
            slices: list[tuple[ExtentRef, memoryview]] = []
            at = 0
            for e in created["extents"]:
                ref = ExtentRef.from_wire(e)
                slices.append((ref, view[at : at + ref.length]))
                at += ref.length

            async def write(s: tuple[ExtentRef, memoryview], _: int) -> None:
                await receipts.add(await self.write_extent(s[0], s[1]))

            await map_limit(slices, self.client.extents_inflight_max, write)
            done = (await self._shard(Ops.OBJECT_COMMIT, {"writeId": write_id, "receipts": await receipts.rest()})).meta
            return PutResult(version=done["version"], size=done["size"])
        except BaseException:
            await self.abort(write_id)
            raise

    async def put_stream(self, path: str, source: AsyncIterable[Data], *, size: int | None = None,
                         create_only: bool = False) -> PutResult:
        """Stores an object from an async iterable of bytes, with backpressure.

        At most ``extents_inflight_max + 1`` extents of it are in memory at
        once. ``size``, when known, lays the object out at once instead of
        extent by extent; a stream that does not match it is InvalidArgument.
        """
        limits = await self.limits()
        created = (await self._shard(Ops.OBJECT_CREATE, {"path": path, "size": size, "createOnly": create_only or None})).meta
        known = [ExtentRef.from_wire(e) for e in created["extents"]] if size is not None else None
        write = StreamPut(self, created["writeId"], known, size, self.client.extents_inflight_max)
        try:
            await write.feed((as_bytes(part) async for part in source), limits.extent_bytes_max)
            receipts = await write.receipts.rest()
            done = (await self._shard(Ops.OBJECT_COMMIT, {"writeId": created["writeId"], "receipts": receipts})).meta
            return PutResult(version=done["version"], size=done["size"])
        except BaseException:
            await write.settle()
            await self.abort(created["writeId"])
            raise

    def receipts(self, write_id: str) -> ReceiptBatches:
        async def send(batch: list[dict[str, Any]]) -> None:
            await self._shard(Ops.OBJECT_WRITTEN, {"writeId": write_id, "receipts": batch})

        return ReceiptBatches(send)

    async def write_extent(self, ref: ExtentRef, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """Writes one extent under its grant, with its crc; returns the node's receipt for the commit."""
        crc = crc32(data)
        request = {"token": self.token, "extentId": ref.extent_id, "grant": ref.grant, "crc": crc}
        r = (await self.client.call_node(ref, Ops.EXTENT_WRITE, request, self.token, data)).meta
        if r.get("length") != len(data) or r.get("crc") != crc:
            raise IntegrityError(f"extent {ref.extent_id}: the node stored {r.get('length')} bytes with crc {r.get('crc')}; sent {len(data)} with crc {crc}")
        return {"extentId": ref.extent_id, "crc": crc, "receipt": r["receipt"]}

    async def abort(self, write_id: str) -> None:
        """Abandons a put (its extents are freed); the shard frees an abandoned write itself past its deadline, so a failure here is not raised."""
        try:
            await asyncio.shield(self._shard(Ops.OBJECT_ABORT, {"writeId": write_id}))
        except Exception:  # noqa: BLE001 - the put's own error is the one the caller gets
            return

    # ------------------------------------------------------------------ reads

    async def get(self, path: str, *, offset: int | None = None, length: int | None = None) -> bytearray:
        """Reads a whole object, or ``length`` bytes from ``offset`` (to the end when ``length`` is None).

        Returns a ``bytearray`` of the caller's own, the only whole copy made:
        an object of several extents is read into it in place, each extent
        straight from its reply. Never a mix of versions, nor bytes that do not
        match the committed checksums.
        """
        integrity_retries = 0
        attempt = 0
        while True:
            r = await self._shard(Ops.OBJECT_GET, {"path": path, "offset": offset, "length": length})
            try:
                if r.meta.get("inline"):
                    return bytearray(_checked_inline(r, offset, length))
                start, n = clamp_range(r.meta["size"], offset, length)
                extents = [ExtentRef.from_wire(e) for e in r.meta["extents"]]
                return await self._read_pieces(pieces_for(extents, start, n), n)
            except IntegrityError:
                if integrity_retries >= INTEGRITY_RETRIES_MAX:
                    raise
                integrity_retries += 1
            except (NotFoundError, NodeUnavailableError):
                # An extent freed or moved under us: the object was overwritten, deleted or migrated since the lookup.
                if attempt >= STALE_READ_RETRIES_MAX:
                    raise
            attempt += 1

    async def get_stream(self, path: str, *, offset: int | None = None, length: int | None = None) -> AsyncIterator[memoryview]:
        """Reads an object (or a range) as an async iterator of chunks, at most ``extents_inflight_max`` extents ahead.

        Each chunk is a ``memoryview`` of the bytes as they were received and
        checked (one extent's, or an inline object's), not a copy.

        A consumer that stops early should close it (``contextlib.aclosing``)
        to release what was fetched ahead. An object overwritten while it
        streams fails the stream with NotFound rather than mix versions.
        """
        r = await self._shard(Ops.OBJECT_GET, {"path": path, "offset": offset, "length": length})
        if r.meta.get("inline"):
            data = _checked_inline(r, offset, length)
            if len(data) > 0:
                yield data
            return
        start, n = clamp_range(r.meta["size"], offset, length)
        pieces = pieces_for([ExtentRef.from_wire(e) for e in r.meta["extents"]], start, n)
        ahead: list[asyncio.Future[memoryview]] = []
        following = 0
        try:
            while following < len(pieces) or ahead:
                while following < len(pieces) and len(ahead) < self.client.extents_inflight_max:
                    ahead.append(asyncio.ensure_future(self.read_piece(pieces[following])))
                    following += 1
                yield await ahead.pop(0)
        finally:
            for fetch in ahead:
                fetch.cancel()
            await asyncio.gather(*ahead, return_exceptions=True)

    async def read_piece(self, p: Piece) -> memoryview:
        """Reads one piece and checks it against its extent's committed crc (IntegrityError otherwise)."""
        whole = p.offset == 0 and p.length == p.ref.length
        request = {"token": self.token, "extentId": p.ref.extent_id, "offset": None if whole else p.offset, "length": None if whole else p.length}
        r = await self.client.call_node(p.ref, Ops.EXTENT_READ, request, self.token)
        got = r.payload if r.payload is not None else memoryview(b"")
        check_bytes(f"extent {p.ref.extent_id}", got, offset=p.offset, length=p.length, total=p.ref.length, crc=p.ref.crc,
                    prefix_crc=r.meta.get("prefixCrc"), suffix_crc=r.meta.get("suffixCrc"))
        return got

    async def _read_pieces(self, pieces: list[Piece], length: int) -> bytearray:
        """The pieces' bytes in one buffer of ``length`` bytes, each copied into it once from its reply."""
        if sum(p.length for p in pieces) != length:
            raise IntegrityError(f"extents cover {sum(p.length for p in pieces)} bytes, expected {length}")
        if len(pieces) == 1:
            return bytearray(await self.read_piece(pieces[0]))
        out = bytearray(length)
        starts: list[int] = []
        at = 0
        for p in pieces:
            starts.append(at)
            at += p.length

        async def read(p: Piece, i: int) -> None:
            out[starts[i] : starts[i] + p.length] = await self.read_piece(p)

        await map_limit(pieces, self.client.extents_inflight_max, read)
        return out

    # ------------------------------------------------------------------ namespace

    async def stat(self, path: str) -> Stat:
        r = (await self._shard(Ops.OBJECT_STAT, {"path": path})).meta
        return Stat(path=r["path"], type=r["type"], size=r["size"], version=r["version"], modified_at_ms=r["modifiedAtMs"], children=r["children"])

    async def exists(self, path: str) -> bool:
        """True if an object or directory exists at ``path``."""
        try:
            await self.stat(path)
        except NotFoundError:
            return False
        return True

    async def delete(self, path: str, *, recursive: bool = False) -> Deleted:
        """Deletes an object, or a directory with ``recursive``; its bytes are freed."""
        r = (await self._shard(Ops.OBJECT_DELETE, {"path": path, "recursive": recursive or None})).meta
        return Deleted(objects=r["objects"], bytes=r["bytes"])

    async def mkdir(self, path: str) -> None:
        await self._shard(Ops.DIR_MAKE, {"path": path})

    async def list(self, path: str = "", *, after: str | None = None, limit: int | None = None) -> ListPage:
        """One page of a directory's entries, in name order."""
        r = (await self._shard(Ops.DIR_LIST, {"path": path, "after": after, "limit": limit})).meta
        entries = [ListEntry(name=e["name"], type=e["type"], size=e["size"]) for e in r["entries"]]
        return ListPage(entries=entries, more=r["more"])

    async def list_all(self, path: str = "", page_size: int = 1000) -> AsyncIterator[ListEntry]:
        """Every entry of a directory, page by page."""
        after: str | None = None
        while True:
            page = await self.list(path, after=after, limit=page_size)
            for e in page.entries:
                yield e
            if not page.more or not page.entries:
                return
            after = page.entries[-1].name

    async def count(self, path: str = "", *, recursive: bool = False) -> Count:
        r = (await self._shard(Ops.DIR_COUNT, {"path": path, "recursive": recursive or None})).meta
        return Count(objects=r["objects"], directories=r["directories"], bytes=r["bytes"])
