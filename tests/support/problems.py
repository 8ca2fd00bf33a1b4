"""Checks that an HTTP answer is RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

import httpx

from services.common.problems import PROBLEM_JSON, TYPE_BASE


def assert_problem(
    response: httpx.Response, status: int, kind: str | None, *, instance: str | None = None
) -> dict[str, Any]:
    """``response`` is ``application/problem+json`` of ``status`` and ``kind`` (None:
    ``about:blank``) for its request's path (or ``instance``), with every member; its body."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == PROBLEM_JSON, response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == (TYPE_BASE + kind if kind else "about:blank"), body
    assert body["status"] == status, body
    assert isinstance(body["title"], str), body
    assert body["title"], body
    assert isinstance(body["detail"], str), body
    assert body["detail"], body
    assert body["instance"] == (instance or response.request.url.path), body
    if kind == "validation-error":
        assert body["errors"], "a validation problem names the offending fields"
    return body
