"""What ``triage up --demo`` needs before and after the simulation: its start-up checks (the
demo plays the development roster's agents with the development API key), the environment it
gives the services, and the one-line summary it prints at the end."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from services.common.errors import TriageError
from services.demo.incidents import IncidentPlan
from services.demo.runner import DemoStats, Endpoints, run_demo

#: Service levels for demo time, which runs about sixty times faster than a real floor.
DEMO_SLA_PATH = Path(__file__).parents[1] / "router" / "config" / "sla-demo.yaml"


class DemoError(TriageError):
    """The demo cannot run with this configuration."""


def demo_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables the demo adds to the services' environment: short service levels and
    offer timeouts so that deadlines come into play, unless the user chose a service-level
    file."""
    if "TRIAGE_ROUTER_SLA_FILE" in environ:
        return {}
    added = {"TRIAGE_ROUTER_SLA_FILE": str(DEMO_SLA_PATH)}
    if "TRIAGE_ROUTER_OFFER_TIMEOUT_S" not in environ:
        added["TRIAGE_ROUTER_OFFER_TIMEOUT_S"] = "15"
    return added


def trends_demo_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables the demo gives the trends worker: demo time runs about sixty times faster,
    so its windows are minutes where a real floor's are half hours, and it judges after four
    minutes of traffic instead of an hour (the variables the user set are kept)."""
    wanted = {
        "TRIAGE_TRENDS_WARMUP_S": "240",
        "TRIAGE_TRENDS_SURGE_WINDOW_MIN": "2",
        "TRIAGE_TRENDS_CLUSTER_GROWTH_WINDOW_MIN": "2",
        "TRIAGE_TRENDS_CLUSTER_BASELINE_WINDOW_MIN": "60",
        "TRIAGE_TRENDS_EVALUATE_INTERVAL_S": "5",
    }
    return {name: value for name, value in wanted.items() if name not in environ}


def demo_endpoints(
    *,
    ingest: str,
    router: str,
    api_key: str | None,
    tokens: Mapping[str, str],
    tiers: Mapping[str, str],
) -> Endpoints:
    """Where the demo posts and which agents it plays: ``api_key`` is the development API key
    (None when ingest does not accept it), ``tokens`` and ``tiers`` the development roster's
    agents by id (empty for a real roster)."""
    if api_key is None or not tokens:
        raise DemoError(
            "--demo plays the development roster's agents with the development API key: "
            "run it without TRIAGE_ROUTER_ROSTER_FILE and TRIAGE_INGEST_API_KEYS"
        )
    played = {agent: tier for agent, tier in tiers.items() if agent in tokens}
    supervisor = next((tokens[a] for a, tier in played.items() if tier == "supervisor"), None)
    if supervisor is None:
        raise DemoError("--demo needs a supervisor among the development roster's agents")
    return Endpoints(
        ingest=ingest,
        router=router,
        api_key=api_key,
        tokens=dict(tokens),
        tiers=played,
        supervisor=supervisor,
    )


def summary(stats: DemoStats, figures: Mapping[str, float]) -> str:
    """What the demo did, in one line."""
    posted = sum(stats.posted.values())
    return (
        f"demo finished: posted {posted} messages; router: created "
        f"{figures.get('events_created', 0):g}, assigned "
        f"{figures.get('offers_accepted', 0):g}, responded "
        f"{figures.get('events_responded', 0):g}, resolved "
        f"{figures.get('events_resolved', 0):g}, breaches {figures.get('breaches', 0):g}, "
        f"escalations {figures.get('escalations', 0):g}"
    )


async def run_and_summarise(
    where: Endpoints,
    *,
    rate: float,
    duration_s: float,
    live: bool,
    incident: IncidentPlan | None = None,
) -> str:
    """Run the demo; its summary, or why it failed (the services go on either way)."""
    try:
        stats, figures = await run_demo(
            where, rate=rate, duration_s=duration_s, live=live, incident=incident
        )
    except Exception as exc:  # reported, not raised: the stack stops in order all the same
        return f"demo failed: {exc!r}"
    return summary(stats, figures)
