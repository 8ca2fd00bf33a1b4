"""Minutes from an incident's start to its surge alert and to its emerging cluster, and false
alerts over days of background traffic.

Eight simulated days (a simulated clock; the trends' pure logic, as the worker runs it): seven
days of background traffic so the surge baselines have their history, then a day with three
injected incidents of different sizes. Background texts are the project's corpus; incident
texts are the demo's incidents (``services/demo/incidents.py``). Every text is tagged and
embedded once by the shipped model (``TriageModel.outputs``: the same tags and embedding the
classifier computes) and carried as the classifier's sketch; the results are cached under
``build/trends-bench/`` by model version, so later runs skip the model.

Printed: per incident, minutes from its start to the first surge raised on a series it feeds
and to the first emerging cluster made mostly of its messages (with how many of its messages
that cluster holds); false surges and false emerging clusters per background day; and the
cost of the trends logic per message against parsing the message (the reference, same run).

    .venv/bin/python bench/trends_incidents.py [--per-day 6000] [--pool 1500] [--seed 7]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.common.messages import (  # noqa: E402
    Channel,
    Customer,
    CustomerHistory,
    EmbeddingSketch,
    Facts,
    FeedbackClassified,
    FeedbackReceived,
    Source,
    Tag,
)
from services.common.sketch import sketch, unit_vector  # noqa: E402
from services.demo import incidents  # noqa: E402
from services.demo.traffic import CHANNEL_WEIGHTS, load_samples  # noqa: E402
from services.trends.observation import Observation, excerpt_of, observe, terms_of  # noqa: E402
from services.trends.settings import TrendsSettings  # noqa: E402
from services.trends.state import TrendsState  # noqa: E402
from services.trends.surges import ALL_CHANNELS  # noqa: E402

CACHE = ROOT / "build" / "trends-bench"
DAY0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; the incident day is the eighth
DAYS = 8


@dataclass(frozen=True)
class Tagged:
    text: str
    category: str
    sentiment: str
    difficult: str
    sketch: str


@dataclass(frozen=True)
class Injected:
    label: str
    incident: incidents.Incident
    start: datetime
    count: int
    duration: timedelta


def tag_texts(texts: list[str]) -> list[Tagged]:
    """Tags and sketches of the texts by the shipped model, cached by model version."""
    from services.classifier.model import LABELS, TriageModel

    model = TriageModel.load()
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{model.version}-{digest}.npz"
    if path.exists():
        data = np.load(path)
        embeddings, labels = data["embeddings"], data["labels"]
        print(f"tags and embeddings: cached ({path.relative_to(ROOT)})")
    else:
        started = time.perf_counter()
        embeddings, probabilities = model.outputs(texts, batch_size=32)
        elapsed = time.perf_counter() - started
        labels = np.stack(
            [probabilities[t].argmax(axis=1) for t in ("category", "sentiment", "difficult")],
            axis=1,
        )
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, embeddings=embeddings, labels=labels)
        rate = len(texts) / elapsed
        print(f"tags and embeddings: {len(texts)} texts by the shipped model, {rate:.0f} texts/s")
    return [
        Tagged(
            text=text,
            category=LABELS["category"][int(row[0])],
            sentiment=LABELS["sentiment"][int(row[1])],
            difficult=LABELS["difficult"][int(row[2])],
            sketch=sketch(embeddings[n]),
        )
        for n, (text, row) in enumerate(zip(texts, labels, strict=True))
    ]


def diurnal(hour: float) -> float:
    """Relative arrival rate by hour of day: quiet at night, a peak in the early afternoon."""
    return 0.15 + 0.85 * float(max(0.0, math.sin(math.pi * (hour - 6) / 16)) ** 1.5)


def background_times(per_day: int, rng: random.Random) -> list[datetime]:
    """Arrival times of a non-homogeneous Poisson stream over every day (thinning)."""
    mean = sum(diurnal(h / 10) for h in range(240)) / 240
    peak = per_day / (24 * 3600) / mean  # arrivals per second at relative rate 1
    times: list[datetime] = []
    t = 0.0
    end = DAYS * 24 * 3600.0
    while True:
        t += -math.log(1.0 - rng.random()) / peak
        if t >= end:
            return times
        if rng.random() < diurnal((t / 3600) % 24):
            times.append(DAY0 + timedelta(seconds=t))


def observation(n: int, tagged: Tagged, channel: str, at: datetime) -> Observation:
    return Observation(
        event_id=str(uuid.UUID(int=n)),
        at=at,
        category=tagged.category,
        channel=channel,
        sentiment=tagged.sentiment,
        difficult=tagged.difficult,
        excerpt=excerpt_of(tagged.text),
        terms=terms_of(tagged.text),
        vector=unit_vector(tagged.sketch),
    )


def as_message(obs: Observation, tagged: Tagged) -> bytes:
    """The feedback.classified record the worker would read for this observation."""
    feedback = FeedbackReceived(
        event_id=uuid.UUID(obs.event_id),
        source=Source(platform="bench", event_id=obs.event_id),
        channel=Channel(obs.channel),
        customer=Customer(id="bench"),
        text=tagged.text,
        received_at=obs.at,
    )
    return (
        FeedbackClassified(
            event_id=feedback.event_id,
            feedback=feedback,
            sentiment=Tag(label=obs.sentiment, probability=0.9),
            sentiment_score=-0.5,
            category=Tag(label=obs.category, probability=0.9),
            difficult=Tag(label=obs.difficult, probability=0.9),
            needs_review=False,
            facts=Facts(),
            history=CustomerHistory(
                window_days=30,
                recent_messages=0,
                recent_complaints=0,
                recent_negative=0,
                repeat_complainer=False,
            ),
            model_version="bench",
            classified_at=obs.at,
            embedding=EmbeddingSketch(values=tagged.sketch),
        )
        .model_dump_json()
        .encode()
    )


def minutes(since: datetime, at: datetime | None) -> str:
    return f"{(at - since).total_seconds() / 60:4.1f} min" if at is not None else "    none"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--per-day", type=int, default=6000, help="background messages a day")
    parser.add_argument("--pool", type=int, default=1500, help="distinct background texts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--verbose", action="store_true", help="print every false alert")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a trends setting, e.g. cluster_similarity=0.55 (repeatable)",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    overrides = dict(item.split("=", 1) for item in args.set)
    settings = TrendsSettings.model_validate(overrides)  # the worker's defaults, unless set

    day = DAY0 + timedelta(days=DAYS - 1)
    plan = [
        Injected(
            "A small, 20 in 30 min",
            incidents.DOUBLE_CHARGE,
            day + timedelta(hours=10, minutes=7),
            20,
            timedelta(minutes=30),
        ),
        Injected(
            "B medium, 45 in 30 min",
            incidents.DELIVERY,
            day + timedelta(hours=15, minutes=22),
            45,
            timedelta(minutes=30),
        ),
        Injected(
            "C large, 150 in 90 min",
            incidents.OUTAGE,
            day + timedelta(hours=19, minutes=41),
            150,
            timedelta(minutes=90),
        ),
    ]
    pool_texts = sorted({s.text for s in load_samples()})
    rng.shuffle(pool_texts)
    pool_texts = pool_texts[: args.pool]
    incident_texts = {
        i.label: incidents.texts(i.incident, i.count, random.Random(i.label)) for i in plan
    }
    all_texts = pool_texts + [t for i in plan for t in incident_texts[i.label]]
    tagged = dict(zip(all_texts, tag_texts(all_texts), strict=True))

    # The stream: (time, observation, incident label or None, tagged text), in time order.
    stream: list[tuple[datetime, Observation, str | None, Tagged]] = []
    channels, weights = list(CHANNEL_WEIGHTS), list(CHANNEL_WEIGHTS.values())
    for at in background_times(args.per_day, rng):
        item = tagged[rng.choice(pool_texts)]
        channel = rng.choices(channels, weights=weights)[0]
        stream.append((at, observation(len(stream), item, channel, at), None, item))
    for injected in plan:
        offsets = incidents.arrivals(injected.count, injected.duration.total_seconds(), rng)
        for text, offset in zip(incident_texts[injected.label], offsets, strict=True):
            at = injected.start + timedelta(seconds=offset)
            item = tagged[text]
            obs = observation(len(stream), item, incidents.channel_of(injected.incident, rng), at)
            stream.append((at, obs, injected.label, item))
    stream.sort(key=lambda entry: entry[0])
    label_of = {obs.event_id: label for _, obs, label, _ in stream}

    # The worker's state on a simulated clock: messages in order, judged every minute.
    state = TrendsState(settings.surge_rules(), settings.cluster_rules())
    surge_log: list[tuple[datetime, str, str, datetime]] = []
    emerging_log: list[tuple[datetime, str | None, int]] = []  # when, main incident, its members
    logic_s = 0.0
    clock = DAY0 + timedelta(minutes=1)
    index = 0
    while clock <= DAY0 + timedelta(days=DAYS):
        started = time.perf_counter()
        changes = []
        while index < len(stream) and stream[index][0] < clock:
            changes.append(state.add(stream[index][1]))
            index += 1
        changes.append(state.advance(clock))
        logic_s += time.perf_counter() - started
        for change in changes:
            for surge in change.surges:
                if surge.ended_at is None:
                    surge_log.append(
                        (surge.detected_at, surge.category, surge.channel, surge.window_start)
                    )
            for _, found in change.emerging:
                # What grew: the members that arrived in the growth window (the latest ones).
                members = [label_of.get(m) for m in found.member_ids[-found.recent :]]
                top = max(set(members), key=members.count)
                emerging_log.append((clock, top, members.count(top)))
                if args.verbose and top is not None:
                    print(f"  emerging {clock:%d %H:%M} for {top}: {found.top_terms}")
                if args.verbose and top is None:
                    print(
                        f"  false emerging {clock:%d %H:%M}: size {found.size}, recent "
                        f"{found.recent}, expected {found.expected_recent}, {found.top_terms}"
                    )
        clock += timedelta(minutes=1)

    def feeds(label: str, category: str, channel: str, start: datetime, end: datetime) -> bool:
        """Whether an incident fed a series in a window (then the surge is the incident's)."""
        return any(
            lab == label
            and obs.category == category
            and channel in (obs.channel, ALL_CHANNELS)
            and start <= at < end
            for at, obs, lab, _ in stream
        )

    false_surges = [0] * DAYS
    first_surge: dict[str, datetime] = {}
    for detected, category, channel, window_start in surge_log:
        end = detected + timedelta(minutes=1)
        owner = next(
            (i.label for i in plan if feeds(i.label, category, channel, window_start, end)), None
        )
        if owner is None:
            false_surges[(detected - DAY0).days] += 1
            if args.verbose:
                print(f"  false surge {detected:%d %H:%M}: {category} on {channel}")
        else:
            first_surge.setdefault(owner, detected)
    false_emerging = [0] * DAYS
    first_cluster: dict[str, tuple[datetime, int]] = {}
    for when, top, held in emerging_log:
        if top is None:
            false_emerging[(when - DAY0).days] += 1
        else:
            first_cluster.setdefault(top, (when, held))

    print(
        f"traffic: {DAYS} days, {len(stream)} messages ({args.per_day}/day background from "
        f"{len(pool_texts)} corpus texts); incidents on day {DAYS}; simulated clock, judged "
        f"every minute; settings: defaults{''.join(f', {k}={v}' for k, v in overrides.items())}"
    )
    clusters = [c for clusterer in state.clusterers.values() for c in clusterer.clusters()]
    for injected in plan:
        surge_at = first_surge.get(injected.label)
        cluster = first_cluster.get(injected.label)
        cluster_at = cluster[0] if cluster else None
        held = max(
            (sum(label_of.get(m) == injected.label for m in c.members) for c in clusters),
            default=0,
        )
        flagged = min((t for t in (surge_at, cluster_at) if t is not None), default=None)
        print(
            f"incident {injected.label}: surge after {minutes(injected.start, surge_at)}, "
            f"emerging cluster after {minutes(injected.start, cluster_at)}"
            + (f" ({cluster[1]} of its messages among the new members)" if cluster else "")
            + f"; flagged after {minutes(injected.start, flagged)}; "
            f"its largest cluster holds {held}/{injected.count} by the end of the day"
        )
    background = list(range(1, DAYS - 1))
    print(
        f"false surges: {sum(false_surges[d] for d in background) / len(background):.2f}/day "
        f"on background days 2-7 {[false_surges[d] for d in background]}, day 1 "
        f"(no seasonal history) {false_surges[0]}, incident day {false_surges[DAYS - 1]}"
    )
    mean_false = sum(false_emerging[d] for d in background) / len(background)
    print(
        f"false emerging clusters: {mean_false:.2f}/day on days 2-7 "
        f"{[false_emerging[d] for d in background]}, day 1 "
        f"{false_emerging[0]}, incident day {false_emerging[DAYS - 1]}"
    )
    sample = [as_message(obs, item) for _, obs, _, item in stream[:2000]]
    started = time.perf_counter()
    for raw in sample:
        observe(FeedbackClassified.model_validate_json(raw))
    parse_s = (time.perf_counter() - started) / len(sample)
    per_message = logic_s / len(stream)
    print(
        f"trends logic: {per_message * 1e6:.0f} us/message, per-minute judging included "
        f"({1 / per_message:.0f} messages/s); reference, reading the record: "
        f"{parse_s * 1e6:.0f} us/message; ratio {per_message / parse_s:.2f}; {DAYS} days of "
        f"traffic judged in {logic_s:.0f} s"
    )


if __name__ == "__main__":
    main()
