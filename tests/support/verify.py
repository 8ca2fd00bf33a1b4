"""What a fault or load run must leave behind, checked from the topics and the router's API.

What "exactly once" means at each stage (the embedded broker has no idempotent or
transactional producer, so every stage is at-least-once made effectively-once by ids):

* **ingest → feedback.received**: a 202 means the broker acknowledged the record. The event id
  is derived from (platform, source id), so a repeat gets the same id; ingest answers a repeat
  200 without producing again while it remembers the source id.
* **classifier → feedback.classified**: at-least-once. A worker killed after producing but before
  committing its offsets re-classifies those records on restart and may emit a second copy
  (same event id). The customer's history (changelog-backed) drops repeats it has recorded.
  Checked here: every accepted event is classified, and every second copy was first emitted in
  the window of a worker kill (never in steady running).
* **router → cases**: each event id joins exactly one case, once (the router keeps the event
  ids of its cases). Case events are at-least-once on ``cases.events`` with derived ids
  (case id, version): a copy re-emitted after a crash must be the same change (same type,
  state, assignee, offer, messages), versions have no gaps, the router's final state has no
  version the log lacks, an ``assigned`` event only follows an offer to that agent with no one
  assigned, and each deadline (case, metric, warning or breach) fires at most once, not before
  it is due, and always when it fell due while its clock ran.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.support.load import Posted

INTRODUCING = frozenset({"created", "message_added", "reopened"})
MAX_EXAMPLES = 5


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


@dataclass(frozen=True)
class ClockView:
    """One service-level clock of a case as a case event showed it."""

    metric: str
    warning_at: float | None
    due_at: float | None
    stopped_at: float | None
    paused: bool
    warned: bool
    breached: bool


@dataclass(frozen=True)
class CaseEventView:
    """What the checks need of one record of ``cases.events``."""

    event_id: str
    case_id: str
    version: int
    type: str
    at: float
    read_at: float
    agent_id: str | None
    metric: str | None
    state: str
    assignee: str | None
    offer_agent: str | None
    messages: tuple[str, ...]
    clocks: tuple[ClockView, ...]
    digest: str

    @property
    def change(self) -> tuple[Any, ...]:
        """The change the event records; two copies of one event must agree on it."""
        return (
            self.type,
            self.state,
            self.assignee,
            self.offer_agent,
            self.agent_id,
            self.metric,
            self.messages,
        )


def case_event_view(value: bytes, read_at: float) -> CaseEventView:
    """Parse one ``cases.events`` record."""
    body = json.loads(value)
    case = body["case"]
    offer = case.get("offer")
    clocks = tuple(
        ClockView(
            metric=d["metric"],
            warning_at=_ts(d.get("warning_at")),
            due_at=_ts(d.get("due_at")),
            stopped_at=_ts(d.get("stopped_at")),
            paused=bool(d.get("paused")),
            warned=bool(d.get("warned")),
            breached=bool(d.get("breached")),
        )
        for d in case.get("deadlines", [])
    )
    return CaseEventView(
        event_id=body["event_id"],
        case_id=body["case_id"],
        version=int(body["version"]),
        type=body["type"],
        at=datetime.fromisoformat(body["at"]).timestamp(),
        read_at=read_at,
        agent_id=body.get("agent_id"),
        metric=(body.get("detail") or {}).get("metric"),
        state=case["state"],
        assignee=case.get("assignee"),
        offer_agent=offer["agent_id"] if offer else None,
        messages=tuple(m["event_id"] for m in case["messages"]),
        clocks=clocks,
        digest=hashlib.sha1(value, usedforsecurity=False).hexdigest(),
    )


@dataclass(frozen=True)
class ClassifiedView:
    """What the checks need of one record of ``feedback.classified``."""

    event_id: str
    classified_at: float
    read_at: float


def classified_view(value: bytes, read_at: float) -> ClassifiedView:
    """Parse one ``feedback.classified`` record."""
    body = json.loads(value)
    return ClassifiedView(
        event_id=body["event_id"],
        classified_at=datetime.fromisoformat(body["classified_at"]).timestamp(),
        read_at=read_at,
    )


@dataclass
class Findings:
    """Figures of a run and the violations of each check (a count and a few examples)."""

    figures: dict[str, Any] = field(default_factory=dict)
    violations: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    def check(self, name: str) -> None:
        """Declare a check (listed even when it finds nothing)."""
        if name not in self.checks:
            self.checks.append(name)

    def fail(self, name: str, example: str) -> None:
        """Record one violation of a check."""
        self.check(name)
        self.violations[name] += 1
        shown = self.examples.setdefault(name, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(example)

    @property
    def ok(self) -> bool:
        """No check found a violation."""
        return not self.violations

    def report(self) -> str:
        """The checks, one a line, with examples of what failed."""
        lines = []
        for name in self.checks:
            count = self.violations.get(name, 0)
            lines.append(
                f"  {'ok  ' if count == 0 else 'FAIL'} {name}" + (f": {count}" if count else "")
            )
            for example in self.examples.get(name, []):
                lines.append(f"         e.g. {example}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Window:
    """A span of wall-clock time (a worker killed until its replacement was ready)."""

    start: float
    end: float

    def holds(self, at: float, *, before_s: float = 0.0, after_s: float = 0.0) -> bool:
        """``at`` falls in the window widened by the margins."""
        return self.start - before_s <= at <= self.end + after_s


def dedup_events(events: Iterable[CaseEventView]) -> tuple[dict[str, list[CaseEventView]], int]:
    """Case events by case id in version order, one per event id; and how many copies were
    dropped (re-emitted after a crash)."""
    by_id: dict[str, CaseEventView] = {}
    copies = 0
    for event in events:
        if event.event_id in by_id:
            copies += 1
            continue
        by_id[event.event_id] = event
    by_case: dict[str, list[CaseEventView]] = defaultdict(list)
    for event in by_id.values():
        by_case[event.case_id].append(event)
    for history in by_case.values():
        history.sort(key=lambda e: e.version)
    return by_case, copies


def check_ingest(findings: Findings, posted: Sequence[Posted], *, allow_503: bool) -> None:
    """Every answer is 202 (200 for a repeat) or, where allowed, 503; event ids are distinct."""
    findings.check("ingest: every answer 202/200" + (" or 503" if allow_503 else ""))
    allowed = {"200", "202", *(("503",) if allow_503 else ())}
    for item in posted:
        for _, _, outcome in item.attempts:
            if outcome not in allowed:
                findings.fail(
                    "ingest: every answer 202/200" + (" or 503" if allow_503 else ""),
                    f"{item.source_id}: {outcome}",
                )
    findings.check("ingest: one event id per source event")
    seen: dict[str, str] = {}
    for item in posted:
        if item.event_id is None:
            continue
        other = seen.setdefault(item.event_id, item.source_id)
        if other != item.source_id:
            findings.fail(
                "ingest: one event id per source event",
                f"{item.event_id}: {other}, {item.source_id}",
            )


def check_classified(
    findings: Findings,
    accepted: dict[str, Posted],
    classified: Sequence[ClassifiedView],
    *,
    kills: Sequence[Window],
    window_s: float = 15.0,
) -> None:
    """Every accepted event classified; a second copy only around a classifier kill."""
    copies: dict[str, list[ClassifiedView]] = defaultdict(list)
    for record in classified:
        copies[record.event_id].append(record)
    findings.check("classifier: every accepted event classified")
    for event_id, item in accepted.items():
        if event_id not in copies:
            findings.fail("classifier: every accepted event classified", f"{item.source_id}")
    findings.check("classifier: repeats only from a killed worker")
    repeated = 0
    for event_id, records in copies.items():
        if len(records) < 2:
            continue
        repeated += len(records) - 1
        first = min(r.classified_at for r in records)
        if not any(w.holds(first, before_s=window_s) for w in kills):
            findings.fail(
                "classifier: repeats only from a killed worker",
                f"{event_id} classified {len(records)}x, first at {first:.1f}",
            )
    findings.figures["classified records"] = len(classified)
    findings.figures["classified again after a kill"] = repeated


def check_cases(
    findings: Findings,
    accepted: dict[str, Posted],
    events: Sequence[CaseEventView],
    *,
    final_versions: dict[str, int | None] | None,
    holdings: dict[str, list[str]] | None,
    checked_at: float,
    grace_s: float = 3.0,
) -> dict[str, list[CaseEventView]]:
    """The case checks (see the module docstring); returns the deduplicated case histories."""
    by_case, copies = dedup_events(events)
    findings.figures["case events (records)"] = len(events)
    findings.figures["case events re-emitted (same id)"] = copies

    findings.check("cases: a re-emitted event repeats the same change")
    first_of: dict[str, CaseEventView] = {}
    for event in events:
        first = first_of.setdefault(event.event_id, event)
        if first.change != event.change:
            findings.fail(
                "cases: a re-emitted event repeats the same change",
                f"case {event.case_id} v{event.version}: {first.type}/{first.assignee}/"
                f"{first.offer_agent} then {event.type}/{event.assignee}/{event.offer_agent}",
            )

    findings.check("cases: versions without gaps")
    for case_id, history in by_case.items():
        versions = [e.version for e in history]
        if versions != list(range(1, len(versions) + 1)):
            missing = sorted(set(range(1, max(versions) + 1)) - set(versions))
            findings.fail("cases: versions without gaps", f"case {case_id} lacks {missing[:10]}")

    if final_versions is not None:
        findings.check("cases: router state matches the log")
        for case_id, version in final_versions.items():
            if version is None:
                findings.fail(
                    "cases: router state matches the log", f"case {case_id} unknown to the router"
                )
                continue
            logged = by_case.get(case_id)
            last = logged[-1].version if logged else 0
            if version > last:  # the log may be ahead: the router went on after it was asked
                findings.fail(
                    "cases: router state matches the log",
                    f"case {case_id}: router at v{version}, log at v{last}",
                )

    # Every accepted event in exactly one case, added once.
    cases_of: dict[str, set[str]] = defaultdict(set)
    introduced: Counter[str] = Counter()
    for case_id, history in by_case.items():
        for event in history:
            for message in event.messages:
                cases_of[message].add(case_id)
            if event.type in INTRODUCING and event.messages:
                introduced[event.messages[-1]] += 1
    findings.check("router: every accepted event in a case")
    findings.check("router: no event in two cases")
    findings.check("router: no event added twice")
    for event_id, item in accepted.items():
        owners = cases_of.get(event_id, set())
        if not owners:
            findings.fail("router: every accepted event in a case", item.source_id)
        elif len(owners) > 1:
            findings.fail("router: no event in two cases", f"{item.source_id}: {sorted(owners)}")
    for event_id, count in introduced.items():
        if count > 1:
            findings.fail("router: no event added twice", f"{event_id} added {count}x")
    findings.figures["events in cases but never accepted"] = len(set(cases_of) - set(accepted))

    _check_assignments(findings, by_case, holdings)
    _check_deadlines(findings, by_case, checked_at=checked_at, grace_s=grace_s)

    kinds = Counter(e.type for history in by_case.values() for e in history)
    findings.figures["cases"] = len(by_case)
    for kind in (
        "offered",
        "assigned",
        "responded",
        "resolved",
        "offer_timed_out",
        "returned",
        "escalated",
        "sla_warning",
        "sla_breached",
    ):
        findings.figures[f"case events: {kind}"] = kinds.get(kind, 0)
    return by_case


def _check_assignments(
    findings: Findings,
    by_case: dict[str, list[CaseEventView]],
    holdings: dict[str, list[str]] | None,
) -> None:
    name = "assignment: only an offered, unassigned case, to the agent offered"
    findings.check(name)
    for case_id, history in by_case.items():
        previous: CaseEventView | None = None
        for event in history:
            if (
                event.type == "assigned"
                and previous is not None
                and (previous.assignee is not None or previous.offer_agent != event.agent_id)
            ):
                findings.fail(
                    name,
                    f"case {case_id} v{event.version} to {event.agent_id}: before it "
                    f"assignee={previous.assignee} offer={previous.offer_agent}",
                )
            previous = event
    if holdings is None:
        return
    findings.check("assignment: no case held by two agents")
    holders: dict[str, list[str]] = defaultdict(list)
    for agent_id, cases in holdings.items():
        for case_id in cases:
            holders[case_id].append(agent_id)
    for case_id, agents in holders.items():
        if len(agents) > 1:
            findings.fail("assignment: no case held by two agents", f"{case_id}: {agents}")


def _check_deadlines(
    findings: Findings,
    by_case: dict[str, list[CaseEventView]],
    *,
    checked_at: float,
    grace_s: float,
) -> None:
    once = "deadlines: each fires at most once"
    early = "deadlines: none fires before it is due"
    lost = "deadlines: each that fell due while its clock ran fired"
    for name in (once, early, lost):
        findings.check(name)
    late_stops = 0
    for case_id, history in by_case.items():
        due: dict[tuple[str, str], float] = {}
        stopped: dict[str, float] = {}
        paused: set[str] = set()
        fired: dict[tuple[str, str], list[CaseEventView]] = defaultdict(list)
        for event in history:
            for clock in event.clocks:
                if clock.stopped_at is not None:
                    stopped.setdefault(clock.metric, clock.stopped_at)
                if clock.paused:
                    paused.add(clock.metric)
                if clock.warning_at is not None:
                    due[(clock.metric, "warning")] = clock.warning_at
                if clock.due_at is not None:
                    due[(clock.metric, "breach")] = clock.due_at
            if event.type in ("sla_warning", "sla_breached") and event.metric:
                kind = "warning" if event.type == "sla_warning" else "breach"
                fired[(event.metric, kind)].append(event)
        for (metric, kind), events in fired.items():
            if len(events) > 1:
                findings.fail(once, f"case {case_id} {metric} {kind} fired {len(events)}x")
            at = due.get((metric, kind))
            if at is not None and events[0].at < at - 0.05:
                findings.fail(
                    early, f"case {case_id} {metric} {kind} at {events[0].at:.2f} < {at:.2f}"
                )
        for (metric, kind), at in due.items():
            if metric in paused or (metric, kind) in fired:
                continue
            if kind == "warning" and (metric, "breach") in fired:
                continue  # fired together with the breach or superseded by it
            stop = stopped.get(metric)
            if at > checked_at - grace_s:
                continue  # not due long enough before the end to be required
            if stop is not None and stop <= at:
                continue  # the clock stopped in time
            if stop is not None:
                late_stops += 1
            findings.fail(
                lost,
                f"case {case_id} {metric} {kind} due {at:.2f}"
                + (f", clock stopped {stop - at:.2f}s after" if stop is not None else ", running"),
            )
    findings.figures["deadlines missed: clock stopped after due before a tick"] = late_stops


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 and max of ``values`` (empty: nothing)."""
    if not values:
        return {}
    ordered = sorted(values)
    if len(ordered) == 1:
        only = ordered[0]
        return {"p50": only, "p90": only, "p99": only, "max": only}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": ordered[-1]}


def latencies(
    accepted: dict[str, Posted], by_case: dict[str, list[CaseEventView]]
) -> dict[str, list[float]]:
    """Seconds from the post (sent at the client) to the case events of the case the event
    opened, as read from ``cases.events``: ``created``, first ``offered``, first ``assigned``."""
    found: dict[str, list[float]] = {"created": [], "offered": [], "assigned": []}
    for history in by_case.values():
        first = history[0]
        if first.type != "created" or not first.messages:
            continue
        item = accepted.get(first.messages[0])
        if item is None:
            continue
        found["created"].append(first.read_at - item.sent_at)
        for kind in ("offered", "assigned"):
            event = next((e for e in history if e.type == kind), None)
            if event is not None:
                found[kind].append(event.read_at - item.sent_at)
    return found


def longest_gap(times: Iterable[float], start: float, end: float) -> float:
    """The longest stretch between ``start`` and ``end`` with none of ``times`` in it."""
    inside = sorted(t for t in times if start <= t <= end)
    edges = [start, *inside, end]
    return max((b - a for a, b in itertools.pairwise(edges)), default=0.0)
