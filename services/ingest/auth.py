"""Who may post: API keys per platform, optional HMAC-signed requests with replay protection.

Keys are configured as SHA-256 hashes, never in plain text. Every failure is reported to the
client as a bare 401; the reason is kept for metrics and logs only.

A signed request is checked in two steps, so that nobody makes the service read a body before
they are known: :meth:`Authenticator.check_signature_headers` needs only the headers (present,
well formed, fresh); :meth:`Authenticator.verify_signature` then needs the body.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from services.ingest.settings import DEV_API_KEY, DEV_PLATFORM, IngestSettings

TIMESTAMP_HEADER = "X-Triage-Timestamp"
SIGNATURE_HEADER = "X-Triage-Signature"
_KEY_PREFIX = "tk_"


class AuthFailureReason(StrEnum):
    """Why a request was refused (a bounded set, used as a metric label)."""

    MISSING = "missing_credentials"
    INVALID_KEY = "invalid_key"
    MISSING_SIGNATURE = "missing_signature"
    BAD_SIGNATURE = "bad_signature"
    STALE_SIGNATURE = "stale_signature"
    REPLAYED_SIGNATURE = "replayed_signature"


@dataclass(frozen=True, slots=True)
class SignatureUse:
    """A verified signature, and until when it must be remembered to refuse its replay."""

    digest: str
    until: float


class AuthFailure(Exception):
    """The caller is not authenticated; ``reason`` is never shown to the client."""

    def __init__(self, reason: AuthFailureReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


def hash_key(key: str) -> str:
    """The configured form of an API key."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new random API key."""
    return _KEY_PREFIX + secrets.token_urlsafe(32)


def signed_message(
    timestamp: str,
    body: bytes,
    *,
    query: str = "",
    idempotency_key: str | None = None,
    cloudevent_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """What a platform signs.

    ``"<timestamp>." + body`` when the request has no query string, no ``Idempotency-Key`` and
    no CloudEvents ``ce-*`` header; ``"<timestamp>;" + query + "\n" + idempotency key + "\n" +
    body`` when it has no ``ce-*`` header, where ``query`` is the query string exactly as sent
    (without ``?``) and the key is empty when absent; with ``ce-*`` headers (a binary-mode
    CloudEvent), ``"<timestamp>:" + query + "\n" + idempotency key + "\n"``, then one
    ``name:value`` line per ``ce-*`` header (names in lower case, sorted; values as sent), an
    empty line, and the body. The byte after the timestamp tells the forms apart, so a body can
    never pass for parameters; neither a query string nor a header can hold a newline.
    """
    if cloudevent_headers:
        lines = "".join(f"{name}:{value}\n" for name, value in sorted(cloudevent_headers))
        extras = f"{query}\n{idempotency_key or ''}\n{lines}\n".encode()
        return timestamp.encode() + b":" + extras + body
    if not query and idempotency_key is None:
        return timestamp.encode() + b"." + body
    extras = f"{query}\n{idempotency_key or ''}\n".encode()
    return timestamp.encode() + b";" + extras + body


def compute_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    *,
    query: str = "",
    idempotency_key: str | None = None,
    cloudevent_headers: Sequence[tuple[str, str]] = (),
) -> str:
    """The ``X-Triage-Signature`` a platform sends: ``"sha256=" +`` hex HMAC-SHA256 of
    :func:`signed_message`."""
    message = signed_message(
        timestamp,
        body,
        query=query,
        idempotency_key=idempotency_key,
        cloudevent_headers=cloudevent_headers,
    )
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header."""
    if not authorization:
        raise AuthFailure(AuthFailureReason.MISSING)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthFailure(AuthFailureReason.MISSING)
    return token


class Authenticator:
    """Checks keys and signatures against the settings; remembers signatures already used."""

    def __init__(self, settings: IngestSettings, *, replay_capacity: int = 100_000) -> None:
        self._keys: dict[str, str] = dict(settings.api_keys)
        if settings.development_key_enabled:
            self._keys[DEV_PLATFORM] = hash_key(DEV_API_KEY)
        self._secrets = {name: s.get_secret_value() for name, s in settings.hmac_secrets.items()}
        self._tolerance_s = settings.signature_tolerance_s
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._replay_capacity = replay_capacity

    def platform_for(self, authorization: str | None) -> str:
        """The platform whose key the request carries."""
        presented = hash_key(bearer_token(authorization))
        found: str | None = None
        for platform, digest in self._keys.items():
            if hmac.compare_digest(presented, digest):
                found = platform
        if found is None:
            raise AuthFailure(AuthFailureReason.INVALID_KEY)
        return found

    def requires_signature(self, platform: str) -> bool:
        """True when the platform has a signing secret configured."""
        return platform in self._secrets

    def check_signature_headers(
        self,
        platform: str,
        *,
        timestamp: str | None,
        signature: str | None,
        now: float | None = None,
    ) -> None:
        """What can be checked of a signed request before its body is read: the signature and
        a well-formed, fresh timestamp are there. Nothing for a platform without a secret."""
        if platform not in self._secrets:
            return
        if not timestamp or not signature:
            raise AuthFailure(AuthFailureReason.MISSING_SIGNATURE)
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise AuthFailure(AuthFailureReason.BAD_SIGNATURE)
        current = time.time() if now is None else now
        if abs(current - int(timestamp)) > self._tolerance_s:
            raise AuthFailure(AuthFailureReason.STALE_SIGNATURE)

    def verify_signature(
        self,
        platform: str,
        body: bytes,
        *,
        timestamp: str | None,
        signature: str | None,
        query: str = "",
        idempotency_key: str | None = None,
        cloudevent_headers: Sequence[tuple[str, str]] = (),
        now: float | None = None,
        remember: bool = True,
    ) -> SignatureUse | None:
        """Accept the request's signature once, and only while it is fresh.

        The signature covers the body, the query string, the ``Idempotency-Key`` and any
        CloudEvents ``ce-*`` header (see :func:`signed_message`). With ``remember=False`` it is
        checked but not yet used up: the caller passes the returned :class:`SignatureUse` to
        :meth:`use` once it accepts the request (a request refused for another reason, such as an
        outage, may then be retried as it was).
        """
        secret = self._secrets.get(platform)
        if secret is None:
            return None
        if not timestamp or not signature:
            raise AuthFailure(AuthFailureReason.MISSING_SIGNATURE)
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise AuthFailure(AuthFailureReason.BAD_SIGNATURE)
        expected = compute_signature(
            secret,
            timestamp,
            body,
            query=query,
            idempotency_key=idempotency_key,
            cloudevent_headers=cloudevent_headers,
        )
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            raise AuthFailure(AuthFailureReason.BAD_SIGNATURE)
        current = time.time() if now is None else now
        if abs(current - int(timestamp)) > self._tolerance_s:
            raise AuthFailure(AuthFailureReason.STALE_SIGNATURE)
        self._forget_expired(current)
        if expected in self._seen:
            raise AuthFailure(AuthFailureReason.REPLAYED_SIGNATURE)
        signature_use = SignatureUse(expected, int(timestamp) + self._tolerance_s)
        if remember:
            self.use(signature_use)
        return signature_use

    def use(self, signature: SignatureUse) -> None:
        """Remember a verified signature, so it is never accepted again."""
        self._seen[signature.digest] = signature.until
        while len(self._seen) > self._replay_capacity:
            self._seen.popitem(last=False)

    def release(self, signature: SignatureUse) -> None:
        """Forget a signature whose request was not accepted (the broker was down), so its
        sender may send the same request again; the event id still makes it count once."""
        self._seen.pop(signature.digest, None)

    def _forget_expired(self, now: float) -> None:
        # Signatures arrive in roughly timestamp order, so the oldest sit at the front.
        while self._seen:
            until = next(iter(self._seen.values()))
            if until >= now:
                return
            self._seen.popitem(last=False)
