"""The subscriptions file: who receives which case events, and the secret each one is signed with.

```yaml
subscriptions:
  - id: helpdesk                    # optional; names the subscription's position and metrics
    url: https://helpdesk.example/hooks/triage
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw    # or secret_env: HELPDESK_WEBHOOK_SECRET
    events: ["*"]                   # '*' or case event types: created, assigned, resolved ...
    platforms: [helpdesk]           # optional: only cases a listed platform posted
```

Errors name the subscription and field at fault and never repeat a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from services.common.cases import CaseEvent, CaseEventType
from services.common.errors import ConfigurationError

ALL_EVENTS = "*"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
#: Standard Webhooks: symmetric secrets of 24 to 64 random bytes.
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class WebhooksConfigError(ConfigurationError):
    """The subscriptions file cannot be read or is invalid; the message says where and why."""


def secret_bytes(secret: str) -> bytes:
    """The key of a ``whsec_``-prefixed (or bare) base64 secret; ValueError when malformed."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    encoded += "=" * (-len(encoded) % 4)  # unpadded base64 is accepted, as the library does
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the secret must be base64, optionally prefixed with 'whsec_'") from None
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise ValueError(
            f"the secret must decode to {SECRET_MIN_BYTES}-{SECRET_MAX_BYTES} bytes, "
            f"not {len(key)} (make one with `triage webhook-secret`)"
        )
    return key


def new_secret() -> str:
    """A fresh secret in the Standard Webhooks form (``whsec_`` + base64 of 32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


class Subscription(BaseModel):
    """One receiver: where events go, what it asked for, and its signing secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Stable name: consumer group, metrics label, dead letters.")
    url: str
    secret: SecretStr
    events: frozenset[str] = Field(description="Case event types, or '*' for every one.")
    platforms: frozenset[str] | None = Field(
        default=None, description="Only cases these platforms posted; None: every platform."
    )

    def wants(self, event: CaseEvent) -> bool:
        """Whether this subscription receives the event."""
        return wants(self, event)


def wants(subscription: Subscription, event: CaseEvent) -> bool:
    """Whether the event's type and its case's platform pass the subscription's filters."""
    if ALL_EVENTS not in subscription.events and event.type.value not in subscription.events:
        return False
    if subscription.platforms is None:
        return True
    return event.case.platform is not None and event.case.platform in subscription.platforms


class _Entry(BaseModel):
    """One subscription as written in the file."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    url: AnyHttpUrl
    secret: SecretStr | None = None
    secret_env: str | None = Field(default=None, min_length=1)
    events: list[str] = Field(min_length=1)
    platforms: list[str] | None = Field(default=None, min_length=1)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        if value is not None and not _ID.match(value):
            raise ValueError("an id is 1-64 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("events")
    @classmethod
    def _check_events(cls, value: list[str]) -> list[str]:
        known = {t.value for t in CaseEventType}
        unknown = [e for e in value if e != ALL_EVENTS and e not in known]
        if unknown:
            raise ValueError(
                f"unknown event type(s) {', '.join(map(repr, unknown))}; use '*' or some of: "
                + ", ".join(sorted(known))
            )
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> _Entry:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of 'secret' and 'secret_env'")
        if self.secret is not None:
            secret_bytes(self.secret.get_secret_value())
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscriptions: list[_Entry]


def default_id(url: str) -> str:
    """The id of a subscription the file names none for: derived from its URL."""
    return "sub-" + hashlib.sha256(url.encode()).hexdigest()[:12]


def parse_subscriptions(
    data: Any, *, where: str, environ: Mapping[str, str] | None = None
) -> tuple[Subscription, ...]:
    """The subscriptions of a parsed YAML document; WebhooksConfigError when invalid."""
    environ = os.environ if environ is None else environ
    if data is None:
        return ()
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        raise WebhooksConfigError(_describe(exc, where)) from None
    found: list[Subscription] = []
    for n, entry in enumerate(parsed.subscriptions):
        url = str(entry.url)
        ident = entry.id or default_id(url)
        if entry.secret is not None:
            secret = entry.secret.get_secret_value()
        else:
            assert entry.secret_env is not None  # one of the two, checked above
            secret = environ.get(entry.secret_env, "")
            if not secret:
                raise WebhooksConfigError(
                    f"{where}: subscriptions.{n}.secret_env: environment variable "
                    f"{entry.secret_env} is not set"
                )
            try:
                secret_bytes(secret)
            except ValueError as exc:
                raise WebhooksConfigError(
                    f"{where}: subscriptions.{n}.secret_env: {entry.secret_env}: {exc}"
                ) from None
        if any(s.id == ident for s in found):
            raise WebhooksConfigError(f"{where}: subscriptions.{n}.id: '{ident}' is used twice")
        found.append(
            Subscription(
                id=ident,
                url=url,
                secret=SecretStr(secret),
                events=frozenset(entry.events),
                platforms=frozenset(entry.platforms) if entry.platforms is not None else None,
            )
        )
    return tuple(found)


def load_subscriptions(
    path: Path, *, environ: Mapping[str, str] | None = None
) -> tuple[Subscription, ...]:
    """The subscriptions of a YAML file; WebhooksConfigError when unreadable or invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WebhooksConfigError(
            f"cannot read subscriptions file {path}: {exc.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise WebhooksConfigError(f"{path}: not UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WebhooksConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    return parse_subscriptions(data, where=str(path), environ=environ)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without the line's text (which may be a secret)."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def _describe(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(part) for part in err["loc"]) or "file"
        lines.append(f"  {loc}: {err['msg']}")
    return f"{where}: invalid subscriptions:\n" + "\n".join(lines)
