"""Applies the router's inbox in batches, in the order that makes each record count once.

The worker takes what the inbox has ready (up to a batch), applies each record in order to the
:class:`Engine`, and then, for the whole batch:

1. sends the case events, tag corrections, agent notices and hand-overs to other floors it
   produced together, and waits until the broker acknowledged every one;
2. writes the batch's journal: every case and agent it changed, as they are at its end, in one
   record of the cases table (a few, for a very large batch), and waits until the broker
   acknowledged it;
3. writes the changed cases and agents to the tables (each once, however many records changed
   it) and waits until the broker acknowledged the changelog writes;
4. acknowledges the records.

The tables mark a record applied (a replay after a crash changes nothing twice), so they are
written only once the broker has the record's events: a worker killed in between replays the
records and publishes the same events again (their ids derive from the case and its version)
rather than never publishing them. The records are acknowledged last because a commit may pass
changes still in a producer's buffer. See docs/decisions/0001-acknowledgement-rules.md.

The table writes of a batch are many records on two changelogs, and a worker killed among them
leaves some written and some not: an agent's new load without the case that made it, say. A
replay from there would decide differently from the first run and publish another change under
the same event id. The journal is written whole before any of them, so whoever rebuilds the
engine from the tables lays the last batch's journal over them (:func:`stored_state`) and finds
the batch either wholly applied or not at all.

A record that cannot be read is dead-lettered. When anything else fails, the engine is
reloaded from the tables and the batch is applied again one record at a time, so a record
whose application fails is dead-lettered alone and the others are applied as usual.

What reaches the broker goes through :class:`Outputs`, so the order is tested with fakes
(``tests/router/test_applier.py``) as well as on the broker.
"""

from __future__ import annotations

import json
import time
import uuid
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
JOURNAL_PREFIX = "journal:"  # cases-table keys of the last batch's journal
DEFAULT_JOURNAL_BYTES = 900_000  # the most one journal record holds (under a produce request)
JOURNAL_FRAME_BYTES = 200  # a journal record's batch id and part numbers, well over


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


@dataclass(frozen=True)
class JournalPart:
    """One record of a batch's journal: its key in the cases table, its value, and the value's
    JSON as sent."""

    key: str
    value: dict[str, Any]
    data: bytes


def journal(
    cases: Mapping[str, Any], agents: Mapping[str, Any], *, batch: str, max_bytes: int
) -> list[JournalPart]:
    """A batch's table changes as journal records of at most ``max_bytes`` each: one, but for
    a very large batch (a single change larger than that is a record of its own)."""
    entries = [("cases", key, value) for key, value in cases.items()]
    entries += [("agents", key, value) for key, value in agents.items()]
    whole = _journal_value(entries, batch, 0, 1)
    data = _json(whole)
    if len(data) <= max_bytes or len(entries) <= 1:
        return [JournalPart(f"{JOURNAL_PREFIX}0", whole, data)]
    chunks = _fitting(entries, max_bytes - JOURNAL_FRAME_BYTES)
    values = [_journal_value(chunk, batch, n, len(chunks)) for n, chunk in enumerate(chunks)]
    return [JournalPart(f"{JOURNAL_PREFIX}{n}", v, _json(v)) for n, v in enumerate(values)]


def _fitting(
    entries: Sequence[tuple[str, str, Any]], max_bytes: int
) -> list[Sequence[tuple[str, str, Any]]]:
    """The entries in consecutive chunks whose journal JSON fits ``max_bytes`` (a single entry
    is a chunk whatever its size)."""
    if len(entries) <= 1 or len(_json(_journal_value(entries, "", 0, 0))) <= max_bytes:
        return [entries]
    half = len(entries) // 2
    return _fitting(entries[:half], max_bytes) + _fitting(entries[half:], max_bytes)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _journal_value(
    entries: Sequence[tuple[str, str, Any]], batch: str, part: int, parts: int
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "batch": batch,
        "part": part,
        "parts": parts,
        "cases": {},
        "agents": {},
    }
    for kind, key, change in entries:
        value[kind][key] = change
    return value


def stored_state(
    cases: Iterable[tuple[str, Any]], agents: Iterable[tuple[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cases and agents as the tables hold them, with the last batch's journal laid over
    them when it is whole: that batch's table writes may have been cut short. A journal with a
    part missing was itself cut short, and none of its batch's writes were sent."""
    stored_cases: dict[str, Any] = {}
    parts: dict[int, Any] = {}
    for key, value in cases:
        if key.startswith(JOURNAL_PREFIX):
            if isinstance(value, dict) and isinstance(value.get("part"), int):
                parts[value["part"]] = value
        else:
            stored_cases[key] = value
    stored_agents = dict(agents)
    head = parts.get(0)
    if head is None:
        return stored_cases, stored_agents
    whole = [parts.get(n) for n in range(int(head.get("parts", 0)))]
    if not whole or any(p is None or p.get("batch") != head.get("batch") for p in whole):
        return stored_cases, stored_agents
    for part in whole:
        assert part is not None
        for target, changes in ((stored_cases, part["cases"]), (stored_agents, part["agents"])):
            for key, value in changes.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
    return stored_cases, stored_agents


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

    def write_journal(self, records: Sequence[R_contra], parts: Sequence[JournalPart]) -> None:
        """Write these records' journal to the cases table, replacing the last one."""

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
        self,
        outputs: Outputs[R],
        *,
        engine: Callable[[], Engine],
        reload: Callable[[], None],
        max_journal_bytes: int = DEFAULT_JOURNAL_BYTES,
    ) -> None:
        self.outputs = outputs
        self.engine = engine
        self.reload = reload
        self.max_journal_bytes = max_journal_bytes

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
        if cases or agents:  # a batch that changed nothing leaves the last journal in place
            records = [record for record, _ in readable]
            batch = uuid.uuid4().hex
            parts = journal(cases, agents, batch=batch, max_bytes=self.max_journal_bytes)
            self.outputs.write_journal(records, parts)
            await self.outputs.stored()
            self.outputs.store(records, cases, agents)
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
