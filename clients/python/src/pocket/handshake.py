"""The opening of every direct-transport connection (``bus/handshake.ts``): the server proves who it is first.

Round 1: the client sends ``transport.hello`` with ``{"v":1,"nonce":N}`` (N:
base64url of 32 random bytes); the server answers ``{"v":1,"id":I,"sig":S}``,
S its Ed25519 signature of ``"pocket-transport-hello\\n" + I + "\\n" + N``.
The client checks I and S against the id and key it was given for that
address by an authenticated source (the shard, the job's layouts). Only then,
round 2: ``transport.auth`` with ``{"token":T}``, answered ``{}``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import ErrorCode
from .tokens import b64url_decode, b64url_encode

HELLO = "transport.hello"
AUTH = "transport.auth"
#: Declared frame length accepted until authentication succeeds, on both ends.
HELLO_FRAME_BYTES_MAX = 4096
#: Codes a server may answer a hello with; any other answer to a hello is no proof of identity.
HELLO_REFUSALS = frozenset({ErrorCode.INVALID_ARGUMENT, ErrorCode.TOO_LARGE, ErrorCode.TIMEOUT})

_CONTEXT = "pocket-transport-hello"
_ID = re.compile(r"[\x21-\x7e]{1,128}")
_KEY = re.compile(r"[A-Za-z0-9_-]{43}")
_SIG = re.compile(r"[A-Za-z0-9_-]{86}")


def new_hello() -> dict[str, Any]:
    """A hello with a fresh nonce."""
    return {"v": 1, "nonce": b64url_encode(os.urandom(32))}


def hello_message(server_id: str, nonce: str) -> bytes:
    """The bytes a server signs."""
    return f"{_CONTEXT}\n{server_id}\n{nonce}".encode()


def _canonical_b64url(text: str) -> bytes | None:
    """Decodes base64url only in its one canonical spelling."""
    try:
        raw = b64url_decode(text)
    except ValueError:
        return None
    return raw if b64url_encode(raw) == text else None


def public_key_of(key: object) -> Ed25519PublicKey | None:
    """The Ed25519 key of a raw 32-byte public key in base64url, or None when it is not one."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        return None
    raw = _canonical_b64url(key)
    if raw is None or len(raw) != 32:
        return None
    return Ed25519PublicKey.from_public_bytes(raw)


def is_transport_key(key: object) -> bool:
    return public_key_of(key) is not None


def verify_hello(expected_id: str, expected_key: str, nonce: str, reply: object) -> str | None:
    """Checks a server's hello reply; None when it proves it is ``expected_id`` holding ``expected_key``, else why not."""
    if not isinstance(reply, dict) or set(reply) != {"v", "id", "sig"} or reply["v"] != 1 or isinstance(reply["v"], bool):
        return "malformed hello reply"
    server_id, sig = reply["id"], reply["sig"]
    if not isinstance(server_id, str) or not _ID.fullmatch(server_id) or not isinstance(sig, str) or not _SIG.fullmatch(sig):
        return "malformed hello reply"
    if server_id != expected_id:
        return f"it says it is {server_id[:128]!r}"
    key = public_key_of(expected_key)
    if key is None:
        return "the expected key is not a raw Ed25519 public key"
    raw_sig = _canonical_b64url(sig)
    if raw_sig is None:
        return "its signature is not base64url"
    try:
        key.verify(raw_sig, hello_message(server_id, nonce))
    except InvalidSignature:
        return "its signature does not verify with the expected key"
    return None
