"""The Python runner of the language-neutral conformance cases (``test/conformance/cases.json``).

The TypeScript SDK runs the same cases (``test/conformance/runner.ts``). Each
case registers fresh jobs with a driver's credential, gives each job a lambda
client of its own on the transport under test, runs its steps and compares
every result, or typed error, with what the case expects.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pocket import ERROR_CLASSES, PocketClient, PocketError, PocketJob

CASES_FILE = Path(os.environ.get("POCKET_CONFORMANCE_CASES") or Path(__file__).resolve().parents[3] / "test" / "conformance" / "cases.json")


def load_cases() -> dict[str, Any]:
    with open(CASES_FILE, encoding="utf-8") as f:
        return json.load(f)


@lru_cache(maxsize=64)
def pattern_bytes(size: int, seed: int) -> bytes:
    """``patternBytes`` of test/harness/cluster.ts: xorshift32 words, little-endian, then a tail of ``(seed + i) & 0xff``."""
    n = size // 4
    words = [0] * n
    x = (seed & 0xFFFF_FFFF) or 1
    for i in range(n):
        x ^= (x << 13) & 0xFFFF_FFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFF_FFFF
        words[i] = x
    tail = bytes(((seed + i) & 0xFF) for i in range(n * 4, size))
    return struct.pack(f"<{n}I", *words) + tail


def data_of(spec: dict[str, Any]) -> bytes:
    whole = spec["text"].encode("utf-8") if "text" in spec else pattern_bytes(spec["size"], spec["seed"])
    if "slice" in spec:
        start, end = spec["slice"]
        return whole[start:end]
    return whole


def forge_token(token: str, job_id: str) -> str:
    """A token whose job id claim names another job, signature unchanged."""
    body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["j"] = job_id
    forged = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{forged}.{sig}"


@dataclass
class CaseJob:
    token: str
    job_id: str
    lambda_client: PocketClient
    registered: bool = True


class Mismatch(AssertionError):
    pass


ConnectLambda = Callable[[str | None], Awaitable[PocketClient]]


async def run_case(case: dict[str, Any], index: int, driver: PocketClient, connect_lambda: ConnectLambda, cluster: dict[str, int]) -> None:
    """Runs one case; raises Mismatch naming the step and what differed."""
    jobs: dict[str, CaseJob] = {}
    try:
        for name in case.get("jobs", ["main"]):
            reg = await driver.register_job(f"conformance-py-{index}-{name}", renew=False)
            lam = await connect_lambda(reg.credentials)
            jobs[name] = CaseJob(token=reg.token, job_id=reg.job_id, lambda_client=lam)
            limits = await lam.job(reg.token).limits()
            if (limits.inline_bytes_max, limits.extent_bytes_max) != (cluster["inlineBytesMax"], cluster["extentBytesMax"]):
                raise Mismatch(f"the cases are written for {cluster}; the shard has inline {limits.inline_bytes_max}, extents {limits.extent_bytes_max}")
        for i, step in enumerate(case["steps"]):
            try:
                outcome: tuple[str, Any] = ("value", await run_step(step, jobs, driver))
            except PocketError as e:
                outcome = ("error", e)
            why = mismatch(step, outcome)
            if why is not None:
                raise Mismatch(f'case "{case["name"]}", step {i} ({step["op"]} {step.get("path", "")!r}): {why}')
    finally:
        for j in jobs.values():
            if j.registered:
                await driver.deregister_job(j.token)
            await j.lambda_client.close()


def handle_for(step: dict[str, Any], jobs: dict[str, CaseJob]) -> tuple[PocketJob, CaseJob]:
    owner = jobs[step.get("job", "main")]
    if step.get("token") != "forged":
        return owner.lambda_client.job(owner.token), owner
    victim = jobs[step["forgedFor"]]
    return owner.lambda_client.job(forge_token(owner.token, victim.job_id)), owner


async def pieces(data: bytes, piece_bytes: int) -> AsyncIterator[bytes]:
    for at in range(0, len(data), piece_bytes):
        yield data[at : at + piece_bytes]


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([part async for part in stream])


async def run_step(step: dict[str, Any], jobs: dict[str, CaseJob], driver: PocketClient) -> Any:
    job, owner = handle_for(step, jobs)
    op, path, rng = step["op"], step.get("path", ""), step.get("range", {})
    if op == "put":
        return await job.put(path, data_of(step["data"]), create_only=step.get("createOnly", False))
    if op == "get":
        return await job.get(path, offset=rng.get("offset"), length=rng.get("length"))
    if op == "putStream":
        source = pieces(data_of(step["data"]), step["pieceBytes"])
        return await job.put_stream(path, source, size=step.get("declareSize"), create_only=step.get("createOnly", False))
    if op == "getStream":
        return await collect(job.get_stream(path, offset=rng.get("offset"), length=rng.get("length")))
    if op == "stat":
        return await job.stat(path)
    if op == "list":
        return await job.list(path, after=step.get("after"), limit=step.get("limit"))
    if op == "count":
        return await job.count(path, recursive=step.get("recursive", False))
    if op == "delete":
        return await job.delete(path, recursive=step.get("recursive", False))
    if op == "mkdir":
        await job.mkdir(path)
        return {}
    if op == "exists":
        return {"value": await job.exists(path)}
    if op == "deregister":
        owner.registered = False
        await driver.deregister_job(owner.token)
        return {}
    raise Mismatch(f"unknown op {op}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def as_wire(value: Any) -> Any:
    """A result as the cases spell it (the SDK's dataclasses with camelCase field names)."""
    if hasattr(value, "__dataclass_fields__"):
        return {_camel(k): as_wire(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, list):
        return [as_wire(v) for v in value]
    return value


def mismatch(step: dict[str, Any], outcome: tuple[str, Any]) -> str | None:
    """Why the outcome is not what the step expects, or None when it is."""
    wanted = step["expect"].get("error")
    kind, value = outcome
    if kind == "error":
        if wanted is not None and isinstance(value, ERROR_CLASSES[wanted]) and value.code == wanted:
            return None
        return f"expected {'a ' + wanted + ' error' if wanted else 'success'}, got {type(value).__name__} ({value.code}): {value}"
    if wanted is not None:
        return f"expected a {wanted} error, got {describe(value)}"
    return compare(step, value)


def describe(value: Any) -> str:
    return f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else json.dumps(as_wire(value))


def compare(step: dict[str, Any], value: Any) -> str | None:
    expect = step["expect"]
    if step["op"] in ("get", "getStream"):
        want = data_of(expect["data"])
        if value == want:
            return None
        first = next((i for i, (a, b) in enumerate(zip(value, want)) if a != b), None)
        return f"got {len(value)} bytes, expected {len(want)}" + (f"; first difference at byte {first}" if first is not None else "")
    got = as_wire(value)
    if step["op"] == "list":
        entries = expect["entries"]
        fits = len(got["entries"]) == len(entries) and all(
            all(got["entries"][i].get(k) == v for k, v in w.items()) for i, w in enumerate(entries)
        )
        if not fits or got["more"] != expect["more"]:
            return f"listed {json.dumps(got)}, expected {json.dumps({'entries': entries, 'more': expect['more']})}"
        return None
    for k, v in expect.items():
        if got.get(k) != v or isinstance(got.get(k), bool) != isinstance(v, bool):
            return f"{k}: got {got.get(k)!r}, expected {v!r} (result {json.dumps(got)})"
    return None
