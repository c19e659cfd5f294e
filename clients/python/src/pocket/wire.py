"""What both transports carry, as ``bus/subjects.ts``, ``bus/body.ts`` and ``schemas/operations.ts`` spell it.

A body is ``u32 metaLength (big-endian) | meta | payload``: the meta is the
request or reply object as UTF-8 JSON, the payload raw object bytes. Servers
answer in the form they were asked in, so this client's JSON requests get
JSON replies (the binary layouts of ``schemas/codec.ts`` start with a 0x00
byte, which JSON text never does).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from .errors import InternalError, InvalidArgumentError

SUBJECT_ROOT = "pocket"


class Subjects:
    """NATS subjects of the operations a client calls (``bus/subjects.ts``)."""

    #: The controller's operations for job drivers (register, renew, deregister).
    CONTROLLER_DRIVER = f"{SUBJECT_ROOT}.ctl.driver"
    #: The controller's operations for operators (lists, usage, retire).
    CONTROLLER_ADMIN = f"{SUBJECT_ROOT}.ctl.admin"

    @staticmethod
    def shard_job(shard_id: str, job_id: str) -> str:
        """A job's operations on its shard."""
        return f"{SUBJECT_ROOT}.shard.{shard_id}.job.{job_id}"

    @staticmethod
    def node_job(node_id: str, job_id: str) -> str:
        """A job's operations on a storage node (its NATS fallback)."""
        return f"{SUBJECT_ROOT}.node.{node_id}.job.{job_id}"


def operation_subject(prefix: str, operation: str) -> str:
    return f"{prefix}.{operation}"


class ErrorHeaders:
    """NATS header names for errors carried in replies."""

    CODE = "Pocket-Error"
    MESSAGE = "Pocket-Message"


class Ops:
    """Operation names (``schemas/operations.ts``)."""

    JOB_REGISTER = "job.register"
    JOB_RENEW = "job.renew"
    JOB_DEREGISTER = "job.deregister"
    JOB_LIST = "job.list"
    NODE_LIST = "node.list"
    SHARD_LIST = "shard.list"
    SHARD_INFO = "shard.info"
    OBJECT_PUT = "object.put"
    OBJECT_GET = "object.get"
    OBJECT_CREATE = "object.create"
    OBJECT_EXTEND = "object.extend"
    OBJECT_COMMIT = "object.commit"
    OBJECT_WRITTEN = "object.written"
    OBJECT_ABORT = "object.abort"
    OBJECT_STAT = "object.stat"
    OBJECT_DELETE = "object.delete"
    DIR_MAKE = "dir.make"
    DIR_LIST = "dir.list"
    DIR_COUNT = "dir.count"
    EXTENT_WRITE = "extent.write"
    EXTENT_READ = "extent.read"


#: Controller operations that job drivers call; every other controller operation is an operator's.
DRIVER_OPERATIONS = frozenset({Ops.JOB_REGISTER, Ops.JOB_RENEW, Ops.JOB_DEREGISTER})


class WireLimits:
    """Limits every implementation and client agrees on (``WireLimits``)."""

    PATH_BYTES_MAX = 1024
    LIST_LIMIT_MAX = 10_000
    RECEIPTS_PER_CALL_MAX = 1024
    OBJECT_BYTES_MAX = 2**40


@dataclass(frozen=True)
class Reply:
    """An operation's reply, over either transport: its meta (a JSON object) and its payload bytes, if any."""

    meta: dict[str, Any]
    payload: memoryview | None


#: Largest meta a body may declare (``metaBytesMax``).
META_BYTES_MAX = 1024 * 1024
#: First byte of a meta in a binary layout (``schemas/codec.ts``).
BINARY_META_MARKER = 0x00

_U32 = struct.Struct(">I")


def encode_json(value: dict[str, Any]) -> bytes:
    """A request's meta as JSON, without the fields that are ``None`` (absent, as JSON.stringify drops undefined)."""
    return json.dumps({k: v for k, v in value.items() if v is not None}, separators=(",", ":"), ensure_ascii=False).encode()


def decode_json(data: bytes | memoryview) -> Any:
    try:
        return json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidArgumentError(f"not valid JSON: {e}") from e


def decode_reply_meta(operation: str, meta: bytes | memoryview) -> dict[str, Any]:
    """A reply's meta as this client reads it: JSON, an object."""
    if len(meta) > 0 and meta[0] == BINARY_META_MARKER:
        raise InternalError(f"a binary reply to {operation[:64]}, which this client asked for in JSON")
    value = decode_json(meta)
    if not isinstance(value, dict):
        raise InternalError(f"the reply to {operation[:64]} is not a JSON object")
    return value


def encode_body(meta: bytes, payload: bytes | bytearray | memoryview | None = None) -> bytes:
    """One buffer: ``u32 metaLength | meta | payload`` (NATS messages): the payload's one copy on its way out,
    sent on (and cut into chunks) as views of it."""
    if payload is None or len(payload) == 0:
        return _U32.pack(len(meta)) + meta
    return b"".join((_U32.pack(len(meta)), meta, payload))


def decode_body(data: bytes | bytearray | memoryview) -> tuple[memoryview, memoryview | None]:
    """Splits a body without copying: (meta, payload or None). InvalidArgument on a malformed one."""
    view = memoryview(data)
    if len(view) < 4:
        raise InvalidArgumentError(f"body of {len(view)} bytes is shorter than its header")
    (meta_length,) = _U32.unpack_from(view, 0)
    if meta_length > META_BYTES_MAX or 4 + meta_length > len(view):
        raise InvalidArgumentError(f"body declares {meta_length} bytes of meta, has {len(view) - 4}")
    meta = view[4 : 4 + meta_length]
    payload = view[4 + meta_length :] if len(view) > 4 + meta_length else None
    return meta, payload
