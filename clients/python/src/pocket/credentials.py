"""NATS credentials (``.creds`` text) and the environment a lambda finds them in.

A creds file holds a user JWT and the user's nkey seed. The NATS server sends
a nonce on connect; the client answers with the JWT and the nonce signed by
the seed's Ed25519 key. An nkey seed is base32 (RFC 4648, no padding) of
``0x90 | (kind >> 5), (kind & 31) << 3 | 32 seed bytes | CRC-16/XMODEM
little-endian`` (``bus/nkeys.ts``).

Example::

    creds = credentials_from_env()          # POCKET_CREDS, or the file POCKET_NATS_CREDS names
    signer = NkeySigner.from_creds(creds)
    signature = signer.sign(nonce.encode())
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import InvalidArgumentError
from .tokens import b64url_decode

_JWT = re.compile(r"-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_.=-]+)\s*-+END NATS USER JWT-+")
_SEED = re.compile(r"-----BEGIN USER NKEY SEED-----\s*([A-Z2-7]+)\s*-+END USER NKEY SEED-+")
_SEED_PREFIX = 18 << 3
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _base32_decode(text: str) -> bytes:
    out = bytearray()
    bits = 0
    value = 0
    for ch in text:
        v = _BASE32.find(ch)
        if v < 0:
            raise InvalidArgumentError("not an nkey: bad base32")
        value = ((value << 5) | v) & 0xFFFF
        bits += 5
        if bits >= 8:
            out.append((value >> (bits - 8)) & 0xFF)
            bits -= 8
    return bytes(out)


def user_jwt_of_creds(creds: str) -> str:
    m = _JWT.search(creds)
    if not m:
        raise InvalidArgumentError("not a NATS creds file: no user JWT in it")
    return m.group(1)


def seed_of_creds(creds: str) -> str:
    m = _SEED.search(creds)
    if not m:
        raise InvalidArgumentError("not a NATS creds file: no user nkey seed in it")
    return m.group(1)


def inbox_of_creds(creds: str) -> str | None:
    """The inbox prefix a credential allows (``_INBOX.<who>`` from its subscribe permissions), if it names one."""
    parts = user_jwt_of_creds(creds).split(".")
    if len(parts) != 3:
        raise InvalidArgumentError("not a NATS creds file: its JWT has no claims")
    try:
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as e:
        raise InvalidArgumentError("not a NATS creds file: its JWT's claims are not JSON") from e
    allow = ((claims.get("nats") or {}).get("sub") or {}).get("allow") if isinstance(claims, dict) else None
    if not isinstance(allow, list):
        return None
    for s in allow:
        if isinstance(s, str) and s.startswith("_INBOX.") and s.endswith(".>"):
            return s[:-2]
    return None


class NkeySigner:
    """The Ed25519 key of an nkey seed (``S...``): signs the NATS server's nonce."""

    def __init__(self, seed: str) -> None:
        raw = _base32_decode(seed.strip())
        if len(raw) != 36:
            raise InvalidArgumentError("not an nkey seed")
        body, check = raw[:34], raw[34:]
        if int.from_bytes(check, "little") != _crc16(body):
            raise InvalidArgumentError("not an nkey seed: checksum mismatch")
        if body[0] & 0xF8 != _SEED_PREFIX:
            raise InvalidArgumentError("not an nkey seed")
        self._key = Ed25519PrivateKey.from_private_bytes(body[2:])

    @classmethod
    def from_creds(cls, creds: str) -> "NkeySigner":
        return cls(seed_of_creds(creds))

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def sign_nonce(self, nonce: str) -> bytes:
        """The nonce's signature as NATS's CONNECT carries it (base64url, no padding)."""
        return base64.urlsafe_b64encode(self.sign(nonce.encode())).rstrip(b"=")


def credentials_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The credential in the environment, as the TypeScript SDK's ``credentialsFromEnv``.

    ``POCKET_CREDS`` (creds text, or its base64url, as ``pocket job register``
    prints it for lambdas), else the file named by ``POCKET_NATS_CREDS``
    (drivers and operators). None when neither is set.
    """
    env = os.environ if env is None else env
    inline = env.get("POCKET_CREDS")
    if inline:
        return inline if "-----BEGIN" in inline else b64url_decode(inline.strip()).decode("utf-8")
    path = env.get("POCKET_NATS_CREDS")
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read()
    return None


def tls_ca_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The cluster's CA certificate (PEM text) from the file named by ``POCKET_TLS_CA``; None when unset."""
    env = os.environ if env is None else env
    path = env.get("POCKET_TLS_CA")
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()
