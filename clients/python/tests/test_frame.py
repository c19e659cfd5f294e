"""Frames of the direct transport, byte for byte as bus/frame.ts and bus/handshake.ts lay them out."""

from __future__ import annotations

import asyncio

import pytest

from pocket.errors import ErrorCode
from pocket.frame import FrameError, FrameKind, encode_frame, parse_frame, read_frame
from pocket.handshake import HELLO
from pocket.wire import encode_json


def _reader(data: bytes, piece: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for at in range(0, len(data), piece):
        reader.feed_data(data[at : at + piece])
    reader.feed_eof()
    return reader


def test_the_hello_is_laid_out_as_handshake_ts_documents() -> None:
    nonce = "A" * 43
    head, payload = encode_frame(FrameKind.REQUEST, 1, HELLO, encode_json({"v": 1, "nonce": nonce}))
    assert payload is None
    assert len(head) == 90
    assert head[:10] == bytes.fromhex("00000056" "01" "00000001" "0f")
    assert head[10:25] == b"transport.hello"
    assert head[25:29] == bytes.fromhex("0000003d")
    assert head[29:] == b'{"v":1,"nonce":"' + nonce.encode() + b'"}'


@pytest.mark.parametrize("piece", [1, 3, 7, 4096])
async def test_frames_read_back_across_any_chunking(piece: int) -> None:
    frames = [
        encode_frame(FrameKind.REPLY, 7, "", b'{"length":5}', b"hello"),
        encode_frame(FrameKind.ERROR, 0, "", b'{"code":"Busy","message":"m"}'),
        encode_frame(FrameKind.REQUEST, 0xFFFFFFFF, "extent.read", b"{}", bytes(range(256)) * 40),
    ]
    wire = b"".join(h + (bytes(p) if p is not None else b"") for h, p in frames)
    reader = _reader(wire, piece)
    got = [await read_frame(reader, 1 << 20) for _ in frames]
    assert [(f.kind, f.request_id, f.name) for f in got] == [(2, 7, ""), (3, 0, ""), (1, 0xFFFFFFFF, "extent.read")]
    assert bytes(got[0].meta) == b'{"length":5}' and bytes(got[0].payload or b"") == b"hello"
    assert got[1].payload is None
    assert bytes(got[2].payload or b"") == bytes(range(256)) * 40
    with pytest.raises(asyncio.IncompleteReadError):
        await read_frame(reader, 1 << 20)


async def test_a_declared_length_past_the_limit_is_refused_before_it_is_read() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data((5000).to_bytes(4, "big"))  # and nothing more: the check must not wait for the body
    with pytest.raises(FrameError) as e:
        await asyncio.wait_for(read_frame(reader, 4096), 1)
    assert e.value.code == ErrorCode.TOO_LARGE


@pytest.mark.parametrize(
    "body",
    [
        b"\x01\x00\x00\x00\x01\x00\x00\x00",  # shorter than the header
        b"\x09\x00\x00\x00\x01\x00\x00\x00\x00\x00",  # unknown kind
        b"\x01\x00\x00\x00\x01\x41" + b"x" * 65 + b"\x00\x00\x00\x00",  # name of 65 bytes
        b"\x02\x00\x00\x00\x01\x00\x00\x00\x00\x09{}",  # meta overruns the frame
    ],
)
def test_malformed_frames_are_frame_errors(body: bytes) -> None:
    with pytest.raises(FrameError):
        parse_frame(body)


def test_names_longer_than_64_bytes_are_not_encoded() -> None:
    with pytest.raises(FrameError):
        encode_frame(FrameKind.REQUEST, 1, "x" * 65, b"{}")
