"""Connecting: a refused credential and an unreachable server are typed errors, at once."""

from __future__ import annotations

import socket
import time

import pytest

from pocket import NodeUnavailableError, PocketClient, UnauthorizedError, tls_ca_from_env


async def test_a_cluster_with_authentication_refuses_a_client_without_a_credential(nats_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(UnauthorizedError):
        await PocketClient.connect(nats_url, credentials=None, tls_ca=tls_ca_from_env())
    assert time.monotonic() - started < 5


async def test_no_server_at_the_address_is_node_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    started = time.monotonic()
    with pytest.raises(NodeUnavailableError):
        await PocketClient.connect(f"nats://127.0.0.1:{port}")
    assert time.monotonic() - started < 5
