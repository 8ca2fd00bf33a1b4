"""Everything the trends keep, fed one observation at a time, judged on a clock, and queried.

Pure: the worker reads records and passes the time; the API asks the questions below. The
clock is the messages' own time while history is replayed (so baselines are what they were)
and the wall clock once the worker has caught up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.trends.clusters import Cluster, Clusterer, ClusterRules, Emerging, grew_enough
from services.trends.observation import Observation
from services.trends.surges import Surge, SurgeDetector, SurgeRules
from services.trends.windows import SPAN, WIDTH, Bucket, Granularity, Key, RecentIds, Volumes

MINUTE = timedelta(minutes=1)
#: Most minutes judged one by one when the clock jumps (a gap in the traffic); beyond that the
#: clock jumps too and only the last minute is judged.
MAX_CATCH_UP_MINUTES = 24 * 60


@dataclass(frozen=True, slots=True)
class GrowthUpdate:
    """A cluster reported before that has grown enough since to be reported again."""

    version: str  # the model version (embedding space) of the cluster
    report: Emerging
    number: int  # the report's sequence number: 1 was the first report, so 2 and on
    previous_size: int  # the cluster's size at its last report


@dataclass(frozen=True, slots=True)
class Reported:
    """What was last reported of a cluster: when, its sequence number and its size then."""

    at: datetime
    number: int
    size: int


@dataclass
class Changes:
    """What changed when the clock moved: surges started or ended, clusters newly emerging,
    and emerging clusters that have grown enough since their last report."""

    surges: list[Surge] = field(default_factory=list)
    emerging: list[tuple[str, Emerging]] = field(default_factory=list)  # (model version, report)
    updates: list[GrowthUpdate] = field(default_factory=list)


class TrendsState:
    """Volumes, surges and clusters (one clusterer per model version: sketches of different
    models are not comparable)."""

    def __init__(
        self, surge_rules: SurgeRules | None = None, cluster_rules: ClusterRules | None = None
    ) -> None:
        self.cluster_rules = cluster_rules or ClusterRules()
        self.ids = RecentIds()
        self.volumes = Volumes()
        self.surges = SurgeDetector(surge_rules)
        self.clusterers: dict[str, Clusterer] = {}
        self.clock: datetime | None = None
        self.observed = 0
        self.repeats = 0
        self._reported: dict[str, Reported] = {}  # cluster id -> its last report
        self._emerging: list[tuple[str, Emerging]] = []

    def add(self, observation: Observation) -> Changes:
        """Count an observation; judging first every minute the clock passes on the way to it."""
        changes = Changes()
        minute = observation.at.replace(second=0, microsecond=0)
        if self.clock is None:
            self.clock = minute
        elif minute > self.clock:
            changes = self.advance(minute)
        if not self.ids.add(observation.event_id, observation.at):
            self.repeats += 1
            return changes
        self.observed += 1
        self.volumes.add(observation)
        self.surges.add(observation)
        clusterer = self.clusterers.get(observation.model_version)
        if clusterer is None:
            clusterer = self.clusterers[observation.model_version] = Clusterer(self.cluster_rules)
        clusterer.add(observation)
        return changes

    def advance(self, now: datetime) -> Changes:
        """Move the clock to ``now`` and judge each whole minute passed (the last one when the
        gap is long); what started, ended or emerged."""
        changes = Changes()
        if self.clock is None or now <= self.clock:
            return changes
        steps = int((now - self.clock) / MINUTE)
        if steps > MAX_CATCH_UP_MINUTES:
            self.clock = now - MINUTE * MAX_CATCH_UP_MINUTES
        while self.clock + MINUTE <= now:
            self.clock += MINUTE
            self._judge(self.clock, changes)
            if self.clock.minute == 0:
                self._prune(self.clock)
        if now > self.clock:
            self.clock = now
            self._judge(now, changes)
        return changes

    def _judge(self, now: datetime, changes: Changes) -> None:
        changes.surges.extend(self.surges.evaluate(now))
        current = []
        for version, clusterer in self.clusterers.items():
            for report in clusterer.emerging(now):
                current.append((version, report))
                last = self._reported.get(report.cluster_id)
                if last is None:
                    self._reported[report.cluster_id] = Reported(now, 1, report.size)
                    changes.emerging.append((version, report))
                elif grew_enough(report.size, last.size, self.cluster_rules):
                    number = last.number + 1
                    self._reported[report.cluster_id] = Reported(now, number, report.size)
                    changes.updates.append(GrowthUpdate(version, report, number, last.size))
        self._emerging = current

    def _prune(self, now: datetime) -> None:
        self.ids.prune(now)
        self.volumes.prune(now)
        self.surges.prune(now)
        for clusterer in self.clusterers.values():
            clusterer.prune(now)
        # A cluster quiet for a day is forgotten; one still emerging keeps its sequence, so
        # its next update does not take the id of an earlier one.
        horizon = now - SPAN[Granularity.FIVE_MINUTES]
        emerging = {report.cluster_id for _, report in self._emerging}
        for cluster_id in [
            c for c, last in self._reported.items() if last.at < horizon and c not in emerging
        ]:
            del self._reported[cluster_id]

    # --- queries ----------------------------------------------------------------------------

    def buckets(
        self,
        granularity: Granularity,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        admit: Callable[[Key], bool] = lambda key: True,
    ) -> list[Bucket]:
        """The volume buckets of a granularity (default: its whole span up to the clock)."""
        until = until or self.clock
        if until is None:
            return []
        since = since or until - SPAN[granularity] + WIDTH[granularity]
        return self.volumes.buckets(granularity, since=since, until=until, admit=admit)

    def emerging(self) -> list[tuple[str, Emerging]]:
        """The clusters emerging at the clock, with their model version."""
        return list(self._emerging)

    def cluster(self, cluster_id: str) -> tuple[str, Clusterer, Cluster] | None:
        """A live cluster by id, with its model version and clusterer."""
        for version, clusterer in self.clusterers.items():
            found = clusterer.get(cluster_id)
            if found is not None:
                return version, clusterer, found
        return None

    def surge_history(self) -> list[Surge]:
        """Every surge remembered, newest first; an active one with its peak so far."""
        active = {s.surge_id: s for s in self.surges.active()}
        return [active.get(s.surge_id, s) for s in reversed(self.surges.history)]
