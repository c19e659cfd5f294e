"""Frames of the direct TCP transport (``bus/frame.ts``). Every frame, integers big-endian::

    u32 length      bytes after this field
    u8  kind        1 request, 2 reply, 3 error reply
    u32 requestId   chosen by the client, echoed by the server
    u8  nameLength  operation name length (0 on replies)
    ... name        ASCII operation name
    u32 metaLength
    ... meta        JSON request / reply / {code, message}
    ... payload     the rest: raw bytes, if any

Many requests may be in flight on one connection; replies come in any order.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from .errors import ErrorCode


class FrameKind:
    REQUEST = 1
    REPLY = 2
    ERROR = 3


_KINDS = frozenset({FrameKind.REQUEST, FrameKind.REPLY, FrameKind.ERROR})
FIXED_BYTES = 4 + 1 + 4 + 1 + 4
NAME_BYTES_MAX = 64
REQUEST_ID_MAX = 0xFFFF_FFFF
_HEAD = struct.Struct(">IBIB")
_U32 = struct.Struct(">I")


class FrameError(Exception):
    """A stream that cannot be framed; ``code`` is the failure it stands for."""

    def __init__(self, message: str, code: str = ErrorCode.INVALID_ARGUMENT) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Frame:
    kind: int
    request_id: int
    name: str
    meta: memoryview
    payload: memoryview | None


def encode_frame(
    kind: int, request_id: int, name: str, meta: bytes, payload: bytes | bytearray | memoryview | None = None
) -> tuple[bytes, bytes | bytearray | memoryview | None]:
    """A frame as its head (length to meta) and its payload, which is sent as is, not copied."""
    name_bytes = name.encode("latin-1")
    if len(name_bytes) > NAME_BYTES_MAX:
        raise FrameError(f"operation name of {len(name_bytes)} bytes")
    if kind not in _KINDS:
        raise ValueError(f"unknown frame kind {kind}")
    if not 0 <= request_id <= REQUEST_ID_MAX:
        raise ValueError(f"request id {request_id} out of range")
    payload_length = len(payload) if payload is not None else 0
    length = FIXED_BYTES - 4 + len(name_bytes) + len(meta) + payload_length
    head = b"".join((_HEAD.pack(length, kind, request_id, len(name_bytes)), name_bytes, _U32.pack(len(meta)), meta))
    return head, payload if payload_length > 0 else None


def parse_frame(body: bytes | bytearray | memoryview) -> Frame:
    """Parses a frame's bytes after its length field. FrameError on malformed input."""
    view = memoryview(body)
    if len(view) < FIXED_BYTES - 4:
        raise FrameError(f"frame of {len(view)} bytes is shorter than its header")
    kind = view[0]
    if kind not in _KINDS:
        raise FrameError(f"unknown frame kind {kind}")
    (request_id,) = _U32.unpack_from(view, 1)
    name_length = view[5]
    if name_length > NAME_BYTES_MAX or 10 + name_length > len(view):
        raise FrameError(f"operation name of {name_length} bytes")
    name = bytes(view[6 : 6 + name_length]).decode("latin-1")
    (meta_length,) = _U32.unpack_from(view, 6 + name_length)
    meta_start = 10 + name_length
    if meta_start + meta_length > len(view):
        raise FrameError(f"meta of {meta_length} bytes overruns the frame")
    meta = view[meta_start : meta_start + meta_length]
    payload = view[meta_start + meta_length :] if len(view) > meta_start + meta_length else None
    return Frame(kind=kind, request_id=request_id, name=name, meta=meta, payload=payload)


async def read_frame(reader: asyncio.StreamReader, frame_bytes_max: int) -> Frame:
    """Reads one frame; refuses a declared length past ``frame_bytes_max`` before reading it (TooLarge).

    Raises ``asyncio.IncompleteReadError`` when the stream ends first.
    """
    (length,) = _U32.unpack(await reader.readexactly(4))
    if length > frame_bytes_max:
        raise FrameError(f"frame of {length} bytes exceeds the limit of {frame_bytes_max}", ErrorCode.TOO_LARGE)
    if length < FIXED_BYTES - 4:
        raise FrameError(f"frame of {length} bytes is shorter than its header")
    return parse_frame(await reader.readexactly(length))
