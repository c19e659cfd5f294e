"""Reading a job capability token's claims without checking them (``peekJobClaims`` in ``bus/tokens.ts``).

A token is ``base64url(claims) "." base64url(HMAC)``; the claims name the job
and the shard that holds its namespace. Only the cluster can check the MAC:
a client reads the claims to know where to send requests.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from .errors import UnauthorizedError


@dataclass(frozen=True)
class JobClaims:
    job_id: str
    shard_id: str
    expires_at_ms: int


def b64url_decode(text: str) -> bytes:
    """base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def peek_job_claims(token: str) -> JobClaims:
    """The job, shard and expiry a token names; UnauthorizedError when it is not a job token."""
    body = token.split(".", 1)[0] if isinstance(token, str) else ""
    try:
        claims = json.loads(b64url_decode(body).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UnauthorizedError("not a job token") from e
    if (
        isinstance(claims, dict)
        and claims.get("k") == "job"
        and isinstance(claims.get("j"), str)
        and isinstance(claims.get("s"), str)
        and isinstance(claims.get("e"), (int, float))
        and not isinstance(claims.get("e"), bool)
    ):
        return JobClaims(job_id=claims["j"], shard_id=claims["s"], expires_at_ms=int(claims["e"]))
    raise UnauthorizedError("not a job token")
