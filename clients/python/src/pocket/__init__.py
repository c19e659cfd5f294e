"""Pocket on NATS: the Python SDK.

Example::

    import asyncio, os
    from pocket import PocketClient, credentials_from_env, tls_ca_from_env

    async def main() -> None:
        async with await PocketClient.connect(os.environ["POCKET_NATS_URL"], credentials=credentials_from_env(),
                                              tls_ca=tls_ca_from_env()) as pocket:
            job = pocket.job(os.environ["POCKET_TOKEN"])
            await job.put("shuffle/part-0", b"bytes")
            print(await job.get("shuffle/part-0"))

    asyncio.run(main())
"""

from .checksum import crc32, crc32_combine
from .client import JobHints, PocketClient, Transport
from .credentials import credentials_from_env, tls_ca_from_env
from .errors import (
    ERROR_CLASSES,
    AlreadyExistsError,
    BusyError,
    CapacityExceededError,
    ErrorCode,
    IntegrityError,
    InternalError,
    InvalidArgumentError,
    NodeUnavailableError,
    NotEmptyError,
    NotFoundError,
    PocketError,
    TimeoutError,
    TooLargeError,
    UnauthorizedError,
    UnknownJobError,
    error_from_wire,
)
from .job import PocketJob
from .layout import Count, Deleted, ListEntry, ListPage, PutResult, RegisteredJob, Stat
from .tcp import ConnectFailedError, ConnectionLostError, PeerIdentityError

__all__ = [
    "ERROR_CLASSES", "AlreadyExistsError", "BusyError", "CapacityExceededError", "ConnectFailedError", "ConnectionLostError", "Count",
    "Deleted", "ErrorCode", "IntegrityError", "InternalError", "InvalidArgumentError", "JobHints", "ListEntry", "ListPage",
    "NodeUnavailableError", "NotEmptyError", "NotFoundError", "PeerIdentityError", "PocketClient", "PocketError", "PocketJob",
    "PutResult", "RegisteredJob", "Stat", "TimeoutError", "TooLargeError", "Transport", "UnauthorizedError", "UnknownJobError",
    "crc32", "crc32_combine", "credentials_from_env", "error_from_wire", "tls_ca_from_env",
]
