"""The checks of the fault runs catch what they are meant to catch (a check that cannot fail
proves nothing): lost and split events, gaps, divergent copies, double assignment, deadlines
lost, doubled or early, and repeats of the classifier outside a kill."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tests.support.load import Posted
from tests.support.verify import (
    CaseEventView,
    ClassifiedView,
    Findings,
    Window,
    case_event_view,
    check_cases,
    check_classified,
    longest_gap,
    percentiles,
)

T0 = 1_800_000_000.0


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


def event(
    case: str,
    version: int,
    kind: str,
    at: float,
    *,
    messages: tuple[str, ...] = ("e1",),
    state: str = "queued",
    assignee: str | None = None,
    offer: str | None = None,
    agent: str | None = None,
    metric: str | None = None,
    deadlines: list[dict[str, Any]] | None = None,
) -> CaseEventView:
    body = {
        "event_id": f"{case}-v{version}",
        "case_id": case,
        "version": version,
        "type": kind,
        "at": _iso(at),
        "agent_id": agent,
        "detail": {"metric": metric} if metric else {},
        "case": {
            "state": state,
            "assignee": assignee,
            "offer": {"agent_id": offer} if offer else None,
            "messages": [{"event_id": m} for m in messages],
            "deadlines": deadlines or [],
        },
    }
    return case_event_view(json.dumps(body).encode(), read_at=at + 0.1)


def deadline(
    metric: str, warning: float | None, due: float | None, stopped: float | None = None
) -> dict[str, Any]:
    return {
        "metric": metric,
        "warning_at": _iso(warning),
        "due_at": _iso(due),
        "stopped_at": _iso(stopped),
        "paused": False,
        "warned": False,
        "breached": False,
    }


def posted(*event_ids: str) -> dict[str, Posted]:
    found = {}
    for event_id in event_ids:
        item = Posted(event_id, "email", "c", T0, [(T0, T0 + 0.01, "202")], event_id, T0)
        found[event_id] = item
    return found


RUNNING = [deadline("first_response", T0 + 5, T0 + 10)]


def healthy() -> list[CaseEventView]:
    return [
        event("A", 1, "created", T0, deadlines=RUNNING),
        event("A", 2, "offered", T0, state="offered", offer="amy", agent="amy", deadlines=RUNNING),
        event("A", 3, "assigned", T0 + 1, state="assigned", assignee="amy", agent="amy"),
        event(
            "A",
            4,
            "responded",
            T0 + 2,
            state="assigned",
            assignee="amy",
            deadlines=[deadline("first_response", None, None, stopped=T0 + 2)],
        ),
    ]


def run_checks(events: list[CaseEventView], accepted: dict[str, Posted] | None = None) -> Findings:
    findings = Findings()
    check_cases(
        findings,
        accepted if accepted is not None else posted("e1"),
        events,
        final_versions=None,
        holdings={"amy": ["A"]},
        checked_at=T0 + 100,
    )
    return findings


def test_a_healthy_history_passes() -> None:
    findings = run_checks(healthy())
    assert findings.ok, findings.report()
    assert findings.figures["case events: assigned"] == 1


def test_an_identical_copy_is_a_repeat_but_a_different_one_diverges() -> None:
    events = healthy()
    assert run_checks([*events, events[2]]).ok
    other = event("A", 3, "assigned", T0 + 1, state="assigned", assignee="bob", agent="bob")
    findings = run_checks([*events, other])
    assert findings.violations["cases: a re-emitted event repeats the same change"] == 1


def test_a_missing_version_is_a_gap() -> None:
    events = healthy()
    del events[1]
    findings = run_checks(events)
    assert findings.violations["cases: versions without gaps"] == 1


def test_lost_split_and_doubled_events() -> None:
    accepted = posted("e1", "e2", "e3")
    events = [
        *healthy(),
        event("B", 1, "created", T0, messages=("e2",)),
        event("C", 1, "created", T0, messages=("e2",)),
        event("B", 2, "message_added", T0, messages=("e2", "e2")),
    ]
    findings = run_checks(events, accepted)
    assert findings.violations["router: every accepted event in a case"] == 1  # e3
    assert findings.violations["router: no event in two cases"] == 1  # e2 in B and C
    assert findings.violations["router: no event added twice"] == 1  # e2 added twice


def test_assignment_of_a_case_someone_holds() -> None:
    events = [
        *healthy(),
        event("A", 5, "assigned", T0 + 3, state="assigned", assignee="bob", agent="bob"),
    ]
    findings = run_checks(events)
    name = "assignment: only an offered, unassigned case, to the agent offered"
    assert findings.violations[name] == 1
    findings = Findings()
    check_cases(
        findings,
        posted("e1"),
        healthy(),
        final_versions={"A": 4, "Z": None},
        holdings={"amy": ["A"], "bob": ["A"]},
        checked_at=T0 + 100,
    )
    assert findings.violations["assignment: no case held by two agents"] == 1
    assert findings.violations["cases: router state matches the log"] == 1  # Z unknown


def test_deadlines_lost_doubled_and_early() -> None:
    # The first response clock stops after its warning time: the warning must have fired.
    late = [
        *healthy()[:3],
        event(
            "A",
            4,
            "responded",
            T0 + 7,
            state="assigned",
            assignee="amy",
            deadlines=[deadline("first_response", None, None, stopped=T0 + 7)],
        ),
    ]
    findings = run_checks(late)
    assert findings.violations["deadlines: each that fell due while its clock ran fired"] == 1
    warned = [
        *late[:3],
        event("A", 4, "sla_warning", T0 + 5, state="assigned", metric="first_response"),
        event("A", 5, "sla_warning", T0 + 6, state="assigned", metric="first_response"),
    ]
    findings = run_checks(warned)
    assert findings.violations["deadlines: each fires at most once"] == 1
    early = [
        *late[:3],
        event("A", 4, "sla_warning", T0 + 2, state="assigned", metric="first_response"),
    ]
    findings = run_checks(early)
    assert findings.violations["deadlines: none fires before it is due"] == 1
    # Still running at the end: both the warning and the breach were due.
    running = [event("A", 1, "created", T0, deadlines=RUNNING)]
    findings = run_checks(running)
    assert findings.violations["deadlines: each that fell due while its clock ran fired"] == 2


def test_classifier_repeats_only_around_a_kill() -> None:
    accepted = posted("e1", "e2", "e3")
    records = [
        ClassifiedView("e1", T0 + 10, T0 + 10),
        ClassifiedView("e1", T0 + 30, T0 + 30),  # first copy 5 s before the kill: fine
        ClassifiedView("e2", T0 + 100, T0 + 100),
        ClassifiedView("e2", T0 + 101, T0 + 101),  # nowhere near a kill
    ]
    findings = Findings()
    check_classified(findings, accepted, records, kills=[Window(T0 + 15, T0 + 40)])
    assert findings.violations["classifier: every accepted event classified"] == 1  # e3
    assert findings.violations["classifier: repeats only from a killed worker"] == 1  # e2
    assert findings.figures["classified again after a kill"] == 2


def test_figures() -> None:
    assert longest_gap([2.0, 3.0, 9.0], 0.0, 10.0) == 6.0
    assert longest_gap([], 0.0, 10.0) == 10.0
    cuts = percentiles([float(n) for n in range(1, 101)])
    assert round(cuts["p50"]) == 50
    assert cuts["max"] == 100
