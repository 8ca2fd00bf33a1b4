"""The trends' pure logic: sketches, volumes, surges and emerging clusters, on a simulated clock."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from services.common.sketch import SKETCH_DIMS, sketch, unit_vector
from services.trends.clusters import Clusterer, ClusterRules, grew_enough, keep_top
from services.trends.observation import Observation, excerpt_of, terms_of
from services.trends.state import Changes, TrendsState
from services.trends.surges import (
    ALL_CHANNELS,
    Surge,
    SurgeDetector,
    SurgeRules,
    baseline,
    is_surge,
    poisson_tail,
)
from services.trends.windows import (
    Granularity,
    MinuteCounts,
    RecentIds,
    Volumes,
    bucket_start,
    totals,
)

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def obs(
    n: int,
    at: datetime,
    *,
    category: str = "billing",
    channel: str = "email",
    sentiment: str = "negative",
    difficult: str = "none",
    vector: npt.NDArray[np.float32] | None = None,
    text: str = "something about a bill",
) -> Observation:
    return Observation(
        event_id=f"e{n}",
        at=at,
        category=category,
        channel=channel,
        sentiment=sentiment,
        difficult=difficult,
        excerpt=excerpt_of(text),
        terms=terms_of(text),
        vector=vector,
    )


# --- sketches -------------------------------------------------------------------------------


def test_sketch_is_compact_and_keeps_cosines() -> None:
    rng = np.random.default_rng(1)
    base = rng.standard_normal(384)
    near = base + 0.3 * rng.standard_normal(384)
    far = rng.standard_normal(384)
    encoded = [sketch(v / np.linalg.norm(v)) for v in (base, near, far)]
    assert all(len(e) == 172 for e in encoded)
    a, b, c = (unit_vector(e) for e in encoded)
    assert a is not None
    assert b is not None
    assert c is not None
    assert a.shape == (SKETCH_DIMS,)
    true_near = float(base @ near / np.linalg.norm(base) / np.linalg.norm(near))
    assert abs(float(a @ b) - true_near) < 0.08
    assert abs(float(a @ c)) < 0.35
    assert sketch(base) == sketch(base * 3)  # the scale does not matter to a cosine


@pytest.mark.parametrize("bad", ["", "not base64!", "AAAA", sketch(np.zeros(384))])
def test_unreadable_or_empty_sketches_compare_to_nothing(bad: str) -> None:
    assert unit_vector(bad) is None


# --- observations ---------------------------------------------------------------------------


def test_terms_keep_content_words_and_error_codes() -> None:
    terms = terms_of(
        "The app won't let me log in, it says error 503 since this morning! ref 88812345"
    )
    assert "503" in terms
    assert "app" in terms
    assert "error" in terms
    assert "morning" in terms
    assert "the" not in terms
    assert "since" not in terms
    assert "88812345" not in terms


def test_excerpt_is_one_line_and_cut_at_a_word() -> None:
    text = "word " * 60
    cut = excerpt_of("line one\n\nline two " + text)
    assert "\n" not in cut
    assert len(cut) <= 140
    assert cut.endswith("…")
    assert excerpt_of("short  text") == "short text"


# --- volumes --------------------------------------------------------------------------------


def test_recent_ids_drop_repeats_and_forget_old_hours() -> None:
    ids = RecentIds(span=timedelta(hours=2))
    assert ids.add("a", T0)
    assert not ids.add("a", T0 + timedelta(minutes=30))
    ids.prune(T0 + timedelta(hours=4))
    assert len(ids) == 0
    assert not ids.add("b", T0)  # older than the span: not counted at all


def test_volumes_bucket_and_break_down_every_dimension() -> None:
    volumes = Volumes()
    volumes.add(obs(1, T0 + timedelta(minutes=1)))
    volumes.add(obs(2, T0 + timedelta(minutes=4), channel="chat", sentiment="neutral"))
    volumes.add(obs(3, T0 + timedelta(minutes=7), category="delay", difficult="angry"))
    buckets = volumes.buckets(Granularity.FIVE_MINUTES, since=T0, until=T0 + timedelta(minutes=14))
    assert [b.start for b in buckets] == [T0 + timedelta(minutes=m) for m in (0, 5, 10)]
    assert [b.total for b in buckets] == [2, 1, 0]  # empty buckets are there for the chart
    assert buckets[0].channel == {"chat": 1, "email": 1}
    assert buckets[0].sentiment == {"negative": 1, "neutral": 1}
    assert buckets[1].difficult == {"angry": 1}
    hourly = volumes.buckets(Granularity.HOUR, since=T0, until=T0)
    assert hourly[0].category == {"billing": 2, "delay": 1}
    only_chat = volumes.buckets(
        Granularity.HOUR, since=T0, until=T0, admit=lambda key: key[1] == "chat"
    )
    assert only_chat[0].total == 1
    assert totals(buckets).category == {"billing": 2, "delay": 1}


def test_volumes_keep_each_granularity_for_its_span() -> None:
    volumes = Volumes()
    volumes.add(obs(1, T0))
    volumes.prune(T0 + timedelta(days=2))
    assert volumes.buckets(Granularity.FIVE_MINUTES, since=T0, until=T0)[0].total == 0
    assert volumes.buckets(Granularity.HOUR, since=T0, until=T0)[0].total == 1
    volumes.prune(T0 + timedelta(days=8))
    assert volumes.buckets(Granularity.HOUR, since=T0, until=T0)[0].total == 0


def test_bucket_start_aligns_to_the_width() -> None:
    at = datetime(2026, 3, 2, 10, 37, 12, tzinfo=UTC)
    assert bucket_start(at, timedelta(minutes=5)) == datetime(2026, 3, 2, 10, 35, tzinfo=UTC)
    assert bucket_start(at, timedelta(hours=1)) == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_minute_counts_are_a_ring() -> None:
    ring = MinuteCounts(10)
    ring.add(T0)
    ring.add(T0 + timedelta(seconds=30))
    ring.add(T0 + timedelta(minutes=3))
    assert ring.between(T0, T0 + timedelta(minutes=1)) == 2
    assert ring.between(T0, T0 + timedelta(minutes=10)) == 3
    ring.add(T0 + timedelta(minutes=12))  # minutes 0..2 leave the ring
    assert ring.between(T0, T0 + timedelta(minutes=13)) == 2
    ring.add(T0)  # too old for the ring: dropped
    assert ring.between(T0, T0 + timedelta(minutes=13)) == 2
    ring.add(T0 + timedelta(hours=5))
    assert ring.between(T0, T0 + timedelta(hours=6)) == 1


# --- surges ---------------------------------------------------------------------------------


def test_poisson_tail_matches_the_closed_form() -> None:
    assert poisson_tail(0, 3.0) == 1.0
    assert poisson_tail(1, 2.0) == pytest.approx(1 - np.exp(-2.0))
    assert poisson_tail(3, 1.0) == pytest.approx(1 - np.exp(-1) * (1 + 1 + 0.5))
    assert 0 < poisson_tail(40, 2.0) < 1e-20


def test_baseline_takes_the_larger_of_recent_and_seasonal_and_a_floor() -> None:
    rules = SurgeRules(window=timedelta(minutes=10), floor_per_hour=1.0)
    quiet = baseline(
        recent_count=0, recent_span=timedelta(hours=3), seasonal_counts=[], rules=rules
    )
    assert quiet.source == "floor"
    assert quiet.expected == pytest.approx(1 / 6)
    recent = baseline(
        recent_count=36, recent_span=timedelta(hours=3), seasonal_counts=[4, 4], rules=rules
    )
    assert recent.source == "recent"
    assert recent.expected == pytest.approx(2.0)
    seasonal = baseline(
        recent_count=0, recent_span=timedelta(hours=3), seasonal_counts=[120, 60, 1000], rules=rules
    )
    assert seasonal.source == "seasonal"
    assert seasonal.expected == pytest.approx(120 / 2 / 6)


@pytest.mark.parametrize(
    ("count", "expected", "surge"),
    [
        (3, 0.1, False),  # a quiet series: three messages are not a surge
        (5, 0.1, False),
        (8, 0.2, True),
        (30, 12.0, False),  # busy: 2.5x is within what a busy series does
        (60, 12.0, True),
        (40, 20.0, False),
    ],
)
def test_a_surge_must_be_large_and_unlikely(count: int, expected: float, surge: bool) -> None:
    assert is_surge(count, expected, SurgeRules())[0] is surge


def feed(detector: SurgeDetector, stream: list[Observation], until: datetime) -> list[Surge]:
    """Feed a time-ordered stream minute by minute, evaluating each minute."""
    changes: list[Surge] = []
    clock, index = stream[0].at.replace(second=0) + timedelta(minutes=1), 0
    while clock <= until:
        while index < len(stream) and stream[index].at < clock:
            detector.add(stream[index])
            index += 1
        changes.extend(detector.evaluate(clock))
        clock += timedelta(minutes=1)
    return changes


def background(rng: random.Random, hours: float, per_hour: float) -> list[Observation]:
    out: list[Observation] = []
    t = 0.0
    while True:
        t += rng.expovariate(per_hour / 3600)
        if t > hours * 3600:
            return out
        out.append(obs(len(out), T0 + timedelta(seconds=t)))


def test_a_burst_in_a_steady_series_raises_one_surge_then_ends() -> None:
    rng = random.Random(3)
    stream = background(rng, 30, 12)
    burst_start = T0 + timedelta(hours=27)
    stream += [
        obs(10_000 + n, burst_start + timedelta(seconds=20 * n), channel="email") for n in range(30)
    ]
    stream.sort(key=lambda o: o.at)
    changes = feed(SurgeDetector(), stream, T0 + timedelta(hours=30))
    started = [s for s in changes if s.ended_at is None]
    assert {(s.category, s.channel) for s in started} == {
        ("billing", "email"),
        ("billing", ALL_CHANNELS),
    }
    for surge in started:
        assert burst_start <= surge.detected_at <= burst_start + timedelta(minutes=10)
        assert surge.count >= 6
        assert surge.p_value <= 1e-5
        assert surge.ratio >= 3
    assert all(s.ended_at is not None for s in changes if s not in started)
    assert len(changes) == 4  # both ended once the burst was over


def test_steady_traffic_raises_nothing_and_three_messages_in_a_quiet_series_neither() -> None:
    rng = random.Random(4)
    stream = background(rng, 48, 30)
    quiet_at = T0 + timedelta(hours=30)
    stream += [
        obs(50_000 + n, quiet_at + timedelta(minutes=n), category="trust_privacy", channel="web")
        for n in range(3)
    ]
    stream.sort(key=lambda o: o.at)
    assert feed(SurgeDetector(), stream, T0 + timedelta(hours=48)) == []


def test_the_daily_cycle_is_not_a_surge_once_there_is_history() -> None:
    """Every morning the volume jumps from 1 to 40 an hour: the seasonal baseline expects it."""
    rng = random.Random(5)
    stream: list[Observation] = []
    for day in range(4):
        for hour in range(24):
            rate = 40 if 9 <= hour < 12 else 1
            start = T0 + timedelta(days=day, hours=hour)
            for _ in range(np.random.default_rng(day * 24 + hour).poisson(rate)):
                at = start + timedelta(seconds=rng.uniform(0, 3600))
                stream.append(obs(len(stream), at))
    stream.sort(key=lambda o: o.at)
    detector = SurgeDetector(SurgeRules(across_channels=False))
    changes = feed(detector, stream, T0 + timedelta(days=4))
    first_days = [
        s for s in changes if s.ended_at is None and s.detected_at < T0 + timedelta(days=1)
    ]
    later = [s for s in changes if s.ended_at is None and s.detected_at >= T0 + timedelta(days=1)]
    assert first_days  # with no history the first morning is news
    assert later == []


def test_surge_ids_are_stable_across_replicas() -> None:
    stream = [obs(n, T0 + timedelta(hours=2, seconds=10 * n)) for n in range(12)]
    warm = [obs(1000, T0)]
    one = feed(SurgeDetector(), warm + stream, T0 + timedelta(hours=2, minutes=5))
    two = feed(SurgeDetector(), warm + stream, T0 + timedelta(hours=2, minutes=5))
    assert one
    assert [s.surge_id for s in one] == [s.surge_id for s in two]


# --- clusters -------------------------------------------------------------------------------


def unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = (v / np.linalg.norm(v)).astype(np.float32)
    return out


def test_near_identical_messages_form_one_cluster_and_others_do_not_join() -> None:
    rng = np.random.default_rng(7)
    topic = rng.standard_normal(128)
    clusterer = Clusterer(ClusterRules(similarity=0.6))
    for n in range(30):
        v = unit(topic + 0.4 * rng.standard_normal(128))
        clusterer.add(obs(n, T0 + timedelta(seconds=n), vector=v, text="app error 503 login"))
    for n in range(30, 60):
        clusterer.add(obs(n, T0 + timedelta(seconds=n), vector=unit(rng.standard_normal(128))))
    sizes = sorted((c.size for c in clusterer.clusters()), reverse=True)
    assert sizes[0] == 30
    assert sizes[1] <= 2
    assert clusterer.add(obs(99, T0, vector=None)) is None


def incident_and_background(
    *, incident: int, minutes: float, seed: int = 11
) -> tuple[Clusterer, datetime, set[str]]:
    """Six hours of varied background (40 themes), then a burst of one new theme."""
    rng = np.random.default_rng(seed)
    themes = [rng.standard_normal(128) for _ in range(40)]
    clusterer = Clusterer(ClusterRules(similarity=0.6))
    for n, second in enumerate(range(0, 6 * 3600, 60)):
        theme = themes[int(rng.integers(len(themes)))]
        v = unit(theme + 0.5 * rng.standard_normal(128))
        clusterer.add(obs(n, T0 + timedelta(seconds=second), vector=v, text=f"theme words {n}"))
    start = T0 + timedelta(hours=6)
    burst = rng.standard_normal(128)
    ids = set()
    for k in range(incident):
        at = start + timedelta(seconds=k * minutes * 60 / incident)
        v = unit(burst + 0.4 * rng.standard_normal(128))
        text = f"parcel marked delivered but driver never came round {k % 3}"
        o = obs(100_000 + k, at, vector=v, text=text, category="delay", channel="chat")
        clusterer.add(o)
        ids.add(o.event_id)
    return clusterer, start, ids


def test_a_fast_growing_cluster_is_reported_with_what_a_supervisor_needs() -> None:
    clusterer, start, ids = incident_and_background(incident=30, minutes=20)
    found = clusterer.emerging(start + timedelta(minutes=20))
    assert len(found) == 1
    report = found[0]
    assert len(ids & set(report.member_ids)) >= 20
    assert report.recent >= 20
    assert report.first_seen >= start
    assert {"parcel", "delivered", "driver"} <= set(report.top_terms)
    assert report.categories == {"delay": report.size}
    assert report.channels == {"chat": report.size}
    assert len(report.representatives) == 3
    assert len({r.excerpt for r in report.representatives}) == 3
    assert all(r.event_id in ids for r in report.representatives)


def test_steady_themes_are_not_emerging() -> None:
    clusterer, _start, _ = incident_and_background(incident=0, minutes=20)
    for minute in range(0, 6 * 60, 7):
        assert clusterer.emerging(T0 + timedelta(minutes=minute)) == []


def test_nothing_is_emerging_during_the_warmup() -> None:
    rng = np.random.default_rng(2)
    topic = rng.standard_normal(128)
    clusterer = Clusterer()
    for n in range(20):
        clusterer.add(
            obs(n, T0 + timedelta(seconds=n), vector=unit(topic + 0.1 * rng.standard_normal(128)))
        )
    assert clusterer.emerging(T0 + timedelta(minutes=5)) == []


def test_memory_is_bounded() -> None:
    rng = np.random.default_rng(3)
    rules = ClusterRules(max_clusters=50, terms_per_cluster=4, member_ids=10, candidates=5)
    clusterer = Clusterer(rules)
    for n in range(500):
        v = unit(rng.standard_normal(128))
        clusterer.add(obs(n, T0 + timedelta(seconds=n), vector=v, text=f"word{n} other{n}"))
    assert len(clusterer) == 50
    same = unit(rng.standard_normal(128))
    for n in range(200):
        clusterer.add(
            obs(1000 + n, T0 + timedelta(hours=1, seconds=n), vector=same, text=f"w{n} x{n} y{n}")
        )
    big = max(clusterer.clusters(), key=lambda c: c.size)
    assert big.size == 200
    assert len(big.members) == 10
    assert len(big.candidates) == 5
    assert len(big.terms) <= 8
    clusterer.prune(T0 + timedelta(days=3))
    assert len(clusterer) == 0


def test_keep_top_keeps_the_most_frequent() -> None:
    from collections import Counter

    counter = Counter({f"t{n}": n for n in range(10)})
    keep_top(counter, 4)
    assert set(counter) == {"t9", "t8", "t7", "t6"}


def test_minute_counts_absorb_another_ring() -> None:
    one, two = MinuteCounts(10), MinuteCounts(10)
    one.add(T0)
    two.add(T0 + timedelta(minutes=2))
    two.add(T0 + timedelta(minutes=12))  # two's ring now starts at minute 3
    one.absorb(two)
    assert one.between(T0, T0 + timedelta(minutes=13)) == 1  # minutes 0 and 2 left the ring
    assert one.between(T0 + timedelta(minutes=12), T0 + timedelta(minutes=13)) == 1


def test_fragments_of_one_theme_are_merged_when_their_centroids_meet() -> None:
    rng = np.random.default_rng(9)
    topic = rng.standard_normal(128)
    left = unit(topic + 0.8 * rng.standard_normal(128))
    right = unit(topic + 0.8 * rng.standard_normal(128))
    rules = ClusterRules(
        similarity=0.95, merge_similarity=0.4, term_weight=0.0, warmup=timedelta(0)
    )
    clusterer = Clusterer(rules)
    clusterer.add(obs(1, T0, vector=left, text="first words"))
    clusterer.add(obs(2, T0 + timedelta(seconds=1), vector=right, text="second words"))
    assert len(clusterer) == 2
    assert clusterer.merge_close(T0 + timedelta(minutes=1)) == 1
    (merged,) = clusterer.clusters()
    assert merged.size == 2
    assert list(merged.members) == ["e1", "e2"]
    assert merged.count_between(T0, T0 + timedelta(minutes=1)) == 2
    never = Clusterer(ClusterRules(similarity=0.95, merge_similarity=1.0, term_weight=0.0))
    never.add(obs(1, T0, vector=left))
    never.add(obs(2, T0, vector=right))
    assert never.merge_close(T0 + timedelta(minutes=1)) == 0


# --- growth updates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "previous", "again"),
    [
        (10, 5, False),  # doubled, but by five members
        (15, 5, True),
        (29, 20, False),  # nine more
        (30, 20, True),
        (44, 30, False),  # fourteen more: not yet half
        (45, 30, True),
        (30, 30, False),
    ],
)
def test_a_reported_cluster_is_reported_again_once_grown_by_half_and_ten(
    size: int, previous: int, again: bool
) -> None:
    assert grew_enough(size, previous, ClusterRules()) is again


def growing_incident(seed: int = 5) -> list[Observation]:
    """Six hours of background over 40 themes (one message a minute), then an incident that
    keeps growing: three similar messages a minute for half an hour."""
    rng = np.random.default_rng(seed)
    themes = [rng.standard_normal(128) for _ in range(40)]
    stream = []
    for n in range(6 * 60):
        theme = themes[int(rng.integers(len(themes)))]
        v = unit(theme + 0.5 * rng.standard_normal(128))
        stream.append(obs(n, T0 + timedelta(minutes=n), vector=v, text=f"theme words {n}"))
    start = T0 + timedelta(hours=6)
    burst = rng.standard_normal(128)
    for k in range(90):
        v = unit(burst + 0.4 * rng.standard_normal(128))
        text = f"parcel marked delivered but driver never came round {k % 3}"
        at = start + timedelta(seconds=20 * k)
        stream.append(obs(100_000 + k, at, vector=v, text=text, category="delay"))
    return stream


def replay(stream: list[Observation]) -> tuple[TrendsState, list[Changes]]:
    state = TrendsState(cluster_rules=ClusterRules(similarity=0.6))
    changes = [state.add(o) for o in stream]
    changes.append(state.advance(stream[-1].at + timedelta(minutes=2)))
    return state, changes


def test_a_growing_cluster_is_reported_first_then_updated_as_it_grows() -> None:
    state, changes = replay(growing_incident())
    firsts = [report for change in changes for _, report in change.emerging]
    updates = [update for change in changes for update in change.updates]
    assert len(firsts) == 1
    first = firsts[0]
    assert first.size < 20
    assert len(updates) >= 2
    assert {u.report.cluster_id for u in updates} == {first.cluster_id}
    # Numbered in order, each against the size of the report before it.
    assert [u.number for u in updates] == list(range(2, len(updates) + 2))
    sizes = [first.size] + [u.report.size for u in updates]
    assert [u.previous_size for u in updates] == sizes[:-1]
    for before, after in itertools.pairwise(sizes):
        assert after - before >= 10
        assert after >= 1.5 * before
    # Every update that was due was sent: the cluster's final size is not enough for another.
    found = state.cluster(first.cluster_id)
    assert found is not None
    assert found[2].size >= sizes[-1]
    assert not grew_enough(found[2].size, sizes[-1], state.cluster_rules)


def test_replicas_number_the_updates_alike() -> None:
    stream = growing_incident(seed=8)

    def reports(changes: list[Changes]) -> list[tuple[str, int, int]]:
        out = [(r.cluster_id, 1, r.size) for c in changes for _, r in c.emerging]
        out += [(u.report.cluster_id, u.number, u.report.size) for c in changes for u in c.updates]
        return out

    once = reports(replay(stream)[1])
    assert len(once) >= 3
    assert once == reports(replay(stream)[1])


def test_a_steady_cluster_is_not_reported_again() -> None:
    # Background alone: nothing emerges, so nothing is updated either.
    stream = [o for o in growing_incident() if o.category != "delay"]
    _, changes = replay(stream)
    assert not [u for c in changes for u in c.updates]
    assert not [r for c in changes for r in c.emerging]
