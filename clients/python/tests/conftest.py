"""What the tests share: a real cluster's coordinates from the environment, and nats-servers of their own.

``POCKET_NATS_URL``, a driver's credential (``POCKET_NATS_CREDS`` or
``POCKET_CREDS``) and, for a TLS cluster, ``POCKET_TLS_CA``. Without them
those tests skip, unless ``POCKET_CONFORMANCE_REQUIRED=1`` (as
test/integration/conformance.test.ts sets it): then they fail.

``start_nats`` starts a real nats-server (no authentication) for one test,
stopped when the test ends.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from nats_server import NatsServer


@pytest.fixture(scope="session")
def nats_url() -> str:
    url = os.environ.get("POCKET_NATS_URL")
    if url:
        return url
    if os.environ.get("POCKET_CONFORMANCE_REQUIRED") == "1":
        pytest.fail("POCKET_CONFORMANCE_REQUIRED=1 but POCKET_NATS_URL is not set: the runner must give the cluster's coordinates")
    pytest.skip("no cluster: set POCKET_NATS_URL and a driver's POCKET_NATS_CREDS (as `npx pocket up` prints them)")


StartNats = Callable[..., Awaitable[NatsServer]]


@pytest.fixture
async def start_nats(tmp_path: Path) -> AsyncIterator[StartNats]:
    started: list[NatsServer] = []

    async def start(*, max_payload: int | None = None) -> NatsServer:
        server = await NatsServer.start(tmp_path / f"nats-{len(started)}", max_payload=max_payload)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()
