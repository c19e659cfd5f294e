"""The conformance cases against a real cluster, over both transports.

The cluster's coordinates come from the environment (conftest.py);
``test/integration/conformance.test.ts`` starts a cluster and runs this file
with them set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from conformance import load_cases, run_case
from pocket import PocketClient, Transport, credentials_from_env, tls_ca_from_env

CASES = load_cases()
TRANSPORTS = [Transport.AUTO, Transport.NATS]


@pytest.fixture(scope="session")
async def driver(nats_url: str) -> AsyncIterator[PocketClient]:
    client = await PocketClient.connect(nats_url, credentials=credentials_from_env(), tls_ca=tls_ca_from_env(), name="conformance-py-driver")
    yield client
    await client.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("index", range(len(CASES["cases"])), ids=[c["name"] for c in CASES["cases"]])
async def test_conformance_case(nats_url: str, driver: PocketClient, transport: str, index: int) -> None:
    async def connect_lambda(credentials: str | None) -> PocketClient:
        return await PocketClient.connect(nats_url, credentials=credentials, tls_ca=tls_ca_from_env(), transport=transport,
                                          name=f"conformance-py-{transport}")

    await run_case(CASES["cases"][index], index, driver, connect_lambda, CASES["cluster"])
