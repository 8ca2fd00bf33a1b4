"""What the suite sent, and a scan of every log its services wrote for any of it.

While the suite runs, every request body and bearer token the tests send over HTTP (httpx) and
every record they produce to Kafka (aiokafka) is looked through for personal data and message
text; at the end every ``*.log`` file under the session's temporary directory (the logs of the
service processes and of the embedded broker) must hold none of it, no e-mail address and no
phone number.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Values under these keys are customer text or contact details wherever they appear.
TEXT_KEYS = frozenset({"text", "subject", "note", "reason", "name", "email", "phone"})
#: Shorter strings ("x", "hello", "Amy") would match log lines by chance.
MIN_CHARS = 12
#: A long text is looked for by its beginning.
NEEDLE_CHARS = 64
EMAIL_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE_NUMBER = re.compile(r"\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d{2,4}){2,4}\b")


@dataclass
class Sent:
    """What the tests sent: texts and contact details, and secrets."""

    texts: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)

    def body(self, content: bytes | None) -> None:
        """Remember the texts of an HTTP body or record value."""
        if content:
            self.texts.update(_texts(content))

    def authorization(self, value: str | None) -> None:
        """Remember the credential of an Authorization header."""
        if value:
            _, _, token = value.partition(" ")
            if len(token.strip()) >= 8:
                self.secrets.add(token.strip())


def _walk(value: Any, key: str | None = None) -> Iterator[str]:
    if isinstance(value, dict):
        for child_key, child in value.items():
            yield from _walk(child, str(child_key))
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child, key)
    elif isinstance(value, str) and key in TEXT_KEYS:
        yield value


def _texts(content: bytes) -> Iterator[str]:
    try:
        document = json.loads(content)
    except (ValueError, RecursionError):
        if b"From:" in content[:4096]:
            yield from _email_texts(content)
        return
    for text in _walk(document):
        yield from _needles(text)


def _email_texts(content: bytes) -> Iterator[str]:
    try:
        message = email.message_from_bytes(content, policy=email.policy.default)
        for header in ("from", "subject"):
            yield from _needles(str(message.get(header, "")))
        part = message.get_body(preferencelist=("plain",))
        text = part.get_content() if part is not None else ""
    except Exception:  # hostile input: whatever parses is looked for, the rest is not
        return
    for line in str(text).splitlines():
        yield from _needles(line)


def _needles(text: str) -> Iterator[str]:
    text = text.strip()
    if len(text) >= MIN_CHARS and len(set(text)) > 3:
        yield text[:NEEDLE_CHARS]


@dataclass(frozen=True)
class Finding:
    """One log line that holds something it must not."""

    path: Path
    line_number: int
    what: str
    line: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_number}: {self.what}: {self.line[:300]}"


def scan(paths: Iterable[Path], sent: Sent) -> list[Finding]:
    """Every line of the files holding an e-mail address, a phone number, a secret or a text
    that was sent."""
    needles = [(text, "message text or contact detail") for text in sorted(sent.texts)]
    needles += [(secret, "credential") for secret in sorted(sent.secrets)]
    findings: list[Finding] = []
    for path in paths:
        content = path.read_text(errors="replace")
        present = [(needle, what) for needle, what in needles if needle in content]
        for number, line in enumerate(content.splitlines(), 1):
            for pattern, what in ((EMAIL_ADDRESS, "e-mail address"), (PHONE_NUMBER, "phone")):
                if pattern.search(line):
                    findings.append(Finding(path, number, what, line))
            for needle, what in present:
                if needle in line:
                    findings.append(Finding(path, number, f"{what} {needle[:40]!r}", line))
    return findings
