"""What the tests against a real cluster share: its coordinates from the environment.

``POCKET_NATS_URL``, a driver's credential (``POCKET_NATS_CREDS`` or
``POCKET_CREDS``) and, for a TLS cluster, ``POCKET_TLS_CA``. Without them
those tests skip, unless ``POCKET_CONFORMANCE_REQUIRED=1`` (as
test/integration/conformance.test.ts sets it): then they fail.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def nats_url() -> str:
    url = os.environ.get("POCKET_NATS_URL")
    if url:
        return url
    if os.environ.get("POCKET_CONFORMANCE_REQUIRED") == "1":
        pytest.fail("POCKET_CONFORMANCE_REQUIRED=1 but POCKET_NATS_URL is not set: the runner must give the cluster's coordinates")
    pytest.skip("no cluster: set POCKET_NATS_URL and a driver's POCKET_NATS_CREDS (as `npx pocket up` prints them)")
