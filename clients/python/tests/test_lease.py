"""Lease renewal: the policy (bounded retries, stop when the job is gone or its lease ran out) and, against a
real cluster, a driver's renewals keeping an idle job alive while a job left alone lapses."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pocket import InternalError, NodeUnavailableError, PocketClient, PocketError, TimeoutError, UnknownJobError, credentials_from_env, tls_ca_from_env
from pocket.lease import RENEW_ATTEMPTS_MAX, LeaseKeeper


class Controller:
    """Answers renewals from a script of outcomes (errors or replies), recording when each came."""

    def __init__(self, script: list[Exception | None]) -> None:
        self.script = script
        self.calls: list[float] = []

    async def renew(self, token: str) -> dict[str, Any]:
        self.calls.append(time.monotonic())
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return {"jobId": "j", "leaseExpiresAtMs": int(time.time() * 1000) + 60_000}


async def _until(probe: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_passing_failures_are_retried_a_bounded_number_of_times_then_next_period() -> None:
    failures: list[Exception | None] = [TimeoutError("t")] * RENEW_ATTEMPTS_MAX + [NodeUnavailableError("n")]
    controller = Controller(failures)
    keeper = LeaseKeeper(controller.renew, backoff_s=0.01, period_min_s=0.05)
    keeper.keep("tok", 60, int(time.time() * 1000) + 60_000)
    try:
        await _until(lambda: len(controller.calls) >= RENEW_ATTEMPTS_MAX + 2)
        assert keeper.renewing("tok")
        first_period = controller.calls[:RENEW_ATTEMPTS_MAX]
        # The retries of one period come within its backoff; the next attempt waits for the next period.
        assert controller.calls[RENEW_ATTEMPTS_MAX] - first_period[-1] >= 0.05 - 0.01
        await _until(lambda: keeper.lease_error("tok") is None and not controller.script)
    finally:
        await keeper.close()


async def test_a_job_that_is_gone_stops_renewing() -> None:
    controller = Controller([UnknownJobError("job j is not registered")])
    keeper = LeaseKeeper(controller.renew, backoff_s=0.01, period_min_s=0.05)
    keeper.keep("tok", 60, int(time.time() * 1000) + 60_000)
    await _until(lambda: not keeper.renewing("tok"))
    assert isinstance(keeper.lease_error("tok"), UnknownJobError)
    assert len(controller.calls) == 1
    await keeper.close()


async def test_renewal_stops_once_the_lease_has_run_out() -> None:
    controller = Controller([NodeUnavailableError("n")] * 100)
    keeper = LeaseKeeper(controller.renew, backoff_s=0.01, period_min_s=0.05)
    keeper.keep("tok", 60, int(time.time() * 1000) + 100)
    await _until(lambda: not keeper.renewing("tok"))
    assert isinstance(keeper.lease_error("tok"), NodeUnavailableError)
    assert len(controller.calls) <= 2 * RENEW_ATTEMPTS_MAX
    await keeper.close()


async def test_jobs_whose_renewal_ended_leave_room_for_new_ones_and_keep_their_last_error() -> None:
    controller = Controller([UnknownJobError("gone")] * 3)
    keeper = LeaseKeeper(controller.renew, backoff_s=0.01, period_min_s=0.02, leases_max=2, errors_max=2)
    try:
        for token in ("a", "b"):
            assert keeper.keep(token, 60, int(time.time() * 1000) + 60_000)
        await _until(lambda: not keeper.renewing("a") and not keeper.renewing("b"))
        # Both renewals ended: the bound counts only jobs still renewed.
        assert keeper.keep("c", 60, int(time.time() * 1000) + 60_000)
        assert keeper.keep("d", 60, int(time.time() * 1000) + 60_000)
        assert not keeper.keep("e", 60, int(time.time() * 1000) + 60_000)
        assert keeper.renewing("c") and keeper.renewing("d") and not keeper.renewing("e")
        await _until(lambda: keeper.lease_error("c") is not None)
        # The last failure of at most errors_max jobs is kept, the oldest forgotten first.
        assert keeper.lease_error("a") is None
        assert isinstance(keeper.lease_error("b"), UnknownJobError) and isinstance(keeper.lease_error("c"), UnknownJobError)
    finally:
        await keeper.close()


async def test_a_renewal_that_fails_unexpectedly_ends_with_an_internal_error_and_frees_its_place() -> None:
    async def malformed(token: str) -> dict[str, Any]:
        return {"jobId": "j", "leaseExpiresAtMs": "not a number"}

    keeper = LeaseKeeper(malformed, backoff_s=0.01, period_min_s=0.02, leases_max=1)
    keeper.keep("tok", 60, int(time.time() * 1000) + 60_000)
    await _until(lambda: not keeper.renewing("tok"))
    assert isinstance(keeper.lease_error("tok"), InternalError)
    assert keeper.keep("other", 60, int(time.time() * 1000) + 60_000)
    await keeper.close()


async def test_a_driver_keeps_its_idle_job_alive_and_an_unrenewed_one_lapses(nats_url: str) -> None:
    url = nats_url
    async with await PocketClient.connect(url, credentials=credentials_from_env(), tls_ca=tls_ca_from_env()) as driver:
        kept = await driver.register_job("lease-kept", lease_ms=1000)
        lapsed = await driver.register_job("lease-lapsed", lease_ms=1000, renew=False)
        # Nothing but the renewals may touch the jobs while their leases run: any request to a job renews it too.
        await asyncio.sleep(3.5)
        assert driver.renewing(kept.token) and driver.lease_error(kept.token) is None
        outcomes: dict[str, str] = {}
        for name, reg in (("kept", kept), ("lapsed", lapsed)):
            async with await PocketClient.connect(url, credentials=reg.credentials, tls_ca=tls_ca_from_env()) as lam:
                try:
                    await lam.job(reg.token).put("x", b"1")
                    outcomes[name] = "alive"
                except PocketError as e:
                    outcomes[name] = e.code
        assert outcomes == {"kept": "alive", "lapsed": "UnknownJob"}
        await driver.deregister_job(kept.token)
