"""The committed OpenAPI document of the agent API matches the application."""

from __future__ import annotations

import json
from pathlib import Path

from services.router.openapi import document

OPENAPI_PATH = Path(__file__).parents[2] / "docs" / "openapi" / "router.json"


def test_committed_openapi_document_is_current() -> None:
    committed = json.loads(OPENAPI_PATH.read_text())
    assert committed == document(), "regenerate with: python -m services.router.openapi"


def test_every_operation_is_under_v1_and_documented() -> None:
    paths = document()["paths"]
    assert all(path.startswith("/v1/") for path in paths)
    for operations in paths.values():
        for operation in operations.values():
            assert operation.get("summary")
