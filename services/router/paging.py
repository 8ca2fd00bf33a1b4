"""Cursor pagination of the agent API's lists.

A page is the ``limit`` items after the cursor in a fixed order on a key that never changes for
an item (a case's creation time and id, an agent's id), so paging through a list that changes
meanwhile returns every item that was there at the start exactly once: an item updated meanwhile
keeps its place, and an item added meanwhile lands before the first page (newest first) or in
its place by id. The cursor is opaque to clients: the last key of the page and a fingerprint of
the filters, so that a cursor is never applied to another filter set (which would silently skip
or repeat items).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

T = TypeVar("T")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
#: Keys are flat tuples of these: comparable, and JSON round-trips them unchanged.
Key = tuple[int | str, ...]


class CursorError(ValueError):
    """The cursor was not given by this list, or was given for other filters."""


@dataclass(frozen=True, slots=True)
class PageOf(Generic[T]):
    items: list[T]
    next_cursor: str | None


def microseconds(at: datetime) -> int:
    """``at`` as whole microseconds since the epoch: exact, unlike a float timestamp."""
    return (at - EPOCH) // MICROSECOND


def fingerprint(filters: Mapping[str, Any]) -> str:
    """A short digest of a filter set; lists count as sets, absent filters as unset."""

    def canonical(value: Any) -> Any:
        if isinstance(value, list | tuple | set | frozenset):
            return sorted(canonical(v) for v in value)
        if isinstance(value, datetime):
            return microseconds(value)
        return value if value is None or isinstance(value, bool | int | float) else str(value)

    present = {name: canonical(v) for name, v in filters.items() if v is not None and v != []}
    text = json.dumps(present, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_cursor(key: Key, filters: str) -> str:
    """The opaque cursor for the items after ``key`` under the filters of digest ``filters``."""
    text = json.dumps({"k": list(key), "f": filters}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, filters: str, shape: tuple[type, ...]) -> Key:
    """The key a cursor points after; :class:`CursorError` if it is not one of ours (its key
    not of ``shape``), or was given for filters other than those of digest ``filters``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (UnicodeError, ValueError, binascii.Error):
        raise CursorError("the cursor is not one this list gave") from None
    key = data.get("k") if isinstance(data, dict) else None
    if (
        not isinstance(key, list)
        or len(key) != len(shape)
        or not all(type(part) is kind for part, kind in zip(key, shape, strict=True))
    ):
        raise CursorError("the cursor is not one this list gave")
    if data.get("f") != filters:
        raise CursorError(
            "the cursor was given for other filters: repeat the first request's filters, or "
            "start again without a cursor"
        )
    return tuple(key)


def page(
    items: Iterable[T],
    key: Callable[[T], Key],
    *,
    limit: int,
    after: Key | None,
    filters: str,
    newest_first: bool,
) -> PageOf[T]:
    """The ``limit`` items after ``after`` in the order of ``key`` (descending when
    ``newest_first``), and the cursor of the next page if there is one."""
    if after is not None:
        bound = after
        if newest_first:
            items = (item for item in items if key(item) < bound)
        else:
            items = (item for item in items if key(item) > bound)
    pick = heapq.nlargest if newest_first else heapq.nsmallest
    chosen = pick(limit + 1, items, key=key)
    more = len(chosen) > limit
    chosen = chosen[:limit]
    cursor = encode_cursor(key(chosen[-1]), filters) if more else None
    return PageOf(items=chosen, next_cursor=cursor)
