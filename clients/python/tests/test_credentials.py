"""NATS credentials: the nkey seed signs as the TypeScript implementation does; the inbox and the environment."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pocket import credentials_from_env, tls_ca_from_env
from pocket.credentials import NkeySigner, inbox_of_creds, seed_of_creds, user_jwt_of_creds
from pocket.errors import InvalidArgumentError
from pocket.tokens import b64url_encode

# A throwaway user key made by bus/nkeys.ts (newNkey("user")), and its signature of the nonce below:
# Ed25519 is deterministic, so the same seed must sign the same bytes the same way here.
SEED = "SUABLTY25EBWPHDVBTMOPSJN46EWUN6CDE5TLDNUBPLDZ4SD3EJUQX4Y4U"
NONCE = "a-nonce-from-the-server"
SIGNATURE = "py_tdZoHc6bLN4bHymDMXHgLX_O2AZMcoiXSkspRIhUNtOJxGLNVbi9wbbbleYHK9EJZkmUc374JL2iMCxUODQ"


def _creds(claims: dict[str, object]) -> str:
    header = b64url_encode(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    jwt = f"{header}.{b64url_encode(json.dumps(claims).encode())}.c2ln"
    return "\n".join([
        "-----BEGIN NATS USER JWT-----", jwt, "------END NATS USER JWT------", "",
        "-----BEGIN USER NKEY SEED-----", SEED, "------END USER NKEY SEED------", "",
    ])


def test_the_seed_signs_the_nonce_as_nkeys_ts_does() -> None:
    assert NkeySigner(SEED).sign_nonce(NONCE).decode() == SIGNATURE


@pytest.mark.parametrize("seed", ["", "SUABLTY", SEED[:-1] + ("A" if SEED[-1] != "A" else "B"), SEED.lower()])
def test_a_damaged_seed_is_refused(seed: str) -> None:
    with pytest.raises(InvalidArgumentError):
        NkeySigner(seed)


def test_creds_text_gives_its_jwt_seed_and_inbox() -> None:
    creds = _creds({"nats": {"sub": {"allow": ["_INBOX.job.j-1.>"]}, "pub": {"allow": ["pocket.shard.s0.job.j-1.>"]}}})
    assert user_jwt_of_creds(creds).endswith(".c2ln")
    assert seed_of_creds(creds) == SEED
    assert inbox_of_creds(creds) == "_INBOX.job.j-1"
    assert inbox_of_creds(_creds({"nats": {"sub": {}}})) is None
    with pytest.raises(InvalidArgumentError):
        user_jwt_of_creds("not creds")


def test_credentials_and_ca_from_the_environment(tmp_path: Path) -> None:
    creds = _creds({"nats": {}})
    encoded = base64.urlsafe_b64encode(creds.encode()).rstrip(b"=").decode()
    assert credentials_from_env({"POCKET_CREDS": creds}) == creds
    assert credentials_from_env({"POCKET_CREDS": encoded}) == creds
    file = tmp_path / "driver.creds"
    file.write_text(creds)
    assert credentials_from_env({"POCKET_NATS_CREDS": str(file)}) == creds
    assert credentials_from_env({"POCKET_CREDS": "", "POCKET_NATS_CREDS": ""}) is None
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert tls_ca_from_env({"POCKET_TLS_CA": str(ca)}) == "-----BEGIN CERTIFICATE-----\n"
    assert tls_ca_from_env({}) is None
