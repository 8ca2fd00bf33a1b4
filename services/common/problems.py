"""Problem details (RFC 9457): how both HTTP APIs answer every 4xx and 5xx.

A refusal is ``application/problem+json`` with ``type``, ``title``, ``status``, ``detail`` and
``instance`` (the request path); a validation refusal adds ``errors``, one entry per offending
field. ``type`` is ``about:blank`` when the HTTP status says it all (401, 404, 405, 413, ...)
and a URI of its own for each problem that is this service's (see :data:`TITLES`), so a client
can branch on ``type`` without parsing ``detail``. The URIs identify; they need not resolve.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://complaint-triage.dev/problems/"

#: The problems that are the service's own, by kind: their ``type`` is ``TYPE_BASE + kind``.
TITLES: dict[str, str] = {
    "validation-error": "The request is not valid",
    "too-complex": "The body is too complex to parse in time",
    "rate-limited": "Too many requests",
    "broker-unavailable": "The message broker is unavailable",
    "parser-unavailable": "No parse worker is available",
    "not-ready": "The router is starting or on standby",
    "command-timeout": "The router did not apply the command in time",
    "floor-unreachable": "The router of the caller's floor did not answer",
    "not-your-case": "Not your case",
    "supervisor-only": "Only a supervisor may do this",
    "state-conflict": "Not possible in the case's state",
    "invalid-command": "The command is not valid",
    "invalid-cursor": "The cursor is not valid for this request",
    "internal-error": "Internal error",
}


class FieldError(BaseModel):
    """One offending field: where (``loc``, as FastAPI spells it), why and the error's type."""

    loc: list[str | int] = Field(examples=[["body", "text"]])
    msg: str = Field(examples=["Field required"])
    type: str = Field(examples=["missing"])


class Problem(BaseModel):
    """A refusal, as RFC 9457 problem details; some kinds add members of their own."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": TYPE_BASE + "validation-error",
                    "title": TITLES["validation-error"],
                    "status": 422,
                    "detail": "1 field is not valid: body.text: Field required",
                    "instance": "/v1/feedback",
                    "errors": [
                        {"loc": ["body", "text"], "msg": "Field required", "type": "missing"}
                    ],
                }
            ]
        },
    )

    type: str = Field(
        default="about:blank",
        description="The kind of problem: about:blank when the status says it all, else "
        f"{TYPE_BASE}<kind>.",
    )
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str = Field(description="What went wrong this time, for a person.")
    instance: str = Field(description="The path of the request that was refused.")
    errors: list[FieldError] | None = Field(
        default=None, description="For a validation error: each offending field."
    )


def problem_type(kind: str | None) -> str:
    """The ``type`` URI of a kind (``about:blank`` for none)."""
    if kind is None:
        return "about:blank"
    if kind not in TITLES:
        raise ValueError(f"unknown problem kind {kind!r}")
    return TYPE_BASE + kind


def _title(status: int, kind: str | None) -> str:
    if kind is not None:
        return TITLES[kind]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    status: int,
    detail: str,
    *,
    instance: str,
    kind: str | None = None,
    errors: Iterable[FieldError] | None = None,
) -> Problem:
    """The problem details of one refusal."""
    return Problem(
        type=problem_type(kind),
        title=_title(status, kind),
        status=status,
        detail=detail,
        instance=instance,
        errors=list(errors) if errors is not None else None,
    )


def problem_response(
    status: int,
    detail: str,
    *,
    instance: str,
    kind: str | None = None,
    errors: Iterable[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """The ``application/problem+json`` answer of one refusal, with ``headers`` (Retry-After,
    WWW-Authenticate, ...) kept and ``extensions`` as extra members."""
    body = problem(status, detail, instance=instance, kind=kind, errors=errors)
    content = body.model_dump(mode="json", exclude_none=True)
    for name, value in (extensions or {}).items():
        content.setdefault(name, value)
    return JSONResponse(
        content,
        status_code=status,
        headers=dict(headers) if headers else None,
        media_type=PROBLEM_JSON,
    )


def field_errors_of(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """Pydantic's or FastAPI's error dicts as :class:`FieldError` (never the input values: they
    may be customer text or secrets)."""
    return [
        FieldError(
            loc=[part for part in err.get("loc", ()) if isinstance(part, str | int)],
            msg=str(err.get("msg", "")),
            type=str(err.get("type", "")),
        )
        for err in errors
    ]


def validation_detail(errors: list[FieldError]) -> str:
    """One line naming the offending fields, for people and for consoles that show one line."""
    named = "; ".join(
        f"{'.'.join(str(p) for p in err.loc)}: {err.msg}" if err.loc else err.msg
        for err in errors[:5]
    )
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    count = f"{len(errors)} field{' is' if len(errors) == 1 else 's are'} not valid"
    return f"{count}: {named}{more}" if named else count


def validation_problem(request: Request, errors: list[FieldError]) -> JSONResponse:
    """422 naming the offending fields."""
    return problem_response(
        422,
        validation_detail(errors),
        instance=request.url.path,
        kind="validation-error",
        errors=errors,
    )


class ProblemError(HTTPException):
    """An HTTP refusal of a known kind; answered as problem details by :func:`http_problem`."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        kind: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        problem_type(kind)  # an unknown kind is a bug: fail where it is raised
        super().__init__(status_code, detail, dict(headers) if headers else None)
        self.kind = kind


def http_problem(request: Request, exc: HTTPException) -> JSONResponse:
    """Any Starlette/FastAPI HTTPException (routing's 404 and 405, a body that is not JSON, a
    :class:`ProblemError`) as problem details."""
    kind = exc.kind if isinstance(exc, ProblemError) else None
    detail = (
        exc.detail if isinstance(exc.detail, str) and exc.detail else _title(exc.status_code, None)
    )
    return problem_response(
        exc.status_code, detail, instance=request.url.path, kind=kind, headers=exc.headers
    )


def request_validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation error as a 422 problem naming the fields."""
    return validation_problem(request, field_errors_of(exc.errors()))


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI document whose every 4xx and 5xx response is ``application/problem+json`` with
    the :class:`Problem` schema (FastAPI documents them as ``application/json``, and its own
    422 with a schema of its own)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    defs = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in defs.pop("$defs", {}).items():
        components[name] = definition
    components["Problem"] = defs
    reference = {"$ref": "#/components/schemas/Problem"}
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue  # probes (/readyz) answer their own body, for people and orchestrators
        for operation in operations.values():
            for code, response in operation.get("responses", {}).items():
                if code[0] in "45":
                    response["content"] = {PROBLEM_JSON: {"schema": dict(reference)}}
    # FastAPI's own error schemas go once nothing refers to them (the second refers to the first).
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}" not in json_refs(schema):
            components.pop(name, None)
    return schema


def json_refs(node: Any) -> set[str]:
    """Every ``$ref`` in a JSON document."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
