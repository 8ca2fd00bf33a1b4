"""The agent API's error answers, as its OpenAPI document states them: RFC 9457 problem details
(services.common.problems), ``type`` naming the router's own problems."""

from __future__ import annotations

from typing import Any

from services.common.problems import Problem as Problem  # the schema of every refusal

DEFAULT_MAX_BODY_BYTES = 1_048_576


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    }
}

#: What any operation of the agent API may answer besides its success.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not JSON, or not UTF-8."},
    401: {
        "model": Problem,
        "description": "Missing or unknown agent token.",
        "headers": {"WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}}},
    },
    403: {
        "model": Problem,
        "description": "`type` .../problems/supervisor-only: a supervisor's action; or "
        ".../problems/not-your-case: a case the agent does not hold.",
    },
    413: {"model": Problem, "description": "The body is over TRIAGE_ROUTER_MAX_BODY_BYTES."},
    422: {
        "model": Problem,
        "description": "`type` .../problems/validation-error: invalid parameters or body, each "
        "named in `errors`; or .../problems/invalid-command: the router refused the command.",
    },
    503: {
        "model": Problem,
        "description": "`type` .../problems/not-ready: the router is starting or on standby; or "
        ".../problems/command-timeout: it did not apply the command in time. Retry (with the "
        "same Idempotency-Key for a command).",
        "headers": RETRY_AFTER,
    },
    500: {"model": Problem, "description": "A bug (`.../problems/internal-error`): nothing more."},
}

#: What the commands on one case may answer besides :data:`ERRORS`.
CASE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "Not your case (.../problems/not-your-case)."},
    404: {"model": Problem, "description": "No such case."},
    409: {
        "model": Problem,
        "description": "Not possible in the case's state (.../problems/state-conflict).",
    },
}

#: What a paged list may answer besides :data:`ERRORS`.
LIST_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Problem,
        "description": "`type` .../problems/invalid-cursor: the cursor is not one this list "
        "gave, or was given for other filters.",
    },
}
