"""Prometheus metrics of the router (one registry per service, bounded labels only).

Counters and histograms are updated from the case events; queue, presence and utilisation
gauges are read from the routing state when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.common.cases import CaseEvent, CaseEventType, CaseState, Presence, Priority
from services.common.observability import add_runtime_collectors
from services.router.roster import DEFAULT_FLOOR

if TYPE_CHECKING:
    from services.router.engine import Engine

RESPONSE_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400)


class RouterMetrics:
    """Every router metric, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        add_runtime_collectors(self.registry)
        r = self.registry
        self.case_events = Counter(
            "triage_router_case_events", "Case lifecycle events, by type.", ["type"], registry=r
        )
        self.handoffs = Counter(
            "triage_router_floor_handoffs",
            "Inbox records handed to another floor: a classified message (feedback) whose "
            "tags name that floor, or a case transferred or relabelled there (case_arrived).",
            ["kind"],
            registry=r,
        )
        self.set_away = Counter(
            "triage_router_agents_set_away",
            "Available agents the router set away: offers lapsed in a row, or console gone.",
            ["reason"],
            registry=r,
        )
        self.cases_created = Counter(
            "triage_router_cases_created",
            "Cases opened, by channel and priority.",
            ["channel", "priority"],
            registry=r,
        )
        self.time_to_assign = Histogram(
            "triage_router_time_to_assign_seconds",
            "From case creation to the first accepted assignment.",
            ["channel"],
            buckets=RESPONSE_BUCKETS,
            registry=r,
        )
        self.time_to_first_response = Histogram(
            "triage_router_time_to_first_response_seconds",
            "From case creation to the agent's first response.",
            ["channel"],
            buckets=RESPONSE_BUCKETS,
            registry=r,
        )
        self.sla_completed = Counter(
            "triage_router_sla_completed",
            "Service-level clocks stopped (first response, resolution...), by metric.",
            ["metric", "channel", "priority"],
            registry=r,
        )
        self.sla_met = Counter(
            "triage_router_sla_met",
            "Service-level clocks stopped within target. Attainment = met / completed.",
            ["metric", "channel", "priority"],
            registry=r,
        )
        self.sla_warnings = Counter(
            "triage_router_sla_warnings",
            "Service-level warnings fired.",
            ["metric", "channel", "priority"],
            registry=r,
        )
        self.sla_breaches = Counter(
            "triage_router_sla_breaches",
            "Service-level targets breached.",
            ["metric", "channel", "priority"],
            registry=r,
        )
        self.escalations = Counter(
            "triage_router_escalations",
            "Escalations, by cause: authority, sla, agent.",
            ["cause"],
            registry=r,
        )
        self.offers = Counter(
            "triage_router_offers",
            "Offers by outcome: offered, accepted, declined, timed_out, returned.",
            ["outcome"],
            registry=r,
        )
        self.resolved = Counter(
            "triage_router_resolved",
            "Cases resolved, by channel and whether at first contact.",
            ["channel", "first_contact"],
            registry=r,
        )
        self.csat = Counter(
            "triage_router_csat_responses", "CSAT scores recorded, by score.", ["score"], registry=r
        )
        self.dead_letters = Counter(
            "triage_router_dead_letters",
            "Records sent to a dead-letter topic, by topic.",
            ["topic"],
            registry=r,
        )
        self.inbox_seconds = Histogram(
            "triage_router_inbox_apply_seconds",
            "Time to apply one inbox message to the routing state.",
            ["kind"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.duplicates = Counter(
            "triage_router_duplicate_messages",
            "Classified messages seen before and ignored.",
            registry=r,
        )
        self.corrections = Counter(
            "triage_router_corrections",
            "Corrected messages sent to feedback.corrections, by corrected tag.",
            ["tag"],
            registry=r,
        )

        self.tick_applied_at = Gauge(
            "triage_router_tick_applied_timestamp_seconds",
            "When this worker last applied a clock tick of a floor (Unix time; 0: never). Ticks "
            "are sent at least every heartbeat while the worker routes the floor, so an old "
            "value means the floor's offers, service-level warnings, breaches and escalations "
            "have stopped.",
            ["floor"],
            registry=r,
        )

    def tick_applied(self, at: float, floor: str = DEFAULT_FLOOR) -> None:
        """A clock tick of ``floor`` was applied at ``at`` (Unix time; 0: none yet)."""
        self.tick_applied_at.labels(floor).set(at)

    def observe_event(self, event: CaseEvent) -> None:
        """Count one case event."""
        case = event.case
        channel = case.channel.value
        priority = case.base_priority.value
        self.case_events.labels(event.type.value).inc()
        kind = event.type
        if kind == CaseEventType.CREATED:
            self.cases_created.labels(channel, priority).inc()
        elif kind == CaseEventType.OFFERED:
            self.offers.labels("offered").inc()
        elif kind == CaseEventType.OFFER_DECLINED:
            self.offers.labels("declined").inc()
        elif kind == CaseEventType.OFFER_TIMED_OUT:
            self.offers.labels("timed_out").inc()
        elif kind == CaseEventType.RETURNED:
            self.offers.labels("returned").inc()
        elif kind == CaseEventType.ASSIGNED:
            self.offers.labels("accepted").inc()
            if case.assigned_at is not None and case.assigned_at == event.at:
                seconds = (event.at - case.created_at).total_seconds()
                self.time_to_assign.labels(channel).observe(max(0.0, seconds))
        elif kind == CaseEventType.RESPONDED and event.detail.get("first"):
            seconds = (event.at - case.created_at).total_seconds()
            self.time_to_first_response.labels(channel).observe(max(0.0, seconds))
        elif kind in (CaseEventType.SLA_WARNING, CaseEventType.SLA_BREACHED):
            metric = str(event.detail.get("metric", "unknown"))
            counter = self.sla_warnings if kind == CaseEventType.SLA_WARNING else self.sla_breaches
            counter.labels(metric, channel, priority).inc()
        elif kind == CaseEventType.ESCALATED:
            cause = str(event.detail.get("cause", "agent"))
            self.escalations.labels(cause if cause in ("authority", "sla") else "agent").inc()
        elif kind == CaseEventType.RESOLVED:
            first = "true" if event.detail.get("first_contact") else "false"
            self.resolved.labels(channel, first).inc()
        elif kind == CaseEventType.CSAT_RECORDED:
            self.csat.labels(str(event.detail.get("score"))).inc()

    def observe_clock(self, metric: str, channel: str, priority: str, met: bool) -> None:
        """Count one service-level clock that stopped."""
        self.sla_completed.labels(metric, channel, priority).inc()
        if met:
            self.sla_met.labels(metric, channel, priority).inc()

    def watch(self, engine: Callable[[], Engine | list[Engine] | None]) -> None:
        """Add the gauges read from the routing state at scrape time (the engine, or the
        engines of the floors this worker routes)."""
        self.registry.register(_StateCollector(engine))


class _StateCollector(Collector):
    def __init__(self, engine: Callable[[], Engine | list[Engine] | None]) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "triage_router_queue_depth", "Cases waiting for an agent.", labels=["team", "priority"]
        )
        oldest = GaugeMetricFamily(
            "triage_router_queue_oldest_age_seconds",
            "Age of the longest-waiting case.",
            labels=["team", "priority"],
        )
        presence = GaugeMetricFamily(
            "triage_router_agents", "Agents by presence.", labels=["team", "presence"]
        )
        utilisation = GaugeMetricFamily(
            "triage_router_agent_utilisation_ratio",
            "Share of the capacity of available agents in use.",
            labels=["team"],
        )
        open_cases = GaugeMetricFamily(
            "triage_router_open_cases", "Open cases by state.", labels=["team", "state"]
        )
        watched = self._engine()
        engines = watched if isinstance(watched, list) else [] if watched is None else [watched]
        now = datetime.now(UTC)
        for engine in engines:  # one per floor this worker routes (teams differ)
            for team, queue in engine.queues.items():
                counts = {p: 0 for p in Priority}
                ages = {p: 0.0 for p in Priority}
                for case_id in queue:
                    record = engine.records.get(case_id)
                    if record is None:
                        continue
                    case = record.case
                    counts[case.priority] += 1
                    since = case.queued_at or case.created_at
                    ages[case.priority] = max(ages[case.priority], (now - since).total_seconds())
                for priority in Priority:
                    depth.add_metric([team, priority.value], counts[priority])
                    oldest.add_metric([team, priority.value], ages[priority])
            by_presence: dict[tuple[str, str], int] = {}
            used: dict[str, float] = {}
            capacity: dict[str, float] = {}
            for agent in engine.agents.values():
                team = agent.profile.team
                key = (team, agent.presence.value)
                by_presence[key] = by_presence.get(key, 0) + 1
                if agent.presence == Presence.AVAILABLE:
                    used[team] = used.get(team, 0.0) + sum(agent.load.values())
                    capacity[team] = capacity.get(team, 0.0) + sum(agent.profile.channels.values())
            for team in engine.teams:
                for status in Presence:
                    presence.add_metric([team, status.value], by_presence.get((team, status), 0))
                share = used.get(team, 0.0) / capacity[team] if capacity.get(team) else 0.0
                utilisation.add_metric([team], share)
            states: dict[tuple[str, str], int] = {}
            for record in engine.records.values():
                if record.case.state != CaseState.RESOLVED:
                    key = (record.case.team, record.case.state.value)
                    states[key] = states.get(key, 0) + 1
            for (team, state), count in states.items():
                open_cases.add_metric([team, state], count)
        yield from (depth, oldest, presence, utilisation, open_cases)

    def describe(self) -> Iterable[Metric]:
        return []
