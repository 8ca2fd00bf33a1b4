"""Who may post: API keys per platform, optional HMAC-signed bodies with replay protection.

Keys are configured as SHA-256 hashes, never in plain text. Every failure is reported to the
client as a bare 401; the reason is kept for metrics and logs only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
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


def compute_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature a platform sends: HMAC-SHA256 over ``"<timestamp>." + body``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


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

    def verify_signature(
        self,
        platform: str,
        body: bytes,
        *,
        timestamp: str | None,
        signature: str | None,
        now: float | None = None,
    ) -> None:
        """Accept the body's signature once, and only while it is fresh."""
        secret = self._secrets.get(platform)
        if secret is None:
            return
        if not timestamp or not signature:
            raise AuthFailure(AuthFailureReason.MISSING_SIGNATURE)
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise AuthFailure(AuthFailureReason.BAD_SIGNATURE)
        expected = compute_signature(secret, timestamp, body)
        if not hmac.compare_digest(expected, signature.strip()):
            raise AuthFailure(AuthFailureReason.BAD_SIGNATURE)
        current = time.time() if now is None else now
        if abs(current - int(timestamp)) > self._tolerance_s:
            raise AuthFailure(AuthFailureReason.STALE_SIGNATURE)
        self._forget_expired(current)
        if expected in self._seen:
            raise AuthFailure(AuthFailureReason.REPLAYED_SIGNATURE)
        self._seen[expected] = int(timestamp) + self._tolerance_s
        while len(self._seen) > self._replay_capacity:
            self._seen.popitem(last=False)

    def _forget_expired(self, now: float) -> None:
        # Signatures arrive in roughly timestamp order, so the oldest sit at the front.
        while self._seen:
            until = next(iter(self._seen.values()))
            if until >= now:
                return
            self._seen.popitem(last=False)
