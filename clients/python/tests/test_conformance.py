"""The conformance cases against a real cluster, over both transports.

The cluster's coordinates come from the environment: ``POCKET_NATS_URL``, a
driver's credential (``POCKET_NATS_CREDS`` or ``POCKET_CREDS``) and, for a
TLS cluster, ``POCKET_TLS_CA``. ``test/integration/conformance.test.ts``
starts a cluster and runs this file with them set and
``POCKET_CONFORMANCE_REQUIRED=1``: then a missing coordinate fails instead
of skipping.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from conformance import load_cases, run_case
from pocket import PocketClient, Transport, credentials_from_env, tls_ca_from_env

CASES = load_cases()
TRANSPORTS = [Transport.AUTO, Transport.NATS]


def _coordinates() -> str:
    url = os.environ.get("POCKET_NATS_URL")
    if url:
        return url
    if os.environ.get("POCKET_CONFORMANCE_REQUIRED") == "1":
        pytest.fail("POCKET_CONFORMANCE_REQUIRED=1 but POCKET_NATS_URL is not set: the runner must give the cluster's coordinates")
    pytest.skip("no cluster: set POCKET_NATS_URL and a driver's POCKET_NATS_CREDS to run the conformance cases")


@pytest.fixture(scope="session")
async def driver() -> AsyncIterator[PocketClient]:
    url = _coordinates()
    client = await PocketClient.connect(url, credentials=credentials_from_env(), tls_ca=tls_ca_from_env(), name="conformance-py-driver")
    yield client
    await client.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("index", range(len(CASES["cases"])), ids=[c["name"] for c in CASES["cases"]])
async def test_conformance_case(driver: PocketClient, transport: str, index: int) -> None:
    url = _coordinates()

    async def connect_lambda(credentials: str | None) -> PocketClient:
        return await PocketClient.connect(url, credentials=credentials, tls_ca=tls_ca_from_env(), transport=transport,
                                          name=f"conformance-py-{transport}")

    await run_case(CASES["cases"][index], index, driver, connect_lambda, CASES["cluster"])
