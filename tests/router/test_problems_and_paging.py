"""The agent API's refusals are RFC 9457 problem details, and its lists page with cursors.

The API runs over ASGI on a real routing engine (no broker: commands are applied directly),
as in test_hardening_api; the broker-backed service tests cover the same contract end to end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.common.cases import CaseState
from services.common.messages import Channel
from services.common.problems import PROBLEM_JSON
from services.router.api import create_api
from services.router.commands import Action
from services.router.engine import Engine
from services.router.openapi import document
from services.router.paging import CursorError, decode_cursor, encode_cursor, fingerprint
from services.router.roster import hash_token
from tests.router.factories import T0, agent, command, engine, feedback
from tests.router.test_hardening_api import FakeRuntime
from tests.support.problems import assert_problem as problem_details

BOSS = agent("boss", tier="supervisor", presence="away", token_sha256=hash_token("t-boss"))
AMY = agent("amy", token_sha256=hash_token("t-amy"))
BOB = agent("bob", presence="away", token_sha256=hash_token("t-bob"))
TRUST = agent("tess", team="trust", presence="offline", token_sha256=hash_token("t-tess"))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(
    response: httpx.Response, status: int, *, kind: str | None, path: str
) -> dict[str, Any]:
    """``response`` is problem details of ``status`` and ``kind`` for ``path``."""
    return problem_details(response, status, kind, instance=path)


def make_router() -> Engine:
    return engine(BOSS, AMY, BOB, TRUST)


async def client_for(router: Engine, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    runtime = FakeRuntime(router)
    transport = httpx.ASGITransport(app=create_api(runtime, **options), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        yield client


@pytest.fixture
def router() -> Engine:
    return make_router()


@pytest.fixture
async def client(router: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(router):
        yield client


def new_case(router: Engine, at_s: float, **options: Any) -> uuid.UUID:
    at = T0 + timedelta(seconds=at_s)
    outcome = router.apply(feedback(at=at, **options), at)
    case_ids = {event.case_id for event in outcome.events}
    assert len(case_ids) == 1
    return case_ids.pop()


async def page_through(
    client: httpx.AsyncClient,
    path: str,
    token: str,
    params: dict[str, Any],
    *,
    between: Any = None,
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query, headers=auth(token))
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
        if between is not None:
            between()
    raise AssertionError("the pages never ended")


# ------------------------------------------------------------------ problem details


async def test_every_kind_of_refusal_is_problem_details(router: Engine) -> None:
    amys = new_case(router, 1)  # offered to amy, the one available agent
    async for client in client_for(router, max_body_bytes=2000):
        path = "/v1/cases"
        refused = await client.get(path)
        assert_problem(refused, 401, kind=None, path=path)
        assert refused.headers["www-authenticate"] == "Bearer"
        assert_problem(await client.get(path, headers=auth("nope")), 401, kind=None, path=path)
        assert_problem(
            await client.get("/v1/agents", headers=auth("t-amy")),
            403,
            kind="supervisor-only",
            path="/v1/agents",
        )
        case_path = f"/v1/cases/{amys}"
        assert_problem(
            await client.get(case_path, headers=auth("t-bob")),
            403,
            kind="not-your-case",
            path=case_path,
        )
        accept = f"{case_path}/accept"
        assert_problem(
            await client.post(accept, headers=auth("t-bob")),
            403,
            kind="not-your-case",
            path=accept,
        )
        missing = f"/v1/cases/{uuid.uuid4()}"
        assert_problem(
            await client.get(missing, headers=auth("t-boss")), 404, kind=None, path=missing
        )
        assert_problem(
            await client.get("/v1/nowhere", headers=auth("t-boss")),
            404,
            kind=None,
            path="/v1/nowhere",
        )
        assert_problem(await client.delete(path, headers=auth("t-boss")), 405, kind=None, path=path)
        respond = f"{case_path}/respond"
        conflict = assert_problem(
            await client.post(respond, headers=auth("t-amy")),
            409,
            kind="state-conflict",
            path=respond,
        )
        assert "accept" in conflict["detail"]
        big = f"{case_path}/decline"
        assert_problem(
            await client.post(big, content=b"x" * 5000, headers=auth("t-amy")),
            413,
            kind=None,
            path=big,
        )
        transfer = f"{case_path}/transfer"
        assert_problem(
            await client.post(transfer, json={"to_team": "nowhere"}, headers=auth("t-amy")),
            422,
            kind="invalid-command",
            path=transfer,
        )
        put = "/v1/agents/amy"
        assert_problem(
            await client.put(put, json={**AMY, "id": "someone"}, headers=auth("t-boss")),
            422,
            kind="invalid-command",
            path=put,
        )
        garbage = await client.get(path, params={"cursor": "not-a-cursor"}, headers=auth("t-boss"))
        assert_problem(garbage, 400, kind="invalid-cursor", path=path)


async def test_validation_errors_name_the_fields(client: httpx.AsyncClient, router: Engine) -> None:
    case_id = new_case(router, 1)
    listing = await client.get(
        "/v1/cases", params={"limit": 0, "state": "lost"}, headers=auth("t-boss")
    )
    body = assert_problem(listing, 422, kind="validation-error", path="/v1/cases")
    where = {tuple(error["loc"]) for error in body["errors"]}
    assert ("query", "limit") in where, body["errors"]
    assert ("query", "state", 0) in where, body["errors"]
    assert all(error["msg"] and error["type"] for error in body["errors"])
    assert "limit" in body["detail"]
    assert "state" in body["detail"]

    csat = f"/v1/cases/{case_id}/csat"
    refused = await client.post(csat, json={"score": 9, "extra": 1}, headers=auth("t-boss"))
    body = assert_problem(refused, 422, kind="validation-error", path=csat)
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "score"), ("body", "extra")}
    assert "lost" not in refused.text  # the values sent are never echoed

    unparsable = await client.post(
        csat, content=b"{", headers={**auth("t-boss"), "Content-Type": "application/json"}
    )
    body = assert_problem(unparsable, 422, kind="validation-error", path=csat)
    assert body["errors"][0]["loc"][0] == "body"


async def test_a_bad_body_without_a_token_is_answered_401_as_a_problem(
    client: httpx.AsyncClient, router: Engine
) -> None:
    case_id = new_case(router, 1)
    path = f"/v1/cases/{case_id}/csat"
    refused = await client.post(path, content=b"{", headers={"Content-Type": "application/json"})
    body = assert_problem(refused, 401, kind=None, path=path)
    assert "errors" not in body
    assert refused.headers["www-authenticate"] == "Bearer"


async def test_not_ready_is_a_problem_with_retry_after(router: Engine) -> None:
    class Standby(FakeRuntime):
        @property
        def ready(self) -> bool:
            return False

    transport = httpx.ASGITransport(app=create_api(Standby(router)))
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        refused = await client.get("/v1/me", headers=auth("t-boss"))
    assert_problem(refused, 503, kind="not-ready", path="/v1/me")
    assert int(refused.headers["retry-after"]) >= 1


async def test_a_bug_is_a_problem_without_its_insides(router: Engine) -> None:
    class Broken(FakeRuntime):
        async def submit(self, command: Any) -> Any:
            raise RuntimeError("secret insides")

    transport = httpx.ASGITransport(app=create_api(Broken(router)), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        refused = await client.put(
            "/v1/me/presence", json={"presence": "busy"}, headers=auth("t-amy")
        )
    assert_problem(refused, 500, kind="internal-error", path="/v1/me/presence")
    assert "secret" not in refused.text


def test_openapi_documents_problem_details_for_every_error() -> None:
    schema = document()
    assert set(schema["components"]["schemas"]["Problem"]["required"]) == {
        "title",
        "status",
        "detail",
        "instance",
    }
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    errors = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code[0] in "45":
                    errors += 1
                    assert response["content"] == {
                        PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, (path, method, code)
    assert errors > 50
    unauthorized = schema["paths"]["/v1/cases"]["get"]["responses"]["401"]
    assert "WWW-Authenticate" in unauthorized["headers"]
    unavailable = schema["paths"]["/v1/cases"]["get"]["responses"]["503"]
    assert "Retry-After" in unavailable["headers"]


# ------------------------------------------------------------------ paging


def _hold(router: Engine, case_id: uuid.UUID, agent_id: str, at_s: float) -> None:
    at = T0 + timedelta(seconds=at_s)
    result = router.apply(command(agent_id, Action.ACCEPT, case_id, at=at), at).result
    assert result is not None
    assert result.status.value == "ok", result


async def test_paging_returns_every_case_once_while_cases_arrive_and_change(
    client: httpx.AsyncClient, router: Engine
) -> None:
    initial = [new_case(router, i) for i in range(23)]
    clock = iter(range(100, 10_000))
    arrived: list[uuid.UUID] = []

    def meanwhile() -> None:
        # New cases arrive, and an old one changes (its updated_at moves to now).
        arrived.append(new_case(router, next(clock)))
        offered = [
            r.case.case_id
            for r in router.records.values()
            if r.case.state == CaseState.OFFERED and r.case.case_id in initial
        ]
        if offered:
            _hold(router, offered[0], "amy", next(clock))

    items = await page_through(client, "/v1/cases", "t-boss", {"limit": 4}, between=meanwhile)
    ids = [uuid.UUID(item["case_id"]) for item in items]
    assert len(ids) == len(set(ids)), "a case was returned twice"
    assert set(initial) <= set(ids), "a case was skipped"
    assert set(ids) <= set(initial) | set(arrived)
    assert len(arrived) >= 5
    created = [(item["created_at"], item["case_id"]) for item in items]
    assert created == sorted(created, reverse=True), "not newest first"


async def test_one_page_holds_at_most_limit_and_the_last_has_no_cursor(
    client: httpx.AsyncClient, router: Engine
) -> None:
    for i in range(5):
        new_case(router, i)
    first = (await client.get("/v1/cases", params={"limit": 3}, headers=auth("t-boss"))).json()
    assert len(first["items"]) == 3
    assert first["next_cursor"]
    second = (
        await client.get(
            "/v1/cases", params={"limit": 3, "cursor": first["next_cursor"]}, headers=auth("t-boss")
        )
    ).json()
    assert len(second["items"]) == 2
    assert second["next_cursor"] is None
    whole = (await client.get("/v1/cases", params={"limit": 5}, headers=auth("t-boss"))).json()
    assert len(whole["items"]) == 5
    assert whole["next_cursor"] is None
    too_many = await client.get("/v1/cases", params={"limit": 1001}, headers=auth("t-boss"))
    assert_problem(too_many, 422, kind="validation-error", path="/v1/cases")


async def test_filters_select_what_a_supervisor_asks_for(
    client: httpx.AsyncClient, router: Engine
) -> None:
    email = [new_case(router, i, channel=Channel.EMAIL) for i in range(3)]
    chats = [new_case(router, 10 + i, channel=Channel.CHAT) for i in range(3)]
    trust = new_case(router, 20, category="trust_privacy")
    plain = feedback(at=T0 + timedelta(seconds=30))
    unsure = plain.feedback.model_copy(update={"needs_review": True})
    review = plain.model_copy(update={"feedback": unsure})
    outcome = router.apply(review, T0 + timedelta(seconds=30))
    flagged = next(iter({e.case_id for e in outcome.events}))
    _hold(router, email[0], "amy", 40)  # offered first, it is now assigned and changed at T0+40s

    def ids(items: list[dict[str, Any]]) -> set[uuid.UUID]:
        return {uuid.UUID(item["case_id"]) for item in items}

    async def listed(**params: Any) -> set[uuid.UUID]:
        return ids(await page_through(client, "/v1/cases", "t-boss", {"limit": 2, **params}))

    everything = await listed()
    assert everything == set(router.records)
    assert await listed(channel="chat") == set(chats)
    assert await listed(channel=["chat", "email"]) == everything  # none came by social
    assert await listed(team="trust") == {trust}
    assert await listed(needs_review=True) == {flagged}
    assert flagged not in await listed(needs_review=False)
    assert await listed(state="assigned") == {email[0]}
    by_state = {r.case.case_id for r in router.records.values() if r.case.state != "assigned"}
    assert await listed(state=["offered", "queued"]) == by_state
    assert await listed(updated_since=(T0 + timedelta(seconds=35)).isoformat()) == {email[0]}
    naive = (T0 + timedelta(seconds=35)).replace(tzinfo=None).isoformat()
    assert await listed(updated_since=naive) == {email[0]}
    priorities = {r.case.priority.value for r in router.records.values()}
    for priority in priorities:
        expected = {c for c, r in router.records.items() if r.case.priority.value == priority}
        assert await listed(priority=priority) == expected
    amys = {
        c
        for c, r in router.records.items()
        if "amy" in (r.case.assignee, r.case.offer and r.case.offer.agent_id)
    }
    assert email[0] in amys
    assert amys != everything
    assert await listed(assignee="amy", open=True) == amys


async def test_filters_never_widen_an_agents_scope(
    client: httpx.AsyncClient, router: Engine
) -> None:
    for i in range(6):
        new_case(router, i)
    amys = {c for c, r in router.records.items() if r.case.offer and r.case.offer.agent_id == "amy"}
    assert amys
    assert amys != set(router.records)

    async def listed(token: str, **params: Any) -> set[uuid.UUID]:
        items = await page_through(client, "/v1/cases", token, {"limit": 1, **params})
        return {uuid.UUID(item["case_id"]) for item in items}

    assert await listed("t-amy") == amys
    assert await listed("t-amy", team="care") == amys
    assert await listed("t-amy", state=["offered", "queued", "assigned"]) == amys
    assert await listed("t-amy", assignee="bob") == set()
    assert await listed("t-bob") == set()
    assert await listed("t-bob", open=True, team="care") == set()


async def test_a_cursor_is_refused_with_other_filters(
    client: httpx.AsyncClient, router: Engine
) -> None:
    for i in range(4):
        new_case(router, i)
    first = (
        await client.get("/v1/cases", params={"limit": 1, "team": "care"}, headers=auth("t-boss"))
    ).json()
    cursor = first["next_cursor"]
    others: list[dict[str, Any]] = [{"team": "trust"}, {}, {"team": "care", "open": True}]
    for other in others:
        refused = await client.get(
            "/v1/cases", params={"limit": 1, "cursor": cursor, **other}, headers=auth("t-boss")
        )
        body = assert_problem(refused, 400, kind="invalid-cursor", path="/v1/cases")
        assert "filters" in body["detail"]
    same = await client.get(
        "/v1/cases", params={"limit": 2, "cursor": cursor, "team": "care"}, headers=auth("t-boss")
    )
    assert same.status_code == 200
    agents_cursor = (
        await client.get("/v1/agents", params={"limit": 1}, headers=auth("t-boss"))
    ).json()["next_cursor"]
    crossed = await client.get(
        "/v1/cases", params={"cursor": agents_cursor}, headers=auth("t-boss")
    )
    assert_problem(crossed, 400, kind="invalid-cursor", path="/v1/cases")


async def test_agents_page_by_id_with_filters(client: httpx.AsyncClient) -> None:
    everyone = await page_through(client, "/v1/agents", "t-boss", {"limit": 1})
    ids = [a["profile"]["id"] for a in everyone]
    assert ids == sorted(ids) == ["amy", "bob", "boss", "tess"]
    assert all(
        "token_sha256" not in a["profile"] or a["profile"]["token_sha256"] is None for a in everyone
    )
    trust = await page_through(client, "/v1/agents", "t-boss", {"team": "trust"})
    assert [a["profile"]["id"] for a in trust] == ["tess"]
    away = await page_through(client, "/v1/agents", "t-boss", {"presence": ["away", "offline"]})
    assert [a["profile"]["id"] for a in away] == ["bob", "boss", "tess"]
    seniors = await page_through(client, "/v1/agents", "t-boss", {"tier": "supervisor"})
    assert [a["profile"]["id"] for a in seniors] == ["boss"]
    first = (await client.get("/v1/agents", params={"limit": 1}, headers=auth("t-boss"))).json()
    refused = await client.get(
        "/v1/agents",
        params={"cursor": first["next_cursor"], "team": "care"},
        headers=auth("t-boss"),
    )
    assert_problem(refused, 400, kind="invalid-cursor", path="/v1/agents")


def test_a_forged_cursor_is_refused_not_crashed_on() -> None:
    digest = fingerprint({"list": "cases", "team": None})
    assert decode_cursor(encode_cursor((5, "a"), digest), digest, (int, str)) == (5, "a")
    for key in [("a", 5), (5,), (5, "a", 1), (True, "a"), (5.5, "a")]:
        with pytest.raises(CursorError, match="not one this list gave"):
            decode_cursor(encode_cursor(key, digest), digest, (int, str))  # type: ignore[arg-type]
    for garbage in ["", "%%%", "bnVsbA", "W10", "eyJrIjogMX0"]:  # '', null, [], {"k": 1}
        with pytest.raises(CursorError):
            decode_cursor(garbage, digest, (int, str))
    with pytest.raises(CursorError, match="other filters"):
        decode_cursor(encode_cursor((5, "a"), digest), fingerprint({"team": "x"}), (int, str))
    # Lists count as sets, and unset filters as absent.
    assert fingerprint({"state": ["a", "b"], "team": None}) == fingerprint({"state": ["b", "a"]})
