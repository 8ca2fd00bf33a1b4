"""The engine's state grows with the work in hand, not with history: resolved cases are
compressed once quiet and forgotten after the reopen window (and deleted from the worker's
table), and a tick reads only the entries that are due."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.common.cases import CaseEvent, CaseState
from services.common.messages import Channel
from services.router.commands import Action, Inbound, Labels, Status, Tick
from services.router.engine import CaseRecord, DueIndex, Engine, Outcome
from tests.router.factories import T0, agent, command, engine, feedback
from tests.router.test_engine import only_case, types

WINDOW = timedelta(days=7)
QUIET = timedelta(hours=1)


class Table:
    """The worker's cases table, written as the worker writes it from each outcome: the
    changed cases as the engine holds them, the forgotten ones deleted."""

    def __init__(self, router: Engine) -> None:
        self.router = router
        self.rows: dict[str, Any] = {}

    def apply(self, message: Inbound, now: datetime) -> Outcome:
        out = self.router.apply(message, now)
        for case_id in out.cases:
            record = self.router.record(case_id)
            if record is not None:
                self.rows[str(case_id)] = record.model_dump(mode="json")
        for case_id in out.forgotten:
            self.rows.pop(str(case_id), None)
        return out

    def tick(self, at: datetime) -> Outcome:
        return self.apply(Tick(at=at), at)

    def records(self) -> list[CaseRecord]:
        return [CaseRecord.model_validate(row) for row in self.rows.values()]


def worked(router: Engine, table: Table, *, customer: str, at: datetime) -> uuid.UUID:
    """A case opened by an e-mail, accepted, answered and resolved a few minutes later."""
    case_id = only_case(table.apply(feedback(message_id=f"<{customer}@x>", customer=customer), at))
    holder = router.case(case_id).offer.agent_id  # type: ignore[union-attr]
    table.apply(command(holder, Action.ACCEPT, case_id), at)
    table.apply(command(holder, Action.RESPOND, case_id), at + timedelta(minutes=1))
    table.apply(command(holder, Action.RESOLVE, case_id), at + timedelta(minutes=2))
    return case_id


def test_a_quiet_resolved_case_is_compressed_and_still_served_by_id() -> None:
    router = engine(agent("a"))
    table = Table(router)
    case_id = worked(router, table, customer="c1", at=T0)
    before = router.record(case_id)
    assert before is not None
    whole = before.model_dump(mode="json")
    assert case_id in router.records, "resolved moments ago: still whole, listed"

    out = table.tick(T0 + timedelta(minutes=2) + QUIET)
    assert out.compacted == [case_id]
    assert case_id not in router.records
    assert case_id in router.archive
    assert not out.cases, "compressing changes nothing the table holds"
    # Served by id exactly as it was, and the table still holds it whole.
    again = router.record(case_id)
    assert again is not None
    assert again.model_dump(mode="json") == whole
    assert router.case(case_id) == before.case
    assert table.rows[str(case_id)] == whole


def test_a_reply_within_the_reopen_window_reopens_a_compressed_case() -> None:
    router = engine(agent("a"))
    table = Table(router)
    case_id = worked(router, table, customer="c1", at=T0)
    table.tick(T0 + timedelta(hours=2))
    assert case_id in router.archive
    version = router.record(case_id).case.version  # type: ignore[union-attr]

    out = table.apply(
        feedback(in_reply_to="<c1@x>", customer="c1"), T0 + WINDOW - timedelta(minutes=1)
    )
    assert types(out) == ["reopened", "offered"]
    case = router.case(case_id)
    assert case is not None
    assert case.reopened == 1
    assert case.offer is not None
    assert case.offer.agent_id == "a"
    assert len(case.messages) == 2, "the case keeps its history"
    assert out.events[0].version == version + 1, "versions go on without a gap"
    assert case_id in router.records
    assert case_id not in router.archive
    # Resolved again, it settles again.
    table.apply(command("a", Action.ACCEPT, case_id), T0 + WINDOW)
    table.apply(command("a", Action.RESOLVE, case_id), T0 + WINDOW)
    assert table.tick(T0 + WINDOW + QUIET).compacted == [case_id]


def test_a_resolved_case_leaves_memory_and_the_table_after_the_reopen_window() -> None:
    router = engine(agent("a"))
    table = Table(router)
    case_id = worked(router, table, customer="c1", at=T0)
    resolved_at = T0 + timedelta(minutes=2)
    first_event = router.case(case_id).messages[0].event_id  # type: ignore[union-attr]
    table.tick(resolved_at + QUIET)
    table.tick(resolved_at + timedelta(days=1))  # the follow-up comes due
    assert str(case_id) in table.rows

    out = table.tick(resolved_at + WINDOW - timedelta(seconds=1))
    assert out.forgotten == [], "kept to the end of the window"
    out = table.tick(resolved_at + WINDOW)
    assert out.forgotten == [case_id]
    assert str(case_id) not in table.rows
    assert case_id not in router.records
    assert case_id not in router.archive
    assert router.case(case_id) is None
    assert first_event not in router.by_event
    assert case_id not in router.by_thread.values()
    assert router.next_due() is None, "nothing left to do"

    later = resolved_at + WINDOW + timedelta(minutes=1)
    out = table.apply(command("a", Action.CSAT, case_id, score=4, at=later), later)
    assert out.result is not None
    assert out.result.status == Status.NOT_FOUND
    out = table.apply(feedback(in_reply_to="<c1@x>", customer="c1"), later)
    assert types(out) == ["created", "offered"], "past the window a reply opens a new case"
    assert only_case(out) != case_id


def test_retention_longer_than_the_reopen_window_keeps_the_case_but_does_not_reopen() -> None:
    router = engine(agent("a"), reopen_window=timedelta(days=2), retention=timedelta(days=10))
    table = Table(router)
    case_id = worked(router, table, customer="c1", at=T0)
    table.tick(T0 + timedelta(days=3))
    out = table.apply(feedback(in_reply_to="<c1@x>", customer="c1"), T0 + timedelta(days=3))
    assert only_case(out) != case_id
    assert router.case(case_id) is not None
    boss = table.apply(command("a", Action.RESPOND, case_id), T0 + timedelta(days=3))
    assert boss.result is not None
    assert boss.result.status == Status.CONFLICT
    out = table.tick(T0 + timedelta(days=10, minutes=2))
    assert case_id in out.forgotten


def test_commands_on_a_compressed_case_work_on_the_whole_case() -> None:
    router = engine(agent("a"), agent("boss", tier="supervisor", presence="away"))
    table = Table(router)
    case_id = worked(router, table, customer="c1", at=T0)
    table.tick(T0 + timedelta(days=1, minutes=2))  # the follow-up comes due
    table.tick(T0 + timedelta(days=1, hours=12))
    assert case_id in router.archive
    at = T0 + timedelta(days=2)

    out = table.apply(command("boss", Action.CSAT, case_id, score=5, at=at), at)
    assert types(out) == ["csat_recorded"]
    assert out.events[0].case.csat == 5
    assert table.rows[str(case_id)]["case"]["csat"] == 5
    out = table.apply(
        command("boss", Action.RELABEL, case_id, labels=Labels(category="billing"), at=at), at
    )
    assert types(out) == ["relabelled"]
    assert [c.event_id for c in out.corrections] == [
        m.event_id
        for m in router.case(case_id).messages  # type: ignore[union-attr]
    ]
    # A repeated command is recognised on the compressed case too.
    table.tick(at + QUIET)
    assert case_id in router.archive
    repeat = command("boss", Action.CSAT, case_id, score=5, at=at)
    table.apply(repeat, at + QUIET)
    out = table.apply(repeat, at + QUIET)
    assert out.result is not None
    assert out.result.message == "already applied"


def test_the_follow_up_of_a_compressed_case_fires_once_on_the_whole_case() -> None:
    router = engine(agent("a"))
    table = Table(router)
    case_id = worked(router, table, customer="c1", at=T0)
    table.tick(T0 + timedelta(hours=2))
    assert case_id in router.archive
    due = T0 + timedelta(days=1, minutes=2)
    assert router.next_due() == due
    out = table.tick(due)
    assert types(out) == ["follow_up_due"]
    assert len(out.events[0].case.messages) == 1
    assert case_id in router.records, "changed: whole again for a while"
    assert types(table.tick(due + timedelta(hours=2))) == []
    assert case_id in router.archive


def test_the_table_holds_what_the_engine_keeps_and_a_restart_routes_the_same() -> None:
    router = engine(agent("a", channels={"email": 3}), agent("b", channels={"email": 3}))
    table = Table(router)
    ids = [
        worked(router, table, customer=f"c{n}", at=T0 + timedelta(days=n // 3, hours=n))
        for n in range(12)
    ]
    at = T0
    while at < T0 + timedelta(days=11):
        at += timedelta(hours=5)
        table.tick(at)
        assert set(table.rows) == {str(c) for c in router.kept()}
    assert not set(ids) & set(router.kept()), "all resolved long ago"
    # Cases in every stage, then a restart from the table.
    at = T0 + timedelta(days=20)
    recent = worked(router, table, customer="r1", at=at)
    quiet = worked(router, table, customer="r2", at=at - timedelta(days=3))
    open_id = only_case(table.apply(feedback(customer="r3"), at + timedelta(minutes=5)))
    now = at + timedelta(minutes=5)
    table.tick(now)
    assert set(table.rows) == {str(c) for c in (recent, quiet, open_id)}

    restored = Engine(router.roster, router.config, router.settings)
    restored.reset(records=table.records(), agents=list(router.agent_records.values()))
    assert set(restored.kept()) == set(router.kept())
    assert set(restored.records) == set(router.records)
    assert restored.next_due() == router.next_due()
    reply = feedback(in_reply_to="<r2@x>", customer="r2")
    assert types(restored.apply(reply, now)) == types(router.apply(reply, now))


def test_a_restart_drops_what_is_past_its_keep_and_the_next_tick_deletes_it() -> None:
    router = engine(agent("a"))
    table = Table(router)
    old = worked(router, table, customer="c1", at=T0)
    table.tick(T0 + timedelta(days=2))  # follow-up fired: nothing left to do for it
    rows = dict(table.rows)
    new = worked(router, table, customer="c2", at=T0 + timedelta(days=9))
    rows[str(new)] = table.rows[str(new)]  # a table that missed the deletion of ``old``

    restored = Engine(router.roster, router.config, router.settings)
    restored.reset(records=[CaseRecord.model_validate(r) for r in rows.values()], agents=())
    assert set(restored.kept()) == {new}
    assert restored.case(old) is None
    out = restored.apply(Tick(at=T0 + timedelta(days=9)), T0 + timedelta(days=9))
    assert out.forgotten == [old]


def test_a_tick_reads_only_the_entries_that_are_due(monkeypatch: pytest.MonkeyPatch) -> None:
    router = engine(*(agent(f"a{n}", channels={"email": 5}) for n in range(4)))
    table = Table(router)
    ids = [
        worked(router, table, customer=f"c{n}", at=T0 + timedelta(minutes=10 * n))
        for n in range(60)
    ]
    settled: list[uuid.UUID] = []
    ticked: list[uuid.UUID] = []
    settle, tick_case = Engine._settle, Engine._tick_case

    def spy_settle(self: Engine, case_id: uuid.UUID, now: datetime, out: Outcome) -> None:
        settled.append(case_id)
        settle(self, case_id, now, out)

    def spy_tick(self: Engine, record: CaseRecord, now: datetime, out: Outcome) -> int:
        ticked.append(record.case.case_id)
        return tick_case(self, record, now, out)

    monkeypatch.setattr(Engine, "_settle", spy_settle)
    monkeypatch.setattr(Engine, "_tick_case", spy_tick)

    class NoScan(dict[uuid.UUID, Any]):
        def _scan(self, *args: Any) -> Any:
            raise AssertionError("a tick scanned every record")

        __iter__ = values = items = keys = _scan

    router.records = NoScan(router.records)
    router.archive = NoScan(router.archive)

    # The first case has been quiet for an hour; the others resolved later.
    first_quiet = T0 + timedelta(minutes=2) + QUIET
    out = router.apply(Tick(at=first_quiet), first_quiet)
    assert settled == [ids[0]]
    assert ticked == []
    assert out.compacted == [ids[0]]
    # Nothing due: an idle tick touches nothing, however many cases are held.
    settled.clear()
    out = router.apply(Tick(at=first_quiet), first_quiet)
    assert settled == []
    assert ticked == []
    assert (out.fired, out.forgotten, out.compacted, out.duplicate) == (0, [], [], False)
    # Thirty minutes later three more are due, and only they are read.
    later = first_quiet + timedelta(minutes=30)
    router.apply(Tick(at=later), later)
    assert settled == ids[1:4]


def test_payloads_read_back_as_the_events_and_cached_deadlines_match_fresh_ones() -> None:
    router = engine(agent("a"), agent("s", tier="senior"))
    case_id = only_case(router.apply(feedback(), T0))
    outs = [
        router.apply(command("a", Action.ACCEPT, case_id), T0),
        router.apply(command("a", Action.WAIT, case_id), T0 + timedelta(minutes=1)),
        router.apply(command("a", Action.RESUME, case_id), T0 + timedelta(minutes=3)),
        router.apply(Tick(at=T0 + timedelta(minutes=20)), T0 + timedelta(minutes=20)),
        router.apply(command("s", Action.ACCEPT, case_id), T0 + timedelta(minutes=21)),
        router.apply(command("s", Action.RESOLVE, case_id), T0 + timedelta(minutes=22)),
    ]
    assert any(types(out) for out in outs[3:4]), "the tick fired a deadline"
    for out in outs:
        for event, payload in zip(out.events, out.payloads, strict=True):
            read = CaseEvent.model_validate_json(payload)
            assert read.event_id == event.event_id
            assert read.model_dump_json().encode() == payload
        record = router.record(case_id)
        assert record is not None
        fresh = CaseRecord.model_validate(record.model_dump())  # no cached views
        assert router.deadlines(fresh) == router.deadlines(record) == record.case.deadlines
        assert router._next_due_of(fresh) == router._next_due_of(record)


def test_a_long_case_keeps_only_its_messages_ids_and_still_knows_its_first() -> None:
    router = engine(agent("a"))
    first = feedback(conversation_id="conv-1", customer="c1", channel=Channel.CHAT)
    case_id = only_case(router.apply(first, T0))
    for n in range(1, 30):
        msg = feedback(conversation_id="conv-1", customer="c1", channel=Channel.CHAT)
        assert only_case(router.apply(msg, T0 + timedelta(seconds=n))) == case_id
    case = router.case(case_id)
    assert case is not None
    assert len(case.messages) == 20
    assert sum(1 for c in router.by_event.values() if c == case_id) == 20
    out = router.apply(first, T0 + timedelta(minutes=1))
    assert out.duplicate
    assert not out.events


def test_apply_takes_aware_times_only() -> None:
    router = engine(agent("a"))
    with pytest.raises(ValueError, match="timezone-aware"):
        router.apply(Tick(at=T0), T0.replace(tzinfo=None))


def test_due_index_keeps_one_entry_per_key_in_time_order() -> None:
    index = DueIndex()
    a, b, c = (uuid.UUID(int=n) for n in (1, 2, 3))
    index.set(a, 30.0)
    index.set(b, 10.0)
    index.set(c, 20.0)
    index.set(a, 5.0)  # moved, not added
    assert len(index) == 3
    assert index.first() == 5.0
    index.discard(c)
    index.discard(c)
    assert index.pop_due(4.0) is None
    assert index.pop_due(100.0) == a
    assert index.pop_due(100.0) == b
    assert index.pop_due(100.0) is None
    assert len(index) == 0
    assert index.first() is None


def test_the_resolved_case_is_listed_while_recent() -> None:
    router = engine(agent("a"), recent_resolved=timedelta(hours=8))
    table = Table(router)
    case_id = worked(router, table, customer="c1", at=T0)
    table.tick(T0 + timedelta(hours=7))
    assert router.records[case_id].case.state == CaseState.RESOLVED
    table.tick(T0 + timedelta(hours=8, minutes=2))
    assert case_id in router.archive
