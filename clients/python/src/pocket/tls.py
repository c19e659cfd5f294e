"""TLS for both transports: a cluster that runs TLS is reached with its own CA only (``POCKET_TLS_CA``)."""

from __future__ import annotations

import ssl


def tls_context(ca_pem: str) -> ssl.SSLContext:
    """A TLS client context that trusts only the cluster's CA and checks each server's name or address."""
    return ssl.create_default_context(cadata=ca_pem)
