"""Emerging issues: online clustering of message sketches, and the clusters that grow fast.

Leader clustering on cosine similarity: a message joins the cluster whose centroid is most
similar to its sketch when that similarity reaches ``similarity``, otherwise it starts a new
cluster. Centroids are running means, so a cluster follows its members. Memory is bounded
everywhere: at most ``max_clusters`` clusters (a full set drops the one idle longest), minute
counts only for the span the growth test looks at, a capped number of terms, representatives
and member ids per cluster, and clusters idle for ``idle`` are forgotten.

A cluster is emerging when its last ``growth_window`` holds at least ``min_recent`` messages and
``min_growth`` times what its own rate over the ``baseline_window`` before would predict: a
new cluster (no rate before) only needs the count; a steady theme of the background (the
weekly "where is my refund") grows no faster than it usually does and stays quiet.
"""

from __future__ import annotations

import math
import uuid
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from services.trends.observation import Observation
from services.trends.surges import poisson_tail
from services.trends.windows import MinuteCounts, bucket_start

CLUSTER_ID_NAMESPACE = uuid.UUID("5c2e7a1f-0d3b-4e8a-b6f1-9e4c2d7a8b30")
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ClusterRules:
    """How messages are grouped and when a group is news."""

    similarity: float = 0.55
    #: Weight of the words two messages share, next to their embeddings, in the similarity:
    #: paraphrases of one incident repeat its specific words (a product, an error code) that
    #: the embedding of a classifier, trained to group by category, weighs little.
    term_weight: float = 0.3
    term_dims: int = 256
    #: Clusters active in the growth window whose centroids are this similar are merged
    #: before they are judged: the first few messages of an incident, each phrased its own
    #: way, often start clusters of their own that their later members bring together.
    merge_similarity: float = 0.75
    max_clusters: int = 2000
    idle: timedelta = timedelta(hours=24)
    growth_window: timedelta = timedelta(minutes=30)
    baseline_window: timedelta = timedelta(hours=6)
    min_recent: int = 5
    min_growth: float = 4.0
    #: The growth must also be unlikely: its Poisson tail probability, the expectation
    #: raised to ``min_expected`` and inflated by ``overdispersion``, under ``max_p``. Big
    #: themes of the background wobble by a few messages all day; this keeps them quiet.
    max_p: float = 3e-5
    min_expected: float = 0.25
    overdispersion: float = 1.5
    #: No cluster is news before the clusterer has seen this much history: at a cold start
    #: every theme of the background would look new.
    warmup: timedelta = timedelta(hours=1)
    #: A cluster already reported is reported again (a growth update) once its size has grown
    #: by this share of its size at its last report and by at least ``update_min_growth``
    #: members: supervisors hear that a known incident keeps spreading, not every new member.
    update_growth: float = 0.5
    update_min_growth: int = 10
    representatives: int = 3
    candidates: int = 12
    top_terms: int = 6
    terms_per_cluster: int = 64
    vocabulary: int = 5000
    member_ids: int = 500


@dataclass(frozen=True, slots=True)
class Representative:
    """A message that shows what a cluster is about."""

    event_id: str
    excerpt: str
    at: datetime
    category: str
    channel: str


@dataclass(frozen=True, slots=True)
class Emerging:
    """A cluster that grows fast, as reported."""

    cluster_id: str
    size: int
    recent: int
    expected_recent: float
    growth: float
    first_seen: datetime
    last_seen: datetime
    top_terms: tuple[str, ...]
    categories: dict[str, int]
    channels: dict[str, int]
    representatives: tuple[Representative, ...]
    member_ids: tuple[str, ...]


@dataclass
class _Candidate:
    similarity: float
    representative: Representative
    vector: npt.NDArray[np.float32]


@dataclass
class Cluster:
    """One cluster's running state."""

    cluster_id: str
    first_seen: datetime
    last_seen: datetime
    total: npt.NDArray[np.float64]
    minutes: MinuteCounts
    size: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)
    terms: Counter[str] = field(default_factory=Counter)
    candidates: list[_Candidate] = field(default_factory=list)
    members: deque[str] = field(default_factory=deque)

    def centroid(self) -> npt.NDArray[np.float32]:
        """The unit mean of the members' sketches."""
        norm = float(np.linalg.norm(self.total))
        return (self.total / norm if norm else self.total).astype(np.float32)

    def count_between(self, start: datetime, end: datetime) -> int:
        """Members that arrived in the minutes from ``start`` to ``end``."""
        return self.minutes.between(start, end)


def keep_top(counter: Counter[str], size: int) -> None:
    """Cut a counter to its ``size`` largest entries once it holds twice as many (amortised,
    so memory stays bounded and a frequent term is never pushed out by a stream of rare ones)."""
    if len(counter) <= 2 * size:
        return
    kept = counter.most_common(size)
    counter.clear()
    counter.update(dict(kept))


def hashed_terms(terms: tuple[str, ...], dims: int) -> npt.NDArray[np.float32]:
    """A unit vector of the terms by the hashing trick (signed, so collisions cancel out on
    average); crc32 rather than ``hash`` so that every process agrees."""
    vector = np.zeros(dims, dtype=np.float32)
    for term in terms:
        code = zlib.crc32(term.encode())
        vector[code % dims] += 1.0 if (code >> 16) & 1 else -1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def features(
    vector: npt.NDArray[np.float32], terms: tuple[str, ...], rules: ClusterRules
) -> npt.NDArray[np.float32]:
    """What is clustered: the sketch and, weighted, the hashed terms; a unit vector, so the
    cosine of two is (1 - w) * cos(sketches) + w * cos(terms)."""
    if rules.term_weight <= 0:
        return vector
    weight = math.sqrt(rules.term_weight)
    words = hashed_terms(terms, rules.term_dims)
    if not words.any():
        return np.concatenate([vector, words])
    return np.concatenate([vector * math.sqrt(1 - rules.term_weight), words * weight]).astype(
        np.float32
    )


def is_growing(recent: int, expected: float, rules: ClusterRules) -> bool:
    """Whether a cluster's recent count is both large and unlikely against its expectation."""
    if recent < rules.min_recent or recent < rules.min_growth * expected:
        return False
    mean = max(expected, rules.min_expected) * rules.overdispersion
    return poisson_tail(recent, mean) <= rules.max_p


def grew_enough(size: int, previous_size: int, rules: ClusterRules) -> bool:
    """Whether a cluster reported at ``previous_size`` members has grown enough since to be
    reported again: by ``update_growth`` of that size and by ``update_min_growth`` members
    (so a small cluster is not reported again for every few members)."""
    grown = size - previous_size
    return grown >= rules.update_min_growth and grown >= rules.update_growth * previous_size


class Clusterer:
    """Online clusters of one embedding space (one model version)."""

    def __init__(self, rules: ClusterRules | None = None, dims: int = 128) -> None:
        self.rules = rules or ClusterRules()
        self.sketch_dims = dims
        dims = dims + (self.rules.term_dims if self.rules.term_weight > 0 else 0)
        self.dims = dims
        self._rows = np.zeros((self.rules.max_clusters, dims), dtype=np.float32)
        self._slots: list[Cluster | None] = [None] * self.rules.max_clusters
        self._free = list(range(self.rules.max_clusters - 1, -1, -1))
        self._slot_of: dict[str, int] = {}
        self._vocabulary: Counter[str] = Counter()
        self._documents = 0
        self._first: datetime | None = None
        self._span = int((self.rules.growth_window + self.rules.baseline_window) / MINUTE) + 2
        self._minutes = MinuteCounts(self._span)  # every clustered message, for the shares

    def __len__(self) -> int:
        return len(self._slot_of)

    def clusters(self) -> list[Cluster]:
        """Every live cluster."""
        return [c for c in self._slots if c is not None]

    def get(self, cluster_id: str) -> Cluster | None:
        """A live cluster by id."""
        slot = self._slot_of.get(cluster_id)
        return self._slots[slot] if slot is not None else None

    def add(self, observation: Observation) -> Cluster | None:
        """Put an observation in its cluster (None when it has no sketch)."""
        if observation.vector is None or observation.vector.shape != (self.sketch_dims,):
            return None
        vector = features(observation.vector, observation.terms, self.rules)
        if self._first is None or observation.at < self._first:
            self._first = observation.at
        self._minutes.add(observation.at)
        self._documents += 1
        self._vocabulary.update(observation.terms)
        keep_top(self._vocabulary, self.rules.vocabulary)
        # Free slots hold zero rows: similarity 0, below any threshold, so never chosen.
        similarities = self._rows @ vector
        best_slot = int(np.argmax(similarities))
        best = float(similarities[best_slot])
        if best >= self.rules.similarity and self._slots[best_slot] is not None:
            cluster = self._slots[best_slot]
            assert cluster is not None
            slot = best_slot
        else:
            slot = self._take_slot()
            cluster = Cluster(
                cluster_id=str(uuid.uuid5(CLUSTER_ID_NAMESPACE, observation.event_id)),
                first_seen=observation.at,
                last_seen=observation.at,
                total=np.zeros(self.dims, dtype=np.float64),
                minutes=MinuteCounts(self._span),
            )
            self._slots[slot] = cluster
            self._slot_of[cluster.cluster_id] = slot
        self._join(cluster, observation, vector)
        self._rows[slot] = cluster.centroid()
        return cluster

    def _take_slot(self) -> int:
        if not self._free:
            idlest = min(self.clusters(), key=lambda c: (c.last_seen, c.size))
            self._drop(idlest)
        return self._free.pop()

    def _drop(self, cluster: Cluster) -> None:
        slot = self._slot_of.pop(cluster.cluster_id)
        self._slots[slot] = None
        self._rows[slot] = 0.0
        self._free.append(slot)

    def _join(
        self, cluster: Cluster, observation: Observation, vector: npt.NDArray[np.float32]
    ) -> None:
        rules = self.rules
        cluster.size += 1
        cluster.total += vector
        cluster.first_seen = min(cluster.first_seen, observation.at)
        cluster.last_seen = max(cluster.last_seen, observation.at)
        cluster.minutes.add(observation.at)
        cluster.categories[observation.category] += 1
        cluster.channels[observation.channel] += 1
        cluster.terms.update(observation.terms)
        keep_top(cluster.terms, rules.terms_per_cluster)
        cluster.members.append(observation.event_id)
        while len(cluster.members) > rules.member_ids:
            cluster.members.popleft()
        candidate = _Candidate(
            similarity=float(vector @ cluster.centroid()),
            representative=Representative(
                event_id=observation.event_id,
                excerpt=observation.excerpt,
                at=observation.at,
                category=observation.category,
                channel=observation.channel,
            ),
            vector=vector,
        )
        # Keep the members closest to the centroid as it is now (re-scored as it moves).
        centre = cluster.centroid()
        for kept in cluster.candidates:
            kept.similarity = float(kept.vector @ centre)
        cluster.candidates.append(candidate)
        if len(cluster.candidates) > rules.candidates:
            cluster.candidates.remove(min(cluster.candidates, key=lambda c: c.similarity))

    def merge_close(self, now: datetime) -> int:
        """Merge the clusters active in the growth window whose centroids are at least
        ``merge_similarity`` alike (into the older one); how many were merged away."""
        _, recent_start, _ = self._spans(now)
        active = [
            slot
            for slot, c in enumerate(self._slots)
            if c is not None and c.last_seen >= recent_start
        ]
        if len(active) < 2 or self.rules.merge_similarity >= 1:
            return 0
        rows = self._rows[active]
        similarities = rows @ rows.T
        np.fill_diagonal(similarities, -1.0)
        merged = 0
        gone: set[int] = set()
        for i, j in zip(*np.nonzero(similarities >= self.rules.merge_similarity), strict=True):
            a, b = active[int(i)], active[int(j)]
            if a >= b or a in gone or b in gone:
                continue
            first, second = self._slots[a], self._slots[b]
            assert first is not None
            assert second is not None
            keep, lose = (
                (first, second) if first.first_seen <= second.first_seen else (second, first)
            )
            self._absorb(keep, lose)
            gone.add(self._slot_of[lose.cluster_id])
            self._drop(lose)
            self._rows[self._slot_of[keep.cluster_id]] = keep.centroid()
            merged += 1
        return merged

    def _absorb(self, keep: Cluster, lose: Cluster) -> None:
        rules = self.rules
        keep.size += lose.size
        keep.total += lose.total
        keep.first_seen = min(keep.first_seen, lose.first_seen)
        keep.last_seen = max(keep.last_seen, lose.last_seen)
        keep.minutes.absorb(lose.minutes)
        keep.categories.update(lose.categories)
        keep.channels.update(lose.channels)
        keep.terms.update(lose.terms)
        keep_top(keep.terms, rules.terms_per_cluster)
        keep.members.extend(lose.members)
        while len(keep.members) > rules.member_ids:
            keep.members.popleft()
        centre = keep.centroid()
        pool = keep.candidates + lose.candidates
        for candidate in pool:
            candidate.similarity = float(candidate.vector @ centre)
        pool.sort(key=lambda c: -c.similarity)
        keep.candidates = pool[: rules.candidates]

    def prune(self, now: datetime) -> None:
        """Forget idle clusters (minute counts are rings: they forget by themselves)."""
        for cluster in self.clusters():
            if now - cluster.last_seen > self.rules.idle:
                self._drop(cluster)

    def top_terms(self, cluster: Cluster) -> tuple[str, ...]:
        """The terms most typical of a cluster: frequent in it, rare in everything else."""
        documents = max(self._documents, 1)
        scored = [
            (count * math.log((documents + 1) / (self._vocabulary.get(term, 0) + 1)), term)
            for term, count in cluster.terms.items()
            if count >= 2 or cluster.size < 2
        ]
        scored.sort(key=lambda item: (-item[0], item[1]))
        return tuple(term for _, term in scored[: self.rules.top_terms])

    def _spans(self, now: datetime) -> tuple[datetime, datetime, datetime]:
        rules = self.rules
        end = bucket_start(now, MINUTE) + MINUTE
        recent_start = end - rules.growth_window
        before_start = recent_start - rules.baseline_window
        if self._first is not None:
            before_start = max(before_start, bucket_start(self._first, MINUTE))
        return before_start, recent_start, end

    def growth_of(
        self, cluster: Cluster, now: datetime, *, traffic: tuple[int, int] | None = None
    ) -> tuple[int, float]:
        """Members in the growth window ending now, and how many its share of the traffic
        before predicts. Shares, not counts: every theme grows when the morning rush starts,
        an incident's grows faster than the traffic. ``traffic`` (all messages before and in
        the window) is passed when many clusters are judged at once."""
        before_start, recent_start, end = self._spans(now)
        recent = cluster.count_between(recent_start, end)
        if before_start >= recent_start:
            return recent, 0.0
        if traffic is None:
            traffic = self._traffic(now)
        everything_before, everything_recent = traffic
        if everything_before == 0:
            return recent, 0.0
        before = cluster.count_between(before_start, recent_start)
        return recent, before / everything_before * everything_recent

    def _traffic(self, now: datetime) -> tuple[int, int]:
        before_start, recent_start, end = self._spans(now)
        return (
            self._minutes.between(before_start, recent_start),
            self._minutes.between(recent_start, end),
        )

    def emerging(self, now: datetime) -> list[Emerging]:
        """The clusters growing fast at ``now``, largest recent growth first."""
        rules = self.rules
        if self._first is None or now - self._first < rules.warmup:
            return []
        self.merge_close(now)
        _, recent_start, end = self._spans(now)
        traffic = self._traffic(now)
        found = []
        for cluster in self.clusters():
            # Most clusters are small or quiet: skip them before counting anything.
            if cluster.size < rules.min_recent or cluster.last_seen < recent_start:
                continue
            if cluster.count_between(recent_start, end) < rules.min_recent:
                continue
            recent, expected = self.growth_of(cluster, now, traffic=traffic)
            if not is_growing(recent, expected, rules):
                continue
            found.append(self.report(cluster, now, recent=recent, expected=expected))
        found.sort(key=lambda e: (-e.recent, e.first_seen))
        return found

    def report(
        self, cluster: Cluster, now: datetime, *, recent: int | None = None, expected: float = 0
    ) -> Emerging:
        """What is told of a cluster."""
        if recent is None:
            recent, expected = self.growth_of(cluster, now)
        best: list[_Candidate] = []
        for candidate in sorted(cluster.candidates, key=lambda c: -c.similarity):
            # Three different texts say more than one text sent three times.
            if all(candidate.representative.excerpt != b.representative.excerpt for b in best):
                best.append(candidate)
        return Emerging(
            cluster_id=cluster.cluster_id,
            size=cluster.size,
            recent=recent,
            expected_recent=round(expected, 3),
            growth=round(recent / max(expected, 1.0), 2),
            first_seen=cluster.first_seen,
            last_seen=cluster.last_seen,
            top_terms=self.top_terms(cluster),
            categories=dict(cluster.categories.most_common()),
            channels=dict(cluster.channels.most_common()),
            representatives=tuple(c.representative for c in best[: self.rules.representatives]),
            member_ids=tuple(cluster.members),
        )
