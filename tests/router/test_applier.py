"""The inbox applier with fake outputs: a batch's events reach the broker before its table
writes, the table writes before the acknowledgement; a worker stopped at any step and a replay
of the same records publish the same events and change nothing twice; a record that cannot be
read or applied is dead-lettered alone. The same class runs on the broker in
``tests/router/test_service.py`` and ``tests/router/test_batches.py``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from services.router.applier import (
    ClockStopped,
    InboxApplier,
    JournalPart,
    Produced,
    journal,
    stored_state,
)
from services.router.commands import Action, ClassifiedIn, Inbound, Status, Tick
from services.router.engine import AgentRecord, CaseRecord, Engine
from tests.router.factories import T0, agent, command, engine, feedback


@dataclass(frozen=True)
class Record:
    """An inbox record as the applier takes it."""

    value: bytes


def record(message: Inbound) -> Record:
    return Record(message.model_dump_json().encode())


class FakeBroker:
    """Topics and tables in memory, with every step noted in order."""

    def __init__(self, *, refuse: bytes | None = None) -> None:
        self.steps: list[str] = []
        self.handed: list[Produced] = []  # every event handed over, acknowledged or not
        self.events: list[Produced] = []
        self.corrections: list[Produced] = []
        self.cases: dict[str, Any] = {}
        self.journal: dict[str, Any] = {}  # keys of the cases table, kept apart here
        self.agents: dict[str, Any] = {}
        self.acknowledged: list[Record] = []
        self.dead: list[tuple[Record, str]] = []
        self.refuse = refuse  # events whose payload holds this are refused
        self.hold = asyncio.Event()  # cleared: publishing waits (a worker stopped there)
        self.hold.set()
        self.cut_after: int | None = None  # a worker killed after this many table writes

    async def publish(
        self,
        events: Sequence[Produced],
        corrections: Sequence[Produced],
        notices: Sequence[Produced],
        handoffs: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self.handed += events
        await self.hold.wait()
        if self.refuse is not None and any(self.refuse in e.value for e in events):
            raise ValueError("refused by the broker")
        self.events += events
        self.corrections += corrections
        self.steps.append(f"events {len(events)}")

    def write_journal(self, records: Sequence[Record], parts: Sequence[JournalPart]) -> None:
        for part in parts:
            self.journal[part.key] = part.value
        self.steps.append(f"journal {len(parts)}")

    def store(
        self, records: Sequence[Record], cases: Mapping[str, Any], agents: Mapping[str, Any]
    ) -> None:
        # The changelogs' writes go out side by side, agents' and cases' (a kill cuts them).
        writes = [(self.agents, key, value) for key, value in agents.items()]
        writes += [(self.cases, key, value) for key, value in cases.items()]
        for n, (table, key, value) in enumerate(writes):
            if self.cut_after is not None and n >= self.cut_after:
                raise asyncio.CancelledError  # killed among the table writes
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        self.steps.append(f"tables {len(cases)} cases {len(agents)} agents")

    async def stored(self) -> None:
        await asyncio.sleep(0)
        self.steps.append("tables acknowledged")

    async def acknowledge(self, records: Sequence[Record]) -> None:
        self.acknowledged += records
        self.steps.append(f"acknowledged {len(records)}")

    async def dead_letter(self, record: Record, reason: str, error_type: str) -> None:
        self.dead.append((record, error_type))
        self.steps.append(f"dead letter {error_type}")


class Worker:
    """An engine with the applier and the fake broker, rebuilt from the tables as the worker
    is after a restart."""

    def __init__(self, broker: FakeBroker, build: Any) -> None:
        self.broker = broker
        self.build = build
        self.reloads = 0
        self.engine = self._from_tables()
        self.applier = InboxApplier(broker, engine=lambda: self.engine, reload=self.reload)

    def _from_tables(self) -> Engine:
        built: Engine = self.build()
        cases, agents = stored_state(
            [*self.broker.cases.items(), *self.broker.journal.items()], self.broker.agents.items()
        )
        built.reset(
            records=[CaseRecord.model_validate(v) for v in cases.values()],
            agents=[AgentRecord.model_validate(v) for v in agents.values()],
        )
        return built

    def reload(self) -> None:
        self.reloads += 1
        self.engine = self._from_tables()


def floor() -> Engine:
    return engine(agent("amy", skills={"delay": 5}), agent("bob", skills={"delay": 2}))


def case_ids(events: Sequence[Produced]) -> list[str]:
    return list(dict.fromkeys(e.key.decode() for e in events))


async def test_a_batch_goes_events_then_tables_then_acknowledgement() -> None:
    broker = FakeBroker()
    worker = Worker(broker, floor)
    batch = [record(feedback(customer=f"c-{n}")) for n in range(3)]
    done = await worker.applier.apply(batch)
    assert broker.steps == [
        "events 6",
        "journal 1",
        "tables acknowledged",
        "tables 3 cases 2 agents",
        "tables acknowledged",
        "acknowledged 3",
    ]
    assert broker.acknowledged == batch
    assert [d.record for d in done] == batch
    assert [e.type for d in done for e in d.outcome.events] == ["created", "offered"] * 3
    assert sorted(broker.cases) == sorted(case_ids(broker.events))
    for case_id, stored in broker.cases.items():
        live = worker.engine.record(uuid.UUID(case_id))
        assert live is not None
        assert stored == live.model_dump(mode="json")


async def test_a_case_changed_by_several_records_is_written_once_as_it_ends() -> None:
    broker = FakeBroker()
    worker = Worker(broker, floor)
    (created,) = await worker.applier.apply([record(feedback(customer="c-1"))])
    case_id = created.outcome.events[0].case_id
    offer = created.outcome.events[-1].case.offer
    assert offer is not None
    broker.steps.clear()
    accept = command(offer.agent_id, Action.ACCEPT, case_id, at=T0 + timedelta(seconds=5))
    respond = command(
        offer.agent_id, Action.RESPOND, case_id, chars=80, at=T0 + timedelta(minutes=1)
    )
    done = await worker.applier.apply([record(accept), record(respond)])
    assert broker.steps[:3] == ["events 2", "journal 1", "tables acknowledged"]
    assert broker.steps[3] == "tables 1 cases 1 agents"
    results = [d.outcome.result for d in done]
    assert all(r is not None and r.status == Status.OK for r in results)
    stored = CaseRecord.model_validate(broker.cases[str(case_id)])
    assert stored.case.assignee == offer.agent_id
    assert stored.case.first_response_at is not None
    assert done[1].clocks == (
        ClockStopped("first_response", "email", stored.case.base_priority, True),
    )


async def test_an_unreadable_record_is_dead_lettered_and_the_others_applied() -> None:
    broker = FakeBroker()
    worker = Worker(broker, floor)
    batch = [record(feedback(customer="c-1")), Record(b"{not json"), record(Tick(at=T0))]
    done = await worker.applier.apply(batch)
    assert broker.steps[0] == "dead letter ValidationError"
    assert broker.dead == [(batch[1], "ValidationError")]
    assert [d.record for d in done] == [batch[0], batch[2]]
    assert broker.acknowledged == batch
    assert worker.reloads == 0


class FailingEngine(Engine):
    """An engine with a bug: it fails half-way through one message."""

    def apply(self, message: Inbound, now: Any) -> Any:
        if isinstance(message, ClassifiedIn) and message.feedback.feedback.text == "boom":
            self.records.clear()  # half-way through a change
            raise RuntimeError("a bug")
        return super().apply(message, now)


def failing_floor() -> Engine:
    built = floor()
    return FailingEngine(built.roster, built.config, built.settings)


async def test_a_record_that_fails_is_dead_lettered_alone() -> None:
    broker = FakeBroker()
    worker = Worker(broker, failing_floor)
    batch = [
        record(feedback(customer="c-1")),
        record(feedback("boom", customer="c-2")),
        record(feedback(customer="c-3")),
    ]
    done = await worker.applier.apply(batch)
    assert broker.dead == [(batch[1], "RuntimeError")]
    assert [d.record for d in done] == [batch[0], batch[2]]
    assert broker.acknowledged == batch
    # The engine was reloaded from the tables: the failure lost nothing already applied.
    assert len(broker.cases) == 2
    assert {str(case_id) for case_id in worker.engine.records} == set(broker.cases)
    assert case_ids(broker.events) == list(broker.cases)
    assert worker.reloads == 2  # after the batch failed, and after the record failed


async def test_a_refused_event_dead_letters_its_record_only() -> None:
    broker = FakeBroker(refuse=b"far too long")
    worker = Worker(broker, floor)
    batch = [
        record(feedback(customer="c-1")),
        record(feedback("far too long", customer="c-2")),
        record(feedback(customer="c-3")),
    ]
    done = await worker.applier.apply(batch)
    assert [r for r, _ in broker.dead] == [batch[1]]
    assert [d.record for d in done] == [batch[0], batch[2]]
    assert len(broker.cases) == 2
    assert all(b"far too long" not in e.value for e in broker.events)
    # Nothing of the refused record reached the tables before its events were on the broker.
    assert sorted(broker.cases) == sorted(case_ids(broker.events))
    assert broker.acknowledged == batch


async def test_stopped_before_its_events_are_acknowledged_the_replay_publishes_them_again() -> None:
    broker = FakeBroker()
    worker = Worker(broker, floor)
    batch = [record(feedback(customer=f"c-{n}")) for n in range(3)]
    broker.hold.clear()
    stopped = asyncio.create_task(worker.applier.apply(batch))
    await asyncio.sleep(0.01)
    stopped.cancel()  # killed while the events are on their way
    with pytest.raises(asyncio.CancelledError):
        await stopped
    assert broker.cases == {}
    assert broker.acknowledged == []
    handed = list(broker.handed)
    assert len(handed) == 6

    # A new worker from the tables applies the same records again: the same events.
    broker.hold.set()
    again = Worker(broker, floor)
    await again.applier.apply(batch)
    assert broker.events == handed
    assert broker.acknowledged == batch


async def test_a_replay_after_the_tables_changes_nothing_twice() -> None:
    broker = FakeBroker()
    worker = Worker(broker, floor)
    first = [record(feedback(customer=f"c-{n}")) for n in range(3)]
    await worker.applier.apply(first)
    published = list(broker.events)
    tables = (dict(broker.cases), dict(broker.agents))

    # Killed after the tables, before the commit: a new worker reads the records again.
    again = Worker(broker, floor)
    done = await again.applier.apply(first)
    assert all(not d.outcome.events for d in done)
    assert all(d.outcome.duplicate for d in done)
    assert broker.events == published
    assert (broker.cases, broker.agents) == tables


async def test_killed_among_its_table_writes_the_replay_decides_as_the_first_run() -> None:
    """A kill among a batch's table writes leaves an agent's new load without the case that
    made it: replayed from there, the same message would be offered to someone else under the
    same event id. The batch's journal, written whole before them, puts the tables back at the
    batch's end: the replay publishes nothing, and the state is the first run's."""
    broker = FakeBroker()
    worker = Worker(broker, floor)
    batch = [record(feedback(customer=f"c-{n}")) for n in range(3)]
    broker.cut_after = 1  # amy's new load is written; nothing else
    with pytest.raises(asyncio.CancelledError):
        await worker.applier.apply(batch)
    published = list(broker.events)
    assert broker.acknowledged == []

    broker.cut_after = None
    again = Worker(broker, floor)
    done = await again.applier.apply(batch)
    assert all(d.outcome.duplicate for d in done)
    assert broker.events == published
    for agent_id in ("amy", "bob"):
        first, replayed = worker.engine.agent_record(agent_id), again.engine.agent_record(agent_id)
        assert first is not None
        assert replayed is not None
        assert replayed.model_dump() == first.model_dump()


async def test_a_journal_cut_short_is_not_laid_over_the_tables() -> None:
    cases = {"c-1": {"v": 1}}
    parts = journal(
        {"c-1": {"v": 2}, "c-2": {"v": 1}}, {"amy": {"load": 1}}, batch="b", max_bytes=40
    )
    assert len(parts) > 1
    stored = [*cases.items(), *((p.key, p.value) for p in parts)]
    assert stored_state(stored, []) == ({"c-1": {"v": 2}, "c-2": {"v": 1}}, {"amy": {"load": 1}})
    # The last part never reached the broker: none of that batch's writes were sent.
    assert stored_state(stored[:-1], []) == (cases, {})
    # A part left from an earlier, larger journal does not complete this one.
    stale = (parts[-1].key, {**parts[-1].value, "batch": "earlier"})
    assert stored_state([*stored[:-1], stale], []) == (cases, {})
