"""Writes the agent API's OpenAPI document: ``python -m services.router.openapi [PATH]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from services.router.api import create_api

DEFAULT_PATH = Path("docs/openapi/router.json")


class _NoRuntime:
    """Enough of a runtime to build the app and its document."""

    engine = None
    ready = False

    async def submit(self, command: Any) -> Any:
        raise RuntimeError("documentation only")

    def subscribe(self, agent_id: str, supervisor: bool, *, token_sha256: str | None = None) -> Any:
        raise RuntimeError("documentation only")

    def unsubscribe(self, queue: Any) -> None:
        return None

    def metrics_text(self) -> bytes:
        return b""


def document() -> dict[str, Any]:
    """The OpenAPI document of the agent API."""
    schema: dict[str, Any] = create_api(_NoRuntime()).openapi()
    return schema


def main(argv: list[str]) -> None:
    """Generate the document from the application and write it."""
    path = Path(argv[0]) if argv else DEFAULT_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
