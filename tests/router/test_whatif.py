"""What-if staffing: a recorded period replayed under the recorded and a changed roster.

The recordings here are made by the simulation itself: the case events its engine published
(what the router puts on ``cases.events``) are the recording, so a replay under the same roster
and policy must make the same decisions.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner

from services.cli import main
from services.common.cases import CaseEvent, CaseEventType, SlaMetricName
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.messages import Channel, CustomerTier
from services.common.topics import cases_events
from services.router import whatif
from services.router.commands import Action, Inbound
from services.router.engine import Engine, EngineSettings, Outcome
from services.router.roster import Roster, parse_roster
from services.router.simulation import Arrival, HandlingModel, SimulationResult, simulate
from tests.router.factories import SLA_YAML, T0, agent, command, feedback, sla_config

SETTINGS = EngineSettings(offer_timeout=timedelta(seconds=30))
TEAMS: list[dict[str, Any]] = [
    {"id": "care", "name": "Care", "categories": ["product_fault", "delay", "billing"]},
    {"id": "trust", "name": "Trust", "categories": ["trust_privacy"]},
]
CATEGORIES = ("delay", "product_fault", "billing", "trust_privacy")
CHANNELS = (Channel.EMAIL, Channel.CHAT, Channel.SOCIAL)
# Room for two hostile cases on e-mail, one on chat or social (hostile cases weigh 2).
CHANNEL_ROOM = {"email": 4, "chat": 2, "social": 2}


def roster_data(care: int = 2, trust: int = 1) -> dict[str, Any]:
    agents = [agent(f"care{i}", channels=CHANNEL_ROOM) for i in range(care)]
    # A senior takes what the frontline escalates on a breach.
    agents.append(agent("lead", tier="senior", channels=CHANNEL_ROOM))
    agents += [
        agent(
            f"trust{i}",
            team="trust",
            skills={"trust_privacy": 4},
            channels=CHANNEL_ROOM,
        )
        for i in range(trust)
    ]
    return {"default_team": "care", "teams": TEAMS, "agents": agents}


def roster(care: int = 2, trust: int = 1) -> Roster:
    return parse_roster(roster_data(care, trust))


def trace(seed: int = 7, count: int = 90) -> list[Arrival]:
    """Two hours of arrivals on several channels and categories, a burst above capacity in
    the middle, some customers writing again in the thread of their first message."""
    rng = random.Random(seed)
    arrivals: list[Arrival] = []
    at = T0
    for n in range(count):
        burst = count // 3 <= n < count // 2
        at += timedelta(seconds=rng.expovariate(1 / (20 if burst else 120)))
        channel = rng.choice(CHANNELS)
        message = feedback(
            f"Complaint number {n}",
            customer=f"cust-{n}",
            channel=channel,
            category=rng.choice(CATEGORIES),
            difficult=rng.choice(("none", "none", "angry", "demanding")),
            sentiment_score=round(rng.uniform(-1, 0.2), 2),
            tier=rng.choice(list(CustomerTier)),
            amounts=(float(rng.choice((0, 20, 80))),) if rng.random() < 0.3 else (),
            message_id=f"<m{n}@example.com>",
            public_reach=rng.choice((None, 500, 50_000)) if channel == Channel.SOCIAL else None,
            repeat=rng.random() < 0.2,
            at=at,
        )
        arrivals.append(
            Arrival(at=at, feedback=message.feedback, handling_s=rng.choice((None, 300, 900)))
        )
        if rng.random() < 0.25:  # the customer writes again, in the thread
            later = at + timedelta(seconds=rng.uniform(30, 600))
            reply = feedback(
                f"Any news on complaint {n}?",
                customer=f"cust-{n}",
                channel=channel,
                category=message.feedback.category.label,
                difficult="angry",
                sentiment_score=-0.9,
                in_reply_to=f"<m{n}@example.com>",
                at=later,
            )
            arrivals.append(Arrival(at=later, feedback=reply.feedback))
    return sorted(arrivals, key=lambda a: a.at)


HANDLING = HandlingModel(median_s={}, default_s=600.0, seed=3)


@pytest.fixture
def recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[SimulationResult, whatif.Recording]:
    """The test trace simulated under the recorded roster (two frontline agents and a senior
    in care, one agent in trust), with the case events its engine published: what the router
    puts on cases.events (the engine's own ``apply`` is called, its outcome only read)."""
    events: list[CaseEvent] = []
    apply = Engine.apply

    def published(self: Engine, message: Inbound, now: Any) -> Outcome:
        out = apply(self, message, now)
        events.extend(CaseEvent.model_validate_json(payload) for payload in out.payloads)
        return out

    with monkeypatch.context() as patch:
        patch.setattr(Engine, "apply", published)
        result = simulate(trace(), roster(), sla_config(), SETTINGS, HANDLING)
    return result, whatif.select_period(events)


def test_a_replay_under_the_recorded_roster_makes_the_recorded_decisions(
    recorded: tuple[SimulationResult, whatif.Recording],
) -> None:
    original, recording = recorded
    arrivals = whatif.arrivals_of(recording)
    assert len(arrivals) == len(trace())
    assert whatif.respond_after(recording) == timedelta(seconds=45)  # the simulation's
    # Each spell of work resolved has its handling time.
    assert sum(a.handling_s is not None for a in arrivals) == original.events["resolved"]
    replay = simulate(arrivals, roster(), sla_config(), SETTINGS, whatif.handling_model(arrivals))
    assert original.assignments, "the trace gives the agents work"
    assert replay.assignments == original.assignments
    as_ended = {
        c.case_id: (c.team, c.priority, c.priority_score, c.language, c.hostile, c.remedy, c.state)
        for c in original.cases
    }
    assert {
        c.case_id: (c.team, c.priority, c.priority_score, c.language, c.hostile, c.remedy, c.state)
        for c in replay.cases
    } == as_ended

    result = whatif.what_if(
        recording,
        roster=roster(),
        config=sla_config(),
        new_roster=roster(),
        new_config=sla_config(),
        settings=SETTINGS,
    )
    # What happened and the replays, summed up the same way, agree.
    assert result.recorded.breaches > 0, "the burst breaches service levels"
    for run in (result.baseline, result.changed):
        assert run.attainment == result.recorded.attainment
        assert run.breaches == result.recorded.breaches
        assert run.waits_s == pytest.approx(result.recorded.waits_s)
    # The replays side by side in two processes give the same answer.
    forked = whatif.what_if(
        recording,
        roster=roster(),
        config=sla_config(),
        new_roster=roster(care=3),
        new_config=sla_config(),
        settings=SETTINGS,
        parallel=True,
    )
    assert forked.baseline == result.baseline
    assert forked.changed.breaches < forked.baseline.breaches
    # Utilisation over the period, counted from the events and by the simulation, agrees.
    assert set(result.recorded.utilisation) == {"care0", "care1", "lead", "trust0"}
    assert result.baseline.utilisation == pytest.approx(result.recorded.utilisation, rel=1e-3)


def test_adding_agents_never_adds_breaches(
    recorded: tuple[SimulationResult, whatif.Recording],
) -> None:
    _, recording = recorded
    breaches: list[int] = []
    waits: list[float] = []
    # One agent more at each step, in either team.
    for care, trust in ((2, 1), (3, 1), (3, 2), (4, 2), (5, 2)):
        result = whatif.what_if(
            recording,
            roster=roster(),
            config=sla_config(),
            new_roster=roster(care=care, trust=trust),
            new_config=sla_config(),
            settings=SETTINGS,
        )
        breaches.append(result.changed.breaches)
        p90 = result.changed.wait_percentile(0.9)
        assert p90 is not None
        waits.append(p90)
    assert breaches == sorted(breaches, reverse=True), breaches
    assert breaches[-1] < breaches[0], "more agents answer the burst sooner"
    assert waits[-1] < waits[0]


def test_a_period_keeps_the_cases_opened_in_it_each_event_once(
    recorded: tuple[SimulationResult, whatif.Recording],
) -> None:
    _, recording = recorded
    events = recording.events
    since, until = T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)
    opened = {
        e.case_id for e in events if e.type == CaseEventType.CREATED and since <= e.at < until
    }
    period = whatif.select_period([*events, *events[:50]], since=since, until=until)
    assert {e.case_id for e in period.events} == opened
    assert all(e.at < until for e in period.events)
    assert len({e.event_id for e in period.events}) == len(period.events)
    # A clock still running at the end of a recording counts once it is past due then.
    created = next(e for e in events if e.type == CaseEventType.CREATED)
    (due,) = [d.due_at for d in created.case.deadlines if d.metric == SlaMetricName.FIRST_RESPONSE]
    assert due is not None

    def breaches(as_of: datetime) -> int:
        return whatif.summarise("r", [created.case], [], [], {}, as_of=as_of).breaches

    assert (breaches(due - timedelta(seconds=1)), breaches(due)) == (0, 1)
    # Cases opened before the period are not replayed; those seen without their opening are
    # counted as left out.
    unopened = [e for e in events if e.type != CaseEventType.CREATED]
    partial = whatif.select_period(unopened, since=since, until=until)
    assert partial.events == []
    assert partial.incomplete > 0


def test_a_reply_reopens_its_case_in_the_replay_with_its_own_handling_time() -> None:
    first = feedback(
        "Where is my refund?", customer="c1", category="billing", message_id="<a@x>", at=T0
    )
    reply = feedback(
        "Still nothing.",
        customer="c1",
        category="billing",
        difficult="angry",
        in_reply_to="<a@x>",
        at=T0,
    )
    events: list[CaseEvent] = []
    engine = Engine(roster(care=1, trust=0), sla_config(), SETTINGS)

    def run(message: Inbound, minutes: float) -> None:
        out = engine.apply(message, T0 + timedelta(minutes=minutes))
        events.extend(CaseEvent.model_validate_json(p) for p in out.payloads)

    run(first, 0)
    case_id = events[0].case_id
    run(command("care0", Action.ACCEPT, case_id), 1)
    run(command("care0", Action.RESOLVE, case_id, note="refunded"), 11)
    run(reply, 20)
    run(command("care0", Action.ACCEPT, case_id), 21)
    run(command("care0", Action.RESOLVE, case_id, note="refunded again"), 26)
    assert any(e.type == CaseEventType.REOPENED for e in events)

    arrivals = whatif.arrivals_of(whatif.select_period(events))
    assert [a.at for a in arrivals] == [T0, T0 + timedelta(minutes=20)]
    assert [a.handling_s for a in arrivals] == [pytest.approx(600), pytest.approx(300)]
    rebuilt = arrivals[0].feedback
    assert rebuilt.event_id == first.feedback.event_id
    assert (rebuilt.category, rebuilt.sentiment_score) == (
        first.feedback.category,
        first.feedback.sentiment_score,
    )
    assert rebuilt.facts.language == "en"
    assert arrivals[1].feedback.difficult.label == "angry"

    replay = simulate(arrivals, roster(care=1, trust=0), sla_config(), SETTINGS, HANDLING)
    (case,) = replay.cases
    assert (case.case_id, case.reopened, case.hostile) == (case_id, 1, True)


# --------------------------------------------------------------------------- the command


def write_setup(tmp_path: Path, recording: whatif.Recording) -> dict[str, Path]:
    files = {
        "events": tmp_path / "period.jsonl",
        "roster": tmp_path / "roster.yaml",
        "new_roster": tmp_path / "more-care.yaml",
        "sla": tmp_path / "sla.yaml",
    }
    with files["events"].open("w") as sink:
        whatif.write_events(recording, sink)
    files["roster"].write_text(yaml.safe_dump(roster_data()))
    files["new_roster"].write_text(yaml.safe_dump(roster_data(care=4)))
    files["sla"].write_text(SLA_YAML)
    return files


def test_the_command_replays_an_exported_period_side_by_side(
    recorded: tuple[SimulationResult, whatif.Recording], tmp_path: Path
) -> None:
    _, recording = recorded
    files = write_setup(tmp_path, recording)
    with files["events"].open("a") as sink:
        sink.write("{not a case event}\n")
    plot, copy = tmp_path / "whatif.png", tmp_path / "copy.jsonl"
    result = CliRunner().invoke(
        main,
        [
            *("whatif", "--from", str(files["events"]), "--roster", str(files["new_roster"])),
            *("--recorded-roster", str(files["roster"]), "--recorded-sla", str(files["sla"])),
            *("--plot", str(plot), "--export", str(copy)),
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.output
    for title in ("Service levels met", "The floor", "Agent utilisation"):
        assert title in out
    assert "1 unreadable records skipped" in out
    assert "replay, new roster" in out
    for metric in (SlaMetricName.FIRST_RESPONSE, SlaMetricName.RESOLUTION):
        assert metric.value in out
    breaches = next(line for line in out.splitlines() if "breaches" in line)
    counts = [int(cell) for cell in breaches.replace("│", " ").split()[1:]]
    assert counts[0] == counts[1] > counts[2]
    assert "care3" in out  # an agent only the new roster has
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(copy.read_text().splitlines()) == len(recording.events)


def test_the_command_exports_a_period_and_refuses_what_it_cannot_replay(
    recorded: tuple[SimulationResult, whatif.Recording],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, recording = recorded
    files = write_setup(tmp_path, recording)
    out = tmp_path / "hour.jsonl"
    since, until = "2026-11-23T10:30:00", "2026-11-23T11:30:00+00:00"
    runner = CliRunner()
    done = runner.invoke(
        main,
        [
            *("whatif", "export", "--from", str(files["events"])),
            *("--since", since, "--until", until, "--out", str(out)),
        ],
    )
    assert done.exit_code == 0, done.output
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert kept
    assert all("2026-11-23T10:30" <= e["case"]["created_at"] < "2026-11-23T11:30" for e in kept)

    no_source = runner.invoke(main, ["whatif", "--roster", str(files["new_roster"])])
    assert no_source.exit_code == 2
    assert "--from" in no_source.output
    no_change = runner.invoke(main, ["whatif", "--from", str(files["events"])])
    assert no_change.exit_code == 2
    assert "--roster" in no_change.output
    missing = runner.invoke(
        main,
        [
            *("whatif", "--from", str(tmp_path / "nope.jsonl"), "--sla", str(files["sla"])),
            *("--recorded-roster", str(files["roster"]), "--recorded-sla", str(files["sla"])),
        ],
    )
    assert missing.exit_code == 2
    assert "neither cases.events nor a file" in missing.output
    elsewhere = roster_data()
    elsewhere["teams"] = [{**team, "calendar": "emea"} for team in TEAMS]
    (tmp_path / "emea.yaml").write_text(yaml.safe_dump(elsewhere))
    no_calendar = runner.invoke(
        main,
        [
            *("whatif", "--from", str(files["events"]), "--roster", str(tmp_path / "emea.yaml")),
            *("--recorded-roster", str(files["roster"]), "--recorded-sla", str(files["sla"])),
        ],
    )
    assert no_calendar.exit_code == 1
    assert "calendar 'emea', which is not defined" in no_calendar.output
    find_spec = importlib.util.find_spec
    with monkeypatch.context() as patch:  # an installation without the train extra
        patch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *args: None if name == "matplotlib" else find_spec(name, *args),
        )
        no_plot = runner.invoke(
            main,
            [
                *("whatif", "--from", str(files["events"]), "--sla", str(files["sla"])),
                *("--plot", str(tmp_path / "p.png")),
            ],
        )
    assert no_plot.exit_code == 1
    assert "--plot needs matplotlib, which comes with the train extra" in no_plot.output
    empty = runner.invoke(
        main,
        [
            *("whatif", "--from", str(files["events"]), "--roster", str(files["new_roster"])),
            *("--recorded-roster", str(files["roster"]), "--recorded-sla", str(files["sla"])),
            *("--since", "2030-01-01"),
        ],
    )
    assert empty.exit_code == 1
    assert "no case was opened" in empty.output


# --------------------------------------------------------------------------- the topic


async def publish(kafka: KafkaSettings, events: list[CaseEvent]) -> None:
    """The events on cases.events as the router sends them: keyed by case id, each record
    stamped with the time of its event, then a record that is not a case event, stamped
    now."""
    await ensure_topics(kafka, [cases_events])
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all")
    await producer.start()
    try:
        topic = kafka.topic(cases_events)
        for event in events:
            await producer.send_and_wait(
                topic,
                event.model_dump_json().encode(),
                key=str(event.case_id).encode(),
                timestamp_ms=int(event.at.timestamp() * 1000),
            )
        await producer.send_and_wait(topic, b"{not a case event", key=b"k")
    finally:
        await producer.stop()


def test_a_period_is_read_from_the_topic_on_the_broker(
    recorded: tuple[SimulationResult, whatif.Recording],
    kafka: KafkaSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, recording = recorded
    asyncio.run(publish(kafka, recording.events))
    since, until = T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)
    read = asyncio.run(whatif.read_topic(kafka, since=since, until=until, timeout_s=20))
    expected = whatif.select_period(recording.events, since=since, until=until)
    assert read.events == expected.events
    # The read stops at the period's end: the record after it is not reached. (Where it starts
    # cannot be told here: the embedded broker finds offsets by the time it appended them.)
    assert read.unreadable == 0
    everything = asyncio.run(whatif.read_topic(kafka, timeout_s=20))
    assert everything.events == recording.events
    assert everything.unreadable == 1

    files = write_setup(tmp_path, recording)
    monkeypatch.setenv("TRIAGE_KAFKA_BOOTSTRAP", kafka.bootstrap)
    monkeypatch.setenv("TRIAGE_KAFKA_TOPIC_PREFIX", kafka.topic_prefix)
    result = CliRunner().invoke(
        main,
        [
            *("whatif", "--from", "cases.events", "--roster", str(files["new_roster"])),
            *("--recorded-roster", str(files["roster"]), "--recorded-sla", str(files["sla"])),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{recording.cases} cases" in result.output
    assert "The floor" in result.output
