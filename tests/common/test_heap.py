"""The stream workers' garbage-collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.common.heap import OLDER_THRESHOLD, YOUNG_THRESHOLD, settle


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_settle_keeps_what_lives_now_out_of_collections_and_collects_young_objects_less_often() -> (
    None
):
    kept = [object() for _ in range(100)]
    settle()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
    assert YOUNG_THRESHOLD > 700  # CPython's default


@pytest.mark.usefixtures("restored_collector")
def test_cycles_made_after_settle_are_still_collected() -> None:
    settle()

    class Node:
        other: object

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2
