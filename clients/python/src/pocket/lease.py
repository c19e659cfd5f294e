"""Keeping a registered job's lease alive from its driver (``PocketClient.register_job(renew=True)``).

Every third of the lease, the lease is renewed. A renewal that fails for a
passing reason (the controller restarting: Timeout, NodeUnavailable, Busy,
Internal) is retried at most ``RENEW_ATTEMPTS_MAX`` times, with backoff; a
period whose renewal still failed is tried again next period, until the last
known expiry has passed. A job that is gone (UnknownJob, Unauthorized) stays
gone: renewal stops. A job's task is forgotten when it ends, so only jobs
still renewed count toward ``LEASES_MAX``. The last failure of each job is
kept for the driver to read (``lease_error``), for at most ``LEASE_ERRORS_MAX``
jobs (the oldest forgotten first), and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import BusyError, InternalError, NodeUnavailableError, PocketError, TimeoutError, UnauthorizedError, UnknownJobError

log = logging.getLogger("pocket")

#: Jobs one client keeps alive at once.
LEASES_MAX = 10_000
#: Jobs whose last renewal failure one client remembers (renewed or not).
LEASE_ERRORS_MAX = 10_000
#: Tries of one renewal (the first included).
RENEW_ATTEMPTS_MAX = 3
#: Wait before the first retry of a renewal; doubled for each further one.
RENEW_BACKOFF_S = 0.2
#: Shortest period between renewals.
RENEW_PERIOD_MIN_S = 0.25

_PASSING = (TimeoutError, NodeUnavailableError, BusyError, InternalError)


class LeaseKeeper:
    """One background task per job this client registered, renewing its lease."""

    def __init__(self, renew: Callable[[str], Awaitable[dict[str, Any]]], *, attempts_max: int = RENEW_ATTEMPTS_MAX,
                 backoff_s: float = RENEW_BACKOFF_S, period_min_s: float = RENEW_PERIOD_MIN_S, leases_max: int = LEASES_MAX,
                 errors_max: int = LEASE_ERRORS_MAX) -> None:
        self._renew = renew
        self._attempts_max = attempts_max
        self._backoff_s = backoff_s
        self._period_min_s = period_min_s
        self._leases_max = leases_max
        self._errors_max = errors_max
        #: The renewal task of each job still renewed; a task removes itself as it ends.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: The last renewal failure by job, oldest first.
        self._errors: dict[str, PocketError] = {}

    def keep(self, token: str, lease_ms: int, lease_expires_at_ms: int) -> bool:
        """Starts renewing; False when ``leases_max`` jobs are renewed already (the caller renews this one itself)."""
        if token in self._tasks:
            return True
        if len(self._tasks) >= self._leases_max:
            log.warning("not renewing a job's lease: %d leases are kept already", self._leases_max)
            return False
        self._errors.pop(token, None)
        self._tasks[token] = asyncio.ensure_future(self._run(token, lease_ms, lease_expires_at_ms))
        return True

    def renewing(self, token: str) -> bool:
        return token in self._tasks

    def lease_error(self, token: str) -> PocketError | None:
        """The last failure renewing this job's lease (None after a renewal that succeeded), also once renewal has stopped."""
        return self._errors.get(token)

    def stop(self, token: str) -> None:
        task = self._tasks.pop(token, None)
        self._errors.pop(token, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, token: str, lease_ms: int, expires_at_ms: int) -> None:
        """Renews until the job is gone or its lease lapsed; then the job no longer counts toward ``leases_max``."""
        try:
            await self._renew_while_alive(token, lease_ms, expires_at_ms)
        except Exception as e:  # noqa: BLE001 - kept for lease_error and logged, as every renewal failure
            self._record(token, InternalError(f"lease renewal failed: {type(e).__name__}: {e}"), "lease renewal stops")
        finally:
            if self._tasks.get(token) is asyncio.current_task():
                del self._tasks[token]

    async def _renew_while_alive(self, token: str, lease_ms: int, expires_at_ms: int) -> None:
        period = max(self._period_min_s, lease_ms / 3000)
        while True:
            await asyncio.sleep(period)
            try:
                reply = await self._renew_once(token)
            except (UnknownJobError, UnauthorizedError) as e:
                self._record(token, e, "the job is gone; lease renewal stops")
                return
            except PocketError as e:
                self._record(token, e, "lease renewal failed; tried again next period")
                if time.time() * 1000 >= expires_at_ms:
                    log.warning("the lease of a job ran out before it could be renewed; renewal stops")
                    return
                continue
            expires_at_ms = int(reply.get("leaseExpiresAtMs", expires_at_ms))
            self._errors.pop(token, None)

    async def _renew_once(self, token: str) -> dict[str, Any]:
        for attempt in range(self._attempts_max):
            try:
                return await self._renew(token)
            except _PASSING:
                if attempt + 1 >= self._attempts_max:
                    raise
                await asyncio.sleep(self._backoff_s * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _record(self, token: str, e: PocketError, what: str) -> None:
        if token in self._tasks:
            self._errors.pop(token, None)
            if len(self._errors) >= self._errors_max:
                del self._errors[next(iter(self._errors))]
            self._errors[token] = e
        log.warning("%s: %s: %s", what, type(e).__name__, e)
