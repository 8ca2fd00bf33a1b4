"""Request bodies to models: pure functions, run in the request for small bodies and by a parse
worker (:mod:`services.ingest.workers`) for large ones.

They return their outcome rather than raise it (field errors are values here), so that a worker
sends back a small, picklable answer whatever the input.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from services.ingest.email import EmailParseError, ParsedEmail, parse_email
from services.ingest.models import BatchIn, FieldError

M = TypeVar("M", bound=BaseModel)

# The modules a parse worker imports before its first job.
WORKER_MODULES = (__name__,)


def field_errors(
    exc: ValidationError, prefix: tuple[str | int, ...] = ("body",)
) -> list[FieldError]:
    """Validation errors as field errors, without echoing the input back."""
    return [
        FieldError(loc=[*prefix, *err["loc"]], msg=err["msg"], type=err["type"])
        for err in exc.errors(include_url=False, include_input=False)
    ]


def decode_json(model: type[M], body: bytes) -> M | list[FieldError]:
    """The body as ``model``, or what is wrong with it."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        return field_errors(exc)


@lru_cache(maxsize=16)
def _bounded_batch(max_items: int) -> type[BatchIn]:
    # A list over its maximum length is refused without an error for each of its items.
    items: Any = (list[dict[str, Any]], Field(min_length=1, max_length=max_items))
    return create_model("BoundedBatchIn", __base__=BatchIn, items=items)


def decode_batch(body: bytes, *, max_items: int) -> BatchIn | list[FieldError]:
    """The body as a batch of at most ``max_items`` items, or what is wrong with it."""
    try:
        bounded = _bounded_batch(max_items).model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(err["type"] == "too_long" and err["loc"] == ("items",) for err in errors):
            return [
                FieldError(loc=["body", "items"], msg=f"at most {max_items} items", type="too_long")
            ]
        return field_errors(exc)
    # The bounded model's class exists only in this process: answer with the public one.
    return BatchIn.model_construct(items=bounded.items)


@lru_cache(maxsize=16)
def _bounded_events(max_items: int) -> TypeAdapter[list[dict[str, Any]]]:
    return TypeAdapter(Annotated[list[dict[str, Any]], Field(min_length=1, max_length=max_items)])


def decode_cloudevents_batch(body: bytes, *, max_items: int) -> BatchIn | list[FieldError]:
    """A CloudEvents JSON batch (an array of structured events) of at most ``max_items``, as a
    batch of items, or what is wrong with it."""
    try:
        items = _bounded_events(max_items).validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(err["type"] == "too_long" and err["loc"] == () for err in errors):
            return [FieldError(loc=["body"], msg=f"at most {max_items} events", type="too_long")]
        return field_errors(exc)
    return BatchIn.model_construct(items=items)


def decode_email(
    raw: bytes, *, max_bytes: int, max_text_chars: int
) -> ParsedEmail | EmailParseError:
    """The parsed e-mail (its text cut to ``max_text_chars``), or why it is unusable."""
    try:
        return parse_email(raw, max_bytes=max_bytes, max_text_chars=max_text_chars)
    except EmailParseError as exc:
        return exc
