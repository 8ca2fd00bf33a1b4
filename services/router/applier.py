"""Applies the router's inbox in batches, in the order that makes each record count once.

The worker takes what the inbox has ready (up to a batch), applies each record in order to the
:class:`Engine`, and then, for the whole batch:

1. sends the case events, tag corrections, agent notices and hand-overs to other floors it
   produced together, and waits until the broker acknowledged every one;
2. writes the changed cases and agents to the tables (each once, however many records changed
   it) and waits until the broker acknowledged the changelog writes;
3. acknowledges the records.

The tables mark a record applied (a replay after a crash changes nothing twice), so they are
written only once the broker has the record's events: a worker killed in between replays the
records and publishes the same events again (their ids derive from the case and its version)
rather than never publishing them. The records are acknowledged last because a commit may pass
changes still in a producer's buffer. See docs/decisions/0001-acknowledgement-rules.md.

A record that cannot be read is dead-lettered. When anything else fails, the engine is
reloaded from the tables and the batch is applied again one record at a time, so a record
whose application fails is dead-lettered alone and the others are applied as usual.

What reaches the broker goes through :class:`Outputs`, so the order is tested with fakes
(``tests/router/test_applier.py``) as well as on the broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import structlog
from pydantic import TypeAdapter, ValidationError

from services.common.cases import SlaMetricName
from services.router import sla
from services.router.book import MOVED_PREFIX
from services.router.commands import Inbound
from services.router.engine import Engine, Outcome

log = structlog.get_logger(__name__)
INBOX = TypeAdapter[Inbound](Inbound)


class InboxRecord(Protocol):
    """An inbox record as taken from the topic (a faust event, or a fake)."""

    @property
    def value(self) -> bytes: ...


R = TypeVar("R", bound=InboxRecord)
R_contra = TypeVar("R_contra", bound=InboxRecord, contravariant=True)


@dataclass(frozen=True)
class Produced:
    """A record to send: its key and value as on the wire."""

    key: bytes
    value: bytes


@dataclass(frozen=True)
class ClockStopped:
    """A service-level clock a record stopped, as the metrics count it."""

    metric: str
    channel: str
    priority: str
    met: bool


@dataclass(frozen=True)
class Applied(Generic[R]):
    """One record applied and on the broker: what it was and what it did."""

    record: R
    message: Inbound
    outcome: Outcome
    seconds: float  # the engine's time on it
    clocks: tuple[ClockStopped, ...]


class Outputs(Protocol[R_contra]):
    """The broker side of the worker."""

    async def publish(
        self,
        events: Sequence[Produced],
        corrections: Sequence[Produced],
        notices: Sequence[Produced],
        handoffs: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Send case events, corrections, agent notices and hand-overs to other floors'
        inboxes; return once the broker acknowledged each one (raise when it refused one)."""

    def store(
        self, records: Sequence[R_contra], cases: Mapping[str, Any], agents: Mapping[str, Any]
    ) -> None:
        """Write the cases and agents these records changed to the tables (a case of None is
        deleted)."""

    async def stored(self) -> None:
        """Return once the broker acknowledged every table write made so far."""

    async def acknowledge(self, records: Sequence[R_contra]) -> None:
        """Mark the records done: their offsets may be committed."""

    async def dead_letter(self, record: R_contra, reason: str, error_type: str) -> None:
        """Send a record that cannot be applied to the dead-letter topic."""


class InboxApplier(Generic[R]):
    """Applies batches of inbox records: engine, then events, then tables, then acknowledge.

    ``engine()`` is the engine to apply to; ``reload()`` rebuilds it from the tables (after a
    failure the engine may be half-way through a change).
    """

    def __init__(
        self, outputs: Outputs[R], *, engine: Callable[[], Engine], reload: Callable[[], None]
    ) -> None:
        self.outputs = outputs
        self.engine = engine
        self.reload = reload

    async def apply(self, records: Sequence[R]) -> list[Applied[R]]:
        """Apply the records in order; return what each readable one did, once every output is
        on the broker and the records are acknowledged."""
        readable: list[tuple[R, Inbound]] = []
        for record in records:
            try:
                readable.append((record, INBOX.validate_json(record.value)))
            except ValidationError as exc:
                await self.outputs.dead_letter(record, first_error(exc), "ValidationError")
        try:
            done = await self._apply_together(readable)
        except Exception:
            log.warning("inbox batch failed; applying it again one record at a time")
            self.reload()
            done = []
            for one in readable:
                try:
                    done += await self._apply_together([one])
                except Exception as exc:  # a bug must not stop routing: dead-letter, go on
                    log.exception("inbox record failed")
                    reason = f"{type(exc).__name__}: {exc}"
                    await self.outputs.dead_letter(one[0], reason, type(exc).__name__)
                    self.reload()
        await self.outputs.acknowledge(records)
        return done

    async def _apply_together(self, readable: Sequence[tuple[R, Inbound]]) -> list[Applied[R]]:
        if not readable:
            return []
        engine = self.engine()
        done: list[Applied[R]] = []
        for record, message in readable:
            started = time.perf_counter()
            outcome = engine.apply(message, message.at)
            seconds = time.perf_counter() - started
            clocks = tuple(stopped_clocks(outcome, engine))
            done.append(Applied(record, message, outcome, seconds, clocks))
        outcomes = [applied.outcome for applied in done]
        await self.outputs.publish(
            events_of(outcomes),
            corrections_of(outcomes),
            notices_of(outcomes),
            handoffs_of(outcomes),
        )
        cases, agents = changes(outcomes, engine)
        self.outputs.store([record for record, _ in readable], cases, agents)
        await self.outputs.stored()
        return done


def events_of(outcomes: Iterable[Outcome]) -> list[Produced]:
    """The case events of these outcomes, in order, keyed by case id."""
    return [
        Produced(str(event.case_id).encode(), payload)
        for outcome in outcomes
        for event, payload in zip(outcome.events, outcome.payloads, strict=True)
    ]


def corrections_of(outcomes: Iterable[Outcome]) -> list[Produced]:
    """The tag corrections of these outcomes, in order, keyed by case id."""
    return [
        Produced(str(correction.case_id).encode(), correction.model_dump_json().encode())
        for outcome in outcomes
        for correction in outcome.corrections
    ]


def handoffs_of(outcomes: Iterable[Outcome]) -> list[tuple[str, bytes]]:
    """What these outcomes hand to other floors, in order: (floor, inbox record)."""
    return [
        (handoff.floor, handoff.message.model_dump_json().encode())
        for outcome in outcomes
        for handoff in outcome.handoffs
    ]


def notices_of(outcomes: Iterable[Outcome]) -> list[Produced]:
    """The agent notices of these outcomes, in order, keyed by agent id."""
    return [
        Produced(notice.agent_id.encode(), notice.model_dump_json().encode())
        for outcome in outcomes
        for notice in outcome.notices
    ]


def forgotten(outcome: Outcome) -> list[Any]:
    """The cases an outcome dropped from the routing state (past retention)."""
    return list(outcome.forgotten)


def changes(outcomes: Iterable[Outcome], engine: Engine) -> tuple[dict[str, Any], dict[str, Any]]:
    """The table writes for these outcomes, as the engine holds each case and agent now: a
    case or agent changed by several outcomes is written once; a forgotten case is None."""
    case_ids: dict[Any, bool] = {}  # case id -> forgotten, in first-changed order
    agent_ids: dict[str, None] = {}
    customers: dict[str, None] = {}  # whose Moved note changed
    for outcome in outcomes:
        for case_id in outcome.cases:
            case_ids.setdefault(case_id, False)
        for case_id in forgotten(outcome):
            case_ids[case_id] = True
        agent_ids.update(dict.fromkeys(outcome.agents))
        customers.update(dict.fromkeys(outcome.moved))
    cases: dict[str, Any] = {}
    for case_id, dropped in case_ids.items():
        record = engine.record(case_id)
        if record is not None:
            cases[str(case_id)] = record.model_dump(mode="json")
        elif dropped:
            cases[str(case_id)] = None
    for customer in customers:
        note = engine.book.moved.get(customer)
        cases[MOVED_PREFIX + customer] = note.model_dump(mode="json") if note else None
    agents: dict[str, Any] = {}
    for agent_id in agent_ids:
        agent_record = engine.agent_record(agent_id)
        if agent_record is not None:
            agents[agent_id] = agent_record.model_dump(mode="json")
    return cases, agents


def stopped_clocks(outcome: Outcome, engine: Engine) -> list[ClockStopped]:
    """The service-level clocks an outcome stopped (read right after it, before a later record
    changes the case), except next response, which is counted as it happens."""
    stopped: list[ClockStopped] = []
    for case_id, metric in outcome.clocks_stopped:
        record = engine.record(case_id)
        if record is None or metric == SlaMetricName.NEXT_RESPONSE:
            continue
        clock = record.clocks.get(metric)
        if clock is None:
            continue
        case = record.case
        met = bool(sla.met(clock))
        stopped.append(
            ClockStopped(metric.value, case.channel.value, case.base_priority.value, met)
        )
    return stopped


def first_error(exc: ValidationError) -> str:
    """A dead letter's reason for a record that does not parse: where, what, how many."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "invalid record"
    err = errors[0]
    where = ".".join(str(p) for p in err["loc"]) or "record"
    return f"invalid record: {where}: {err['msg']} ({len(errors)} errors)"
