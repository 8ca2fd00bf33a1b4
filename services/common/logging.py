"""Structured logging for every service.

Services log with ``structlog.get_logger(__name__)`` and key-value pairs (event ids, case ids,
counts), never message text or contact details. Library logs (aiokafka, uvicorn) go through the
same renderer: JSON lines in production, readable lines in development.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal

import structlog

LogFormat = Literal["json", "console"]


def configure_logging(*, level: str = "INFO", fmt: LogFormat = "console") -> None:
    """Route structlog and the standard library's logging through one renderer on stderr."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka reports every failed reconnect; keep each kind of message to one a minute.
    kafka_log = logging.getLogger("aiokafka")
    kafka_log.setLevel(max(logging.WARNING, root.level))
    kafka_log.filters[:] = [RepeatFilter(interval_s=60.0)]
    # faust logs every record it sends, value and all, at DEBUG: those lines are dropped at any
    # level, so customer text never reaches the logs.
    for name in RECORD_LOGGERS:
        logging.getLogger(name).filters[:] = [RecordValueFilter()]


#: Loggers of faust that write whole record values.
RECORD_LOGGERS = ("faust.topics", "faust.transport.drivers.aiokafka")


class RecordValueFilter(logging.Filter):
    """Drops log records that carry a Kafka record's value (faust's ``send: ... v=%r`` lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and "v=%r" in record.msg)


class RepeatFilter(logging.Filter):
    """Lets a message template through at most once per interval."""

    def __init__(self, *, interval_s: float) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True
