"""Garbage-collector settings for the long-running stream workers.

A worker allocates many short-lived objects per record (parsed messages, events, producer
futures) on top of a large heap that lives as long as the process (faust, the model, the
libraries). With CPython's defaults a young collection runs every 700 net allocations, and the
older collections walk that whole heap again and again: in the router worker the collector
took about a third of the engine's own time. :func:`settle` moves everything alive at start
out of the collector's sight (``gc.freeze``) and collects young objects less often. Objects
are still freed by reference counting as soon as they are unused; only reference cycles wait
for a collection, and a young collection still runs every :data:`YOUNG_THRESHOLD` net
allocations.
"""

from __future__ import annotations

import gc
from typing import Final

#: Net allocations between two young collections (CPython's default is 700).
YOUNG_THRESHOLD: Final = 20_000
#: Young collections between two middle ones, and middle ones between two full ones.
OLDER_THRESHOLD: Final = 20


def settle() -> None:
    """Collect once, keep what is alive now out of later collections, and collect young
    objects less often. Call it once the process has loaded what it keeps for its life."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
