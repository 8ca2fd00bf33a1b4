"""Metrics every service exposes the same way: the process and Python runtime collectors, and
HTTP request durations per route and status.

Each service keeps its metrics in a registry of its own (several services, or several test
apps, can share a process), so the collectors that prometheus_client installs in its global
registry are added to each service's registry here instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics

# Request durations: from a cached answer (1 ms) to a parse or a produce at its deadline (10 s).
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Scrapes and probes would swamp the figures that matter.
UNTIMED_PATHS = ("/metrics", "/healthz", "/readyz", "/livez")


def add_runtime_collectors(registry: CollectorRegistry) -> None:
    """``process_*`` (CPU, resident memory, open files, start time), ``python_info`` and
    ``python_gc_*`` in ``registry``."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


def instrument_http(
    app: FastAPI, registry: CollectorRegistry, *, untimed: Sequence[str] = UNTIMED_PATHS
) -> None:
    """Time every request of ``app`` in ``http_request_duration_seconds{handler, method, status}``
    and count it in ``http_requests_total``. ``handler`` is the route's template
    (``/v1/cases/{case_id}``), never the raw path, and unmatched paths share the value ``none``,
    so a caller cannot grow the label set. A streaming response is timed to its first byte."""
    instrumentator = Instrumentator(
        registry=registry,
        should_group_status_codes=False,
        should_ignore_untemplated=False,
        should_group_untemplated=True,
        excluded_handlers=[f"^{path}$" for path in untimed],
        should_exclude_streaming_duration=True,
    )
    instrumentator.add(
        http_metrics.latency(
            should_include_handler=True,
            should_include_method=True,
            should_include_status=True,
            should_exclude_streaming_duration=True,
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
    )
    instrumentator.add(http_metrics.requests(registry=registry))
    instrumentator.instrument(app, metric_namespace="", metric_subsystem="")
