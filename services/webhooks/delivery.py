"""One webhook delivery: the signed request (Standard Webhooks), what an answer means, and how
long to wait before trying again. Pure functions plus one thin HTTP call."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from standardwebhooks import Webhook

USER_AGENT = "complaint-triage-webhooks/1"


def signed_headers(
    signer: Webhook, *, webhook_id: str, body: bytes, now: datetime
) -> dict[str, str]:
    """The headers of one attempt: ``webhook-id`` stays the same on every attempt (receivers
    drop repeats by it); timestamp and signature are made afresh, so a retry hours later is
    not refused as a replay."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(math.floor(now.timestamp())),
        "webhook-signature": signer.sign(msg_id=webhook_id, timestamp=now, data=body),
    }


def backoff_s(attempt: int, *, initial_s: float, max_s: float, jitter: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): ``initial_s`` doubled
    each time up to ``max_s``, the second half of it drawn at random (``jitter`` in [0, 1)) so
    the retries of many events do not arrive together."""
    ceiling = min(max_s, initial_s * 2.0 ** min(attempt - 1, 62))
    return ceiling / 2 + ceiling / 2 * jitter


def retry_after_s(value: str | None, *, now: datetime) -> float | None:
    """A ``Retry-After`` header in seconds (delta or HTTP date); None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def next_wait_s(
    attempt: int,
    *,
    retry_after: float | None,
    initial_s: float,
    max_s: float,
    jitter: float,
) -> float:
    """The wait before the next attempt: the backoff, or longer when the receiver asked for it
    (``Retry-After``), never past ``max_s``."""
    wait = backoff_s(attempt, initial_s=initial_s, max_s=max_s, jitter=jitter)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return min(wait, max_s)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt came to: accepted (a 2xx), or why not."""

    ok: bool
    duration_s: float
    status: int | None = None
    error_type: str | None = None
    reason: str = ""
    retry_after_s: float | None = None


def outcome_of(status: int) -> tuple[bool, str | None]:
    """Whether an HTTP status accepts the event, and the failure kind when not. Every non-2xx is
    a failure to retry (Standard Webhooks): a receiver answering 401 while its secret is
    rotated, or 410 while it is redeployed, takes the event once it is right again; what it
    never takes ends in the dead-letter topic after the retry budget. Redirects are not
    followed (a receiver that moved gets a new URL in the subscriptions file)."""
    if 200 <= status < 300:
        return True, None
    return False, "http_status"


async def attempt(
    client: httpx.AsyncClient,
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    now: datetime,
) -> Attempt:
    """POST the body once and report the outcome; never raises for the receiver's faults.

    The answer's body is not read: a receiver cannot make the worker hold a large answer."""
    started = time.monotonic()
    try:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            status = response.status_code
            ok, error_type = outcome_of(status)
            after = retry_after_s(response.headers.get("retry-after"), now=now)
    except httpx.TimeoutException as exc:
        return Attempt(
            ok=False,
            duration_s=time.monotonic() - started,
            error_type="timeout",
            reason=f"no answer in time ({type(exc).__name__})",
        )
    except httpx.HTTPError as exc:
        # Connection refused or reset, DNS, TLS: the message names no secret, only the failure.
        return Attempt(
            ok=False,
            duration_s=time.monotonic() - started,
            error_type="connection",
            reason=f"{type(exc).__name__}: {str(exc).replace(url, '<url>')}"[:500],
        )
    return Attempt(
        ok=ok,
        duration_s=time.monotonic() - started,
        status=status,
        error_type=error_type,
        reason="" if ok else f"answered HTTP {status}",
        retry_after_s=after,
    )
