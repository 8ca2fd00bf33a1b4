"""The agent API's error answers, as its OpenAPI document states them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_BODY_BYTES = 1_048_576


class InvalidField(BaseModel):
    """One reason a request was refused as invalid."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """A refusal: a short message, or for invalid input the list of what is wrong."""

    detail: str | list[InvalidField] = Field(examples=["unauthorized", "forbidden", "not found"])


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    }
}

#: What any operation of the agent API may answer besides its success.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not JSON, or not UTF-8."},
    401: {"model": Problem, "description": "Missing or unknown agent token: `unauthorized`."},
    403: {
        "model": Problem,
        "description": "`forbidden`: a supervisor's action, or a case the agent does not hold.",
    },
    413: {"model": Problem, "description": "The body is over TRIAGE_ROUTER_MAX_BODY_BYTES."},
    422: {"model": Problem, "description": "Invalid parameters or body: which and why."},
    503: {
        "model": Problem,
        "description": "The router is starting or on standby, or did not apply the command in "
        "time; retry (with the same Idempotency-Key for a command).",
        "headers": RETRY_AFTER,
    },
}

#: What the commands on one case may answer besides :data:`ERRORS`.
CASE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "Not your case."},
    404: {"model": Problem, "description": "No such case."},
    409: {"model": Problem, "description": "Not possible in the case's state."},
}
