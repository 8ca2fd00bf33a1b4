"""Hypothesis strategies for hostile input: random bytes, random JSON, absurd nesting and huge
numbers, and valid documents with one part replaced by something else."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

#: Strings that have broken parsers before: the calendar's edges with offsets that move them
#: out of range, surrogates, controls, huge and odd numbers as text, markup.
EDGE_STRINGS = [
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999+00:00",
    "2026-02-30T10:00:00Z",
    "2026-11-23T10:00:00",
    "2026-11-23",
    "1e309",
    "-0",
    "NaN",
    "\x00",
    "\u202e\u200b\ufeff",
    "<script>alert(1)</script>",
    "=?utf-8?B?AAAA?=",
    "a" * 5000,
]

_offsets = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
iso_times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=_offsets
).map(datetime.isoformat)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50),
    st.sampled_from(EDGE_STRINGS),
    iso_times,
    st.uuids().map(str),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=12), children, max_size=5),
    ),
    max_leaves=20,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any, delete: bool) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    if delete and not rest:
        del copy[head]
        return copy
    copy[head] = _replace(copy[head], rest, new, delete)
    return copy


_TIME = re.compile(r"^\d{4}-\d\d-\d\dT")
edge_times = st.one_of(st.sampled_from(EDGE_STRINGS[:6]), iso_times)


def _retimed(value: Any, time: str) -> Any:
    if isinstance(value, dict):
        return {key: _retimed(child, time) for key, child in value.items()}
    if isinstance(value, list):
        return [_retimed(child, time) for child in value]
    return time if isinstance(value, str) and _TIME.match(value) else value


@st.composite
def mutated(draw: st.DrawFn, documents: list[Any]) -> Any:
    """A valid document with one part replaced by a random value, or removed, or a key added,
    or every time in it moved to one odd time (the calendar's edges included)."""
    document = draw(st.sampled_from(documents))
    path = draw(st.sampled_from(_paths(document)))
    action = draw(st.sampled_from(["replace", "replace", "delete", "add", "times"]))
    if action == "times":
        return _retimed(document, draw(edge_times))
    if action == "delete" and path:
        return _replace(document, path, None, delete=True)
    if action == "add":
        target = document
        for part in path:
            target = target[part]
        if isinstance(target, dict):
            key = draw(st.one_of(st.text(max_size=12), st.sampled_from(list(target) or ["x"])))
            return _replace(document, path, {**target, key: draw(json_values)}, delete=False)
    return _replace(document, path, draw(json_values), delete=False)


def nested(depth: int) -> bytes:
    """JSON nested ``depth`` levels deep, inside an object."""
    return b'{"a": ' + b"[" * depth + b"]" * depth + b"}"


def encoded(value: Any) -> bytes:
    """JSON bytes of a value (NaN and infinities included, as Python writes them)."""
    return json.dumps(value).encode()


def record_values(documents: list[Any]) -> st.SearchStrategy[bytes]:
    """What may arrive as a Kafka record value where ``documents`` are expected."""
    return st.one_of(
        st.binary(max_size=2048),
        json_values.map(encoded),
        mutated(documents).map(encoded),
        mutated(documents).map(encoded).map(lambda raw: raw[: len(raw) // 2]),
        st.integers(min_value=1, max_value=100_000).map(nested),
        st.sampled_from([b"", b"null", b"[]", b"{}", b'"x"', b"1" * 5000, b"\xff\xfe{}"]),
    )


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
