"""Writes the ingest API's OpenAPI document: ``python -m services.ingest.openapi [PATH]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from services.common.kafka import KafkaSettings
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings

DEFAULT_PATH = Path("docs/openapi/ingest.json")


def main(argv: list[str]) -> None:
    """Generate the document from the application and write it."""
    path = Path(argv[0]) if argv else DEFAULT_PATH
    document = create_app(IngestSettings(), KafkaSettings()).openapi()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
