"""The body both transports carry, the typed errors, and the names spelled as the TypeScript sources spell them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pocket
from pocket import ERROR_CLASSES, ErrorCode, InternalError, InvalidArgumentError, PocketError, UnauthorizedError, error_from_wire
from pocket.tokens import b64url_encode, peek_job_claims
from pocket.wire import Ops, decode_body, decode_reply_meta, encode_body, encode_json

ROOT = Path(__file__).resolve().parents[3]


def test_body_round_trip_and_layout() -> None:
    meta = encode_json({"token": "t", "path": "a/b", "createOnly": None, "crc": 5})
    assert meta == b'{"token":"t","path":"a/b","crc":5}'
    body = encode_body(meta, b"payload")
    assert body[:4] == len(meta).to_bytes(4, "big")
    m, p = decode_body(body)
    assert bytes(m) == meta and p is not None and bytes(p) == b"payload"
    m, p = decode_body(encode_body(b"{}"))
    assert bytes(m) == b"{}" and p is None


@pytest.mark.parametrize("body", [b"", b"\x00\x00\x00", (10).to_bytes(4, "big") + b"{}", (2**21).to_bytes(4, "big") + b"x" * 100])
def test_malformed_bodies_are_invalid_argument(body: bytes) -> None:
    with pytest.raises(InvalidArgumentError):
        decode_body(body)


def test_reply_meta_must_be_a_json_object() -> None:
    assert decode_reply_meta(Ops.OBJECT_GET, b'{"a":1}') == {"a": 1}
    with pytest.raises(InternalError):
        decode_reply_meta(Ops.OBJECT_GET, b"\x00\x01\x00\x00")
    with pytest.raises(InternalError):
        decode_reply_meta(Ops.OBJECT_GET, b"[1]")


def test_every_wire_code_of_schemas_errors_ts_has_its_class() -> None:
    source = (ROOT / "schemas" / "errors.ts").read_text()
    block = source[source.index("export const ErrorCode = {") : source.index("} as const;")]
    codes = set(re.findall(r'^\s*(\w+): "(\w+)",', block, re.MULTILINE))
    assert codes and all(k == v for k, v in codes)
    assert set(ERROR_CLASSES) == {v for _, v in codes}
    for code, cls in ERROR_CLASSES.items():
        e = error_from_wire(code, "why")
        assert type(e) is cls and e.code == code and isinstance(e, PocketError) and str(e) == "why"
        assert getattr(pocket, f"{code}Error") is cls


def test_unknown_wire_codes_become_internal_errors() -> None:
    e = error_from_wire("Gremlins", "boo")
    assert type(e) is InternalError and e.code == ErrorCode.INTERNAL
    assert type(error_from_wire(None, None)) is InternalError


def test_operation_names_are_those_of_schemas_operations_ts() -> None:
    declared = set(re.findall(r'name: "([a-z.]+)"', (ROOT / "schemas" / "operations.ts").read_text()))
    ours = {v for k, v in vars(Ops).items() if k.isupper()}
    assert ours <= declared, ours - declared


def test_job_claims_are_read_from_the_token_without_its_key() -> None:
    body = b64url_encode(b'{"k":"job","j":"j-1","s":"s0","e":1700000000000}')
    claims = peek_job_claims(f"{body}.c2ln")
    assert (claims.job_id, claims.shard_id, claims.expires_at_ms) == ("j-1", "s0", 1700000000000)
    for bad in ["", "garbage", f"{b64url_encode(b'{}')}.x", f"{b64url_encode(b'[1]')}.x"]:
        with pytest.raises(UnauthorizedError):
            peek_job_claims(bad)
