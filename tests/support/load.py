"""What drives the stack in the fault and load runs: customers posting at a steady rate through
the ingest API, simulated agents working their offers through the agent API, a reader that
follows a topic as it is written, and a sampler of each process's memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.demo.traffic import CHANNEL_WEIGHTS, load_samples
from services.ingest.settings import DEV_API_KEY
from services.router.roster import development_tokens, load_roster
from tests.support.stack import rss_bytes

# ---------------------------------------------------------------------- customers


@dataclass
class Posted:
    """One source event and every attempt to post it (times from ``time.time()``)."""

    source_id: str
    channel: str
    customer: str
    scheduled_at: float
    attempts: list[tuple[float, float, str]] = field(default_factory=list)
    event_id: str | None = None
    accepted_at: float | None = None

    @property
    def sent_at(self) -> float:
        """When the first attempt was sent."""
        return self.attempts[0][0] if self.attempts else self.scheduled_at

    @property
    def accepted(self) -> bool:
        """Ingest answered 202 (or 200 for a repeat of an accepted attempt)."""
        return self.event_id is not None


def make_event(
    serial: int, run_id: str, rng: random.Random, texts: dict[str, list[str]], customers: int
) -> dict[str, Any]:
    """A canonical event from the project's corpus; no replies in threads (so no case reopens)."""
    channel = rng.choices(list(CHANNEL_WEIGHTS), weights=list(CHANNEL_WEIGHTS.values()))[0]
    customer = rng.randrange(customers)
    roll = rng.random()
    tier = "vip" if roll < 0.05 else "premium" if roll < 0.2 else "standard"
    body: dict[str, Any] = {
        "id": f"{run_id}-{serial}",
        "channel": channel,
        "customer": {"id": f"{run_id}-c{customer}", "tier": tier, "language": "en"},
        "text": rng.choice(texts.get(channel) or texts["*"]),
    }
    if channel == "email":
        body["subject"] = "About my order"
        body["thread"] = {"message_id": f"<{run_id}.{serial}@mail.example>"}
    elif channel == "chat":
        body["thread"] = {"conversation_id": f"{run_id}-chat-{serial}"}
    elif channel == "social":
        body["social"] = {
            "network": "x",
            "handle": f"@{run_id}c{customer}",
            "public": rng.random() < 0.6,
            "followers": rng.choice([50, 800, 20_000]),
            "kind": "post",
        }
    return body


def corpus_texts(max_words: int | None = None) -> dict[str, list[str]]:
    """Texts of the labelled corpus by channel (``*``: all)."""
    texts: dict[str, list[str]] = {"*": []}
    for sample in load_samples():
        if max_words is not None and len(sample.text.split()) > max_words:
            continue
        texts["*"].append(sample.text)
        if sample.channel:
            texts.setdefault(sample.channel, []).append(sample.text)
    return texts


class Customers:
    """Posts ``count`` events at ``rate`` a second on a fixed schedule (open loop: a slow answer
    does not delay the next post), retrying refused ones as a platform would."""

    def __init__(
        self,
        ingest_url: Callable[[], str],
        *,
        rate: float,
        count: int,
        run_id: str,
        seed: int = 7,
        customers: int | None = None,
        max_in_flight: int = 200,
        retry_after_s: float = 1.0,
        max_words: int | None = None,
    ) -> None:
        self.ingest_url = ingest_url
        self.rate = rate
        self.count = count
        self.run_id = run_id
        self.rng = random.Random(seed)
        self.customers = customers or max(20, count // 3)
        self.texts = corpus_texts(max_words)
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.posted: list[Posted] = []
        self.statuses: Counter[str] = Counter()
        self.retrying = True
        self.started_at = 0.0
        self.finished_at = 0.0
        self.late_s = 0.0

    async def run(self) -> None:
        """Post everything on schedule; return when every post has its final answer."""
        headers = {"Authorization": f"Bearer {DEV_API_KEY}"}
        # Idle connections are dropped before the server's 5 s keep-alive ends, so no post goes
        # out on a connection the server is closing (a client-side race, not an ingest fault).
        limits = httpx.Limits(
            max_connections=self.max_in_flight, max_keepalive_connections=64, keepalive_expiry=2
        )
        gate = asyncio.Semaphore(self.max_in_flight)
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            tasks: list[asyncio.Task[None]] = []
            start = loop.time()
            self.started_at = time.time()
            for serial in range(self.count):
                due = start + serial / self.rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    self.late_s = max(self.late_s, -delay)
                body = make_event(serial, self.run_id, self.rng, self.texts, self.customers)
                item = Posted(
                    source_id=body["id"],
                    channel=body["channel"],
                    customer=body["customer"]["id"],
                    scheduled_at=time.time(),
                )
                self.posted.append(item)
                await gate.acquire()
                task = asyncio.create_task(self._post(http, headers, body, item, gate))
                tasks.append(task)
            self.finished_at = time.time()
            await asyncio.gather(*tasks)

    async def _post(
        self,
        http: httpx.AsyncClient,
        headers: dict[str, str],
        body: dict[str, Any],
        item: Posted,
        gate: asyncio.Semaphore,
    ) -> None:
        try:
            while True:
                sent = time.time()
                try:
                    response = await http.post(
                        f"{self.ingest_url()}/v1/feedback", json=body, headers=headers
                    )
                    outcome = str(response.status_code)
                except httpx.HTTPError as exc:
                    response = None
                    outcome = type(exc).__name__
                answered = time.time()
                item.attempts.append((sent, answered, outcome))
                self.statuses[outcome] += 1
                if response is not None and response.status_code in (200, 202):
                    item.event_id = str(response.json()["event_id"])
                    item.accepted_at = answered
                    return
                if response is not None and response.status_code not in (429, 503):
                    return  # refused for good: counted, not retried
                if not self.retrying:
                    return
                await asyncio.sleep(self.retry_after_s)
        finally:
            gate.release()

    @property
    def achieved_rate(self) -> float:
        """Posts a second actually sent."""
        span = self.finished_at - self.started_at
        return len(self.posted) / span if span > 0 else 0.0


# ---------------------------------------------------------------------- agents


@dataclass
class _Plan:
    action: str
    at: float
    key: str
    body: dict[str, Any] | None = None


class Agents:
    """The development roster's agents, each a task: accept every offer after a short think,
    reply, then resolve. Commands carry an Idempotency-Key, so one retried after a router
    crash or failover applies once. Agents talk to whichever router worker is active."""

    def __init__(
        self,
        router_bases: Callable[[], list[str]],
        *,
        poll_s: float = 0.5,
        think_s: tuple[float, float] = (0.2, 1.0),
        respond_s: tuple[float, float] = (0.5, 2.0),
        resolve_s: tuple[float, float] = (1.0, 4.0),
        seed: int = 11,
        transfers: Mapping[str, str] | None = None,
        transfer_share: float = 0.0,
    ) -> None:
        self.router_bases = router_bases
        # A share of the accepted cases is transferred, from the agent's team to the team
        # ``transfers`` names, instead of replied to.
        self.transfers = dict(transfers or {})
        self.transfer_share = transfer_share
        self.teams = {profile.id: profile.team for profile in load_roster().agents}
        self.poll_s = poll_s
        self.think_s = think_s
        self.respond_s = respond_s
        self.resolve_s = resolve_s
        self.rng = random.Random(seed)
        self.tokens = development_tokens(load_roster())
        self.actions: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.durations: dict[str, list[float]] = {}
        self._current = 0
        self._stop = asyncio.Event()

    @property
    def supervisor_token(self) -> str:
        """A supervisor's token (kate), for reading every case."""
        return self.tokens["kate"]

    @property
    def supervisor_tokens(self) -> list[str]:
        """Every supervisor's token: with floors, each reads the cases of their own."""
        roster = load_roster()
        return [self.tokens[p.id] for p in roster.agents if p.is_supervisor and p.id in self.tokens]

    async def run(self) -> None:
        """Work until :meth:`stop`."""
        limits = httpx.Limits(keepalive_expiry=2)  # below the server's 5 s keep-alive
        async with httpx.AsyncClient(timeout=15, limits=limits) as http:
            await asyncio.gather(*(self._agent(http, a, t) for a, t in self.tokens.items()))

    def stop(self) -> None:
        """Let the agents finish their current step and stop."""
        self._stop.set()

    async def _call(
        self,
        http: httpx.AsyncClient,
        method: str,
        path: str,
        token: str,
        key: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> httpx.Response | None:
        """One API call at the active router; None when no router answered it."""
        bases = self.router_bases()
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        for attempt in range(len(bases)):
            base = bases[(self._current + attempt) % len(bases)]
            started = time.monotonic()
            try:
                response = await http.request(
                    method, f"{base}/v1{path}", headers=headers, json=body
                )
                what = path.rsplit("/", 1)[-1] if method == "POST" else method
                self.durations.setdefault(what, []).append(time.monotonic() - started)
            except httpx.HTTPError as exc:
                self.errors[type(exc).__name__] += 1
                continue
            if response.status_code == 503:
                self.errors["503"] += 1
                continue
            self._current = (self._current + attempt) % len(bases)
            return response
        return None

    async def _agent(self, http: httpx.AsyncClient, agent_id: str, token: str) -> None:
        plans: dict[str, _Plan] = {}
        while not self._stop.is_set():
            await asyncio.sleep(self.poll_s)
            me = await self._call(http, "GET", "/me", token)
            if me is None or me.status_code != 200:
                continue
            held = [str(case_id) for case_id in me.json()["cases"]]
            for case_id in list(plans):
                if case_id not in held:
                    del plans[case_id]
            now = time.monotonic()
            # New cases are looked at, and due steps taken, all at once: an agent's command
            # waits for the router to apply it, and one slow case must not hold up the others.
            new = [case_id for case_id in held if case_id not in plans]
            found = await asyncio.gather(
                *(self._plan(http, agent_id, token, case_id, now) for case_id in new)
            )
            for case_id, plan in zip(new, found, strict=True):
                if plan is not None:
                    plans[case_id] = plan
            due = [(c, p) for c, p in plans.items() if c not in new and p.at <= now]
            answers = await asyncio.gather(
                *(
                    self._call(
                        http, "POST", f"/cases/{c}/{p.action}", token, key=p.key, body=p.body
                    )
                    for c, p in due
                )
            )
            for (case_id, plan), response in zip(due, answers, strict=True):
                if response is None:
                    continue  # no router now: the same command (same key) again later
                if response.status_code != 200:
                    self.errors[f"{plan.action} {response.status_code}"] += 1
                    del plans[case_id]  # taken back, re-offered, escalated: look again
                    continue
                self.actions[plan.action] += 1
                if plan.action == "accept":
                    at = now + self.rng.uniform(*self.respond_s)
                    to_team = self.transfers.get(self.teams.get(agent_id, ""))
                    if to_team is not None and self.rng.random() < self.transfer_share:
                        body = {"to_team": to_team, "reason": "another team's question"}
                        plans[case_id] = _Plan("transfer", at, plan.key, body)
                    else:
                        plans[case_id] = _Plan("respond", at, plan.key)
                elif plan.action == "respond":
                    at = now + self.rng.uniform(*self.resolve_s)
                    plans[case_id] = _Plan("resolve", at, plan.key)
                else:
                    del plans[case_id]

    async def _plan(
        self, http: httpx.AsyncClient, agent_id: str, token: str, case_id: str, now: float
    ) -> _Plan | None:
        response = await self._call(http, "GET", f"/cases/{case_id}", token)
        if response is None or response.status_code != 200:
            return None
        case = response.json()
        offer = case.get("offer")
        if offer is not None and offer["agent_id"] == agent_id:
            at = now + self.rng.uniform(*self.think_s)
            return _Plan("accept", at, f"offer:{offer['offered_at']}")
        if case.get("assignee") == agent_id:
            key = f"assigned:{case['assigned_at']}"
            if case.get("first_response_at") is None:
                return _Plan("respond", now, key)
            return _Plan("resolve", now + self.rng.uniform(*self.resolve_s), key)
        return None


# ---------------------------------------------------------------------- topics


class TopicTail:
    """Follows every partition of a topic from its beginning, handing each record and the time
    it was read to ``on_record``. No consumer group: partitions are assigned directly."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        on_record: Callable[[Any, float], None],
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.on_record = on_record
        self.next_offset: dict[int, int] = {}
        self.count = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._partitions: list[TopicPartition] = []

    async def start(self, timeout_s: float = 30) -> None:
        """Begin reading (the topic must exist within ``timeout_s``)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            found = consumer.partitions_for_topic(self.topic)
            if found:
                break
            if loop.time() >= deadline:
                await consumer.stop()
                raise RuntimeError(f"topic {self.topic} does not exist")
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.2)
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
        consumer.assign(self._partitions)
        await consumer.seek_to_beginning(*self._partitions)
        self._task = asyncio.create_task(self._read(consumer), name=f"tail:{self.topic}")

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            now = time.time()
            for tp, messages in batch.items():
                for message in messages:
                    self.on_record(message, now)
                    self.count += 1
                    self.next_offset[tp.partition] = message.offset + 1

    async def catch_up(self, timeout_s: float = 60) -> bool:
        """Wait until everything written so far has been read; False on timeout."""
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(self._partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if all(self.next_offset.get(tp.partition, 0) >= end for tp, end in ends.items()):
                return True
            await asyncio.sleep(0.2)
        return False

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


# ---------------------------------------------------------------------- memory


@dataclass
class MemorySample:
    """Resident memory of each process at one moment (seconds since the sampler started)."""

    elapsed_s: float
    rss: dict[str, int]


class MemorySampler:
    """Samples the RSS of every process of the stack every ``interval_s``."""

    def __init__(self, pids: Callable[[], dict[str, int]], interval_s: float = 5.0) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.samples: list[MemorySample] = []
        self._started = 0.0

    async def run(self) -> None:
        """Sample until cancelled."""
        self._started = time.monotonic()
        while True:
            self.sample()
            await asyncio.sleep(self.interval_s)

    def sample(self) -> None:
        """Take one sample now."""
        rss = {}
        for name, pid in self.pids().items():
            value = rss_bytes(pid)
            if value is not None:
                rss[name] = value
        self.samples.append(MemorySample(time.monotonic() - self._started, rss))


def parse_json(value: bytes) -> dict[str, Any]:
    """A record's JSON value."""
    decoded: dict[str, Any] = json.loads(value)
    return decoded
