"""Consumer lag arithmetic."""

from __future__ import annotations

from typing import NamedTuple

from services.common.lag import lag_by_partition


class TP(NamedTuple):
    topic: str
    partition: int


def test_lag_is_end_minus_committed_or_read_and_never_negative() -> None:
    a, b, c = TP("t", 0), TP("t", 1), TP("u", 0)
    lags = lag_by_partition({a: 100, b: 50, c: 10}, {a: 90, c: 12}, {b: 20})
    assert lags == {("t", 0): 10, ("t", 1): 30, ("u", 0): 0}


def test_nothing_read_or_committed_counts_everything() -> None:
    assert lag_by_partition({TP("t", 3): 7}, {}, {}) == {("t", 3): 7}
