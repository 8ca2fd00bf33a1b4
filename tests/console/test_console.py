"""The console in a real browser (Debian's chromium) against the running stack on the broker:
an agent is offered the case of a posted e-mail and works it, a supervisor watches the queue
and reassigns and corrects a case, agents cannot see each other's cases, a supervisor confirms
a case held for review and it is offered, an agent whose console closed is set away and comes
back, and the pages are usable by keyboard at 1280x800 with labelled controls and readable
contrast."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from services.common.messages import Channel, Correction
from services.common.topics import feedback_corrections
from services.demo import incidents
from services.demo.traffic import load_samples
from tests.console.conftest import (
    DISCONNECT_GRACE_S,
    HELD_CATEGORY,
    HELD_CHANNEL,
    Stack,
    token,
)
from tests.router.factories import feedback
from tests.support.kafka import read_records

pytestmark = pytest.mark.timeout(300)
VIEWPORT = {"width": 1280, "height": 800}
ARRIVAL_MS = 90_000  # ingest → classifier → router → the offer in the browser


@pytest.fixture
async def pages(browser: Browser) -> AsyncIterator[list[Page]]:
    """Fresh browser contexts (one per signed-in person), closed after the test."""
    opened: list[Page] = []
    yield opened
    for page in opened:
        await page.context.close()


async def sign_in(browser: Browser, stack: Stack, agent_id: str, pages: list[Page]) -> Page:
    context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = await context.new_page()
    pages.append(page)
    await page.goto(f"{stack.router.base}/console/")
    await page.get_by_label("Agent token").fill(token(agent_id))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return page


def case_by_subject(stack: Stack, agent_id: str, subject: str) -> dict[str, Any]:
    with stack.api(agent_id) as api:
        cases = api.get("/v1/cases", params={"limit": 1000}).json()["items"]
    (case,) = [c for c in cases if c["subject"] == subject]
    return dict(case)


async def test_agent_accepts_an_offer_from_an_email_and_resolves_it(
    browser: Browser, stack: Stack, pages: list[Page]
) -> None:
    stack.set_presence(ana="available", ben="away")
    page = await sign_in(browser, stack, "ana", pages)
    await expect(page.get_by_role("heading", name="Offers")).to_be_visible()
    await expect(page.get_by_role("heading", name="My cases")).to_be_visible()

    subject = f"Blender arrived broken {uuid.uuid4().hex[:6]}"
    stack.post_email(
        subject,
        "Hello,\r\n\r\nThe blender I ordered (order #48213) arrived with a cracked jug. "
        "I paid £89.99 and would like a replacement.\r\n\r\nThanks,\r\nDana",
        sender="Dana Smith <dana.smith@example.com>",
    )
    offer = page.get_by_role("listitem").filter(has_text=subject)
    await expect(offer).to_be_visible(timeout=ARRIVAL_MS)
    await expect(offer).to_contain_text("Expires in")
    await offer.get_by_role("button", name="Accept").click()

    await expect(page.get_by_role("heading", level=2, name=subject)).to_be_visible()
    case = case_by_subject(stack, "ana", subject)
    assert case["state"] == "assigned"
    assert case["assignee"] == "ana"
    await expect(page.get_by_role("heading", name="Handling guidance")).to_be_visible()
    await expect(page.get_by_text(case["guidance"], exact=False).first).to_be_visible()
    await expect(page.get_by_text("48213").first).to_be_visible()
    await expect(page.get_by_text("89.99").first).to_be_visible()
    category = case["messages"][0]["category"]
    percent = f"{round(category['probability'] * 100)}%"
    await expect(page.get_by_text(percent).first).to_be_visible()

    await page.get_by_label("Reply").fill("Sorry, Dana: a new jug is on its way today.")
    await page.get_by_role("button", name="Respond").click()
    await expect(page.get_by_role("status")).not_to_be_empty()
    await page.get_by_label("Resolution note").fill("Replacement jug sent.")
    await page.get_by_role("button", name="Resolve").click()
    await expect(page.get_by_role("button", name="Resolve")).to_have_count(0)
    case = case_by_subject(stack, "ana", subject)
    assert case["state"] == "resolved"
    assert case["first_response_at"] is not None
    assert case["resolution_note"] == "Replacement jug sent."
    my_cases = page.get_by_role("region", name="My cases")
    await expect(my_cases.get_by_text(subject)).to_have_count(0)

    # Another agent cannot open it, not even by its address.
    other = await sign_in(browser, stack, "ben", pages)
    await other.goto(f"{stack.router.base}/console/#/cases/{case['case_id']}")
    await expect(other.get_by_role("alert")).to_contain_text("You cannot open this case")
    await expect(other.get_by_text("cracked jug")).to_have_count(0)


async def test_supervisor_sees_the_queue_reassigns_and_corrects_tags(
    browser: Browser, stack: Stack, pages: list[Page]
) -> None:
    stack.set_presence(ana="away", ben="away")
    page = await sign_in(browser, stack, "kate", pages)
    await page.get_by_role("navigation").get_by_role("link", name="Floor").click()
    queues = page.get_by_role("table", name="Team queues")
    care = queues.get_by_role("row").filter(has_text="Customer care")
    depth = care.get_by_role("cell").last  # the team's total waiting
    await expect(depth).to_have_text("0")

    subject = f"Charged twice {uuid.uuid4().hex[:6]}"
    stack.post_email(
        subject,
        "Hi, I was charged twice for invoice 7731 this month. Please refund the duplicate.",
        sender="Lee Park <lee.park@example.com>",
    )
    with stack.api("kate") as api:
        case = await _wait_for_case(api, subject)
    short = case["case_id"][:8]
    assert case["state"] == "queued", "nobody is available"
    await expect(depth).to_have_text("1", timeout=15_000)
    await expect(care).to_contain_text("oldest wait")

    await page.get_by_label(f"Reassign {short} to").select_option("ben")
    row = (
        page.get_by_role("table", name="Open cases")
        .get_by_role("row")
        .filter(has=page.get_by_label(f"Reassign {short} to"))
    )
    await row.get_by_role("button", name="Reassign").click()
    await expect(page.get_by_role("status")).not_to_be_empty()
    with stack.api("kate") as api:
        reassigned = api.get(f"/v1/cases/{case['case_id']}").json()
        assert reassigned["assignee"] == "ben"
        assert reassigned["state"] == "assigned"
        (care_queue,) = [q for q in api.get("/v1/queues").json() if q["team"] == "care"]
        assert care_queue["depth"] == 0
    await expect(depth).to_have_text("0", timeout=15_000)

    await row.get_by_role("button", name="Correct tags").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    new_category = "policy" if case["category"] != "policy" else "billing"
    await dialog.get_by_label("Category").select_option(new_category)
    await dialog.get_by_role("button", name="Save correction").click()
    await expect(dialog).to_be_hidden()
    with stack.api("kate") as api:
        assert api.get(f"/v1/cases/{case['case_id']}").json()["category"] == new_category
    records = await read_records(
        stack.kafka, stack.kafka.topic(feedback_corrections), expected=1, timeout_s=15
    )
    corrections = [Correction.model_validate_json(r.value) for r in records]
    mine = [c for c in corrections if str(c.case_id) == case["case_id"]]
    assert [(c.label_category, c.corrected_by) for c in mine] == [(new_category, "kate")]


async def _wait_for_case(api: Any, subject: str) -> dict[str, Any]:
    for _ in range(300):
        listed = api.get("/v1/cases", params={"limit": 1000}).json()["items"]
        cases = [c for c in listed if c["subject"] == subject]
        if cases:
            return dict(cases[0])
        await asyncio.sleep(0.3)
    raise AssertionError(f"no case for {subject!r}")


ACCESSIBILITY_AUDIT = """
() => {
  const problems = [];
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  for (const el of document.querySelectorAll('input, select, textarea, button')) {
    if (!visible(el) || el.type === 'hidden') continue;
    const name = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
      || (el.labels && el.labels.length) || (el.tagName === 'BUTTON' && el.textContent.trim());
    if (!name) problems.push('unlabelled ' + el.outerHTML.slice(0, 120));
  }
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92
      : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const value = rgb(getComputedStyle(node).backgroundColor);
      if (value.length === 3 || (value.length === 4 && value[3] > 0.9)) return value.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const el of document.querySelectorAll('body *')) {
    if (!visible(el)) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const fg = rgb(style.color).slice(0, 3);
    const [a, b] = [lum(fg), lum(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const large = parseFloat(style.fontSize) >= 24
      || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      const text = el.textContent.trim().slice(0, 40);
      problems.push(`contrast ${ratio.toFixed(2)} ${el.tagName} "${text}"`);
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth) {
    problems.push('horizontal scroll: ' + document.documentElement.scrollWidth);
  }
  return problems;
}
"""


async def test_keyboard_sign_in_labels_contrast_and_fit_at_1280x800(
    browser: Browser, stack: Stack, pages: list[Page]
) -> None:
    context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = await context.new_page()
    pages.append(page)
    await page.goto(f"{stack.router.base}/console/")
    await expect(page.get_by_label("Agent token")).to_be_visible()
    assert await page.evaluate(ACCESSIBILITY_AUDIT) == []

    # Keyboard only: Tab reaches the token field, Enter signs in.
    for _ in range(10):
        if await page.evaluate("document.activeElement?.labels?.[0]?.textContent") == "Agent token":
            break
        await page.keyboard.press("Tab")
    else:
        raise AssertionError("Tab never reached the token field")
    await page.keyboard.type("wrong-token")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alert")).to_contain_text("not accepted")
    await page.get_by_label("Agent token").fill(token("kate"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert await page.evaluate(ACCESSIBILITY_AUDIT) == []

    await page.get_by_role("link", name="Floor").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("table", name="Team queues")).to_be_visible()
    await expect(page.get_by_role("table", name="Agents")).to_be_visible()
    assert await page.evaluate(ACCESSIBILITY_AUDIT) == []
    focus_ring = await page.evaluate(
        "() => { const b = document.querySelector('button'); b.focus();"
        " const s = getComputedStyle(b); return s.outlineStyle + ' ' + s.outlineWidth; }"
    )
    assert not focus_ring.startswith("none"), "focused controls show a ring"

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Agent token")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0, "the token is forgotten"


async def _wait_for(check: Any, what: str, timeout_s: float = 120) -> Any:
    """Poll ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def test_trends_emerging_issue_tagged_as_an_incident_reaches_the_agent(
    browser: Browser, stack: Stack, pages: list[Page]
) -> None:
    """A burst of near-identical complaints among background traffic: the Trends view draws
    its volumes, the emerging panel shows the burst, the supervisor opens its cases and tags
    them with an incident, and the agent offered one of them sees the incident on it."""
    stack.set_presence(ana="available", ben="away")
    agent = await sign_in(browser, stack, "ana", pages)
    rng = random.Random(23)
    run = uuid.uuid4().hex[:6]
    channels = ["chat", "social", "email"]  # those Ana works, so she is offered some
    burst_ids = {
        stack.post_feedback(
            {
                "id": f"burst-{run}-{n}",
                "channel": rng.choice(channels),
                "customer": {"id": f"burst-{run}-{n}"},
                "text": text,
            }
        )
        for n, text in enumerate(incidents.texts(incidents.OUTAGE, 30, rng))
    }
    samples = [s for s in load_samples() if len(s.text) < 400]
    for n, sample in enumerate(rng.sample(samples, 30)):
        stack.post_feedback(
            {
                "id": f"bg-{run}-{n}",
                "channel": rng.choice(channels),
                "customer": {"id": f"bg-{run}-{n}"},
                "text": sample.text,
            }
        )

    trends = httpx.Client(
        base_url=stack.router.base, headers={"Authorization": f"Bearer {token('kate')}"}
    )

    def burst_cluster() -> dict[str, Any] | None:
        answer = trends.get("/v1/trends/emerging")  # through the router's forwarding
        assert answer.status_code == 200, answer.text
        for cluster in answer.json():
            members = trends.get(f"/v1/trends/emerging/{cluster['cluster_id']}").json()
            if len(set(members["member_ids"]) & burst_ids) >= 20:
                return dict(members)
        return None

    with trends:
        cluster = await _wait_for(burst_cluster, "the burst's emerging cluster")
        await _wait_for(
            lambda: (
                trends.get("/v1/trends", params={"window": "5m"}).json()["totals"]["total"] >= 60
            ),
            "the volumes of every message",
        )
    with stack.api("kate") as api:
        await _wait_for(
            lambda: (
                len(
                    api.get(
                        "/v1/cases", params={"event_id": sorted(burst_ids), "limit": 500}
                    ).json()["items"]
                )
                == 30
            ),
            "a case for every message of the burst",
        )

    page = await sign_in(browser, stack, "kate", pages)
    await page.get_by_role("navigation").get_by_role("link", name="Trends").click()
    volumes = page.get_by_role("region", name="Volumes by category")
    await expect(volumes.get_by_role("img", name="Messages by category over time")).to_be_visible()
    assert await volumes.locator("rect.segment").count() > 0, "bars are drawn"
    await expect(volumes.get_by_role("list", name="Categories")).not_to_be_empty()
    sentiment = page.get_by_role("region", name="Sentiment share")
    assert await sentiment.locator("rect.segment").count() > 0
    await expect(
        page.get_by_role("img", name="Messages by difficult-customer type").or_(
            page.get_by_text("No difficult-customer messages")
        )
    ).to_be_visible()
    # A filter asks again: social alone has fewer messages than every channel.
    await page.get_by_label("Channel").select_option("social")
    await expect(volumes).to_contain_text("(channel Social)")
    await page.get_by_label("Channel").select_option("")

    # The burst's cluster, with its figures and three excerpts.
    issue = page.locator(f'article[data-key="{cluster["cluster_id"]}"]')
    await expect(issue).to_be_visible()
    await expect(issue.get_by_role("list", name="Representative messages")).to_be_visible()
    await expect(
        issue.get_by_role("list", name="Representative messages").get_by_role("listitem")
    ).to_have_count(3)
    await expect(issue).to_contain_text("Growth")
    assert await page.evaluate(ACCESSIBILITY_AUDIT) == []

    await issue.get_by_role("button", name="Open cases").click()
    listed = issue.get_by_role("table")
    await expect(listed).to_be_visible()
    assert await listed.locator("tbody tr").count() >= 20

    reference = f"INC-{run}"
    await issue.get_by_role("button", name="Tag as incident").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Incident reference").fill(reference)
    await dialog.get_by_label("Note for the agents (optional)").fill("Login outage, error 503")
    assert await page.evaluate(ACCESSIBILITY_AUDIT) == []
    await dialog.get_by_role("button", name="Tag cases").click()
    await expect(dialog).to_be_hidden()
    await expect(issue.get_by_role("status")).to_contain_text(f"{reference}: ")
    await expect(listed.get_by_text(f"Incident {reference}").first).to_be_visible()

    with stack.api("kate") as api:
        members = cluster["member_ids"]
        cases = api.get("/v1/cases", params={"event_id": members, "limit": 500}).json()["items"]
    tagged = [c for c in cases if (c.get("incident") or {}).get("reference") == reference]
    assert len(tagged) == len(cases) >= 20
    assert {c["incident"]["tagged_by"] for c in tagged} == {"kate"}
    held = [c for c in tagged if "ana" in (c["assignee"], (c.get("offer") or {}).get("agent_id"))]
    assert held, "Ana is offered cases of the burst"
    # The agent's console took the tag from the live stream, without reloading.
    await expect(agent.get_by_text(f"Incident {reference}").first).to_be_visible(timeout=15_000)
    await agent.goto(f"{stack.router.base}/console/#/cases/{held[0]['case_id']}")
    await expect(agent.get_by_text(f"Part of incident {reference}")).to_be_visible()

    # The floor's banner shows the surge the burst raised.
    await page.get_by_role("navigation").get_by_role("link", name="Floor").click()
    banner = page.get_by_role("region", name="Surge in complaints")
    await expect(banner).to_be_visible(timeout=20_000)
    await expect(banner).to_contain_text("expected")
    assert await page.evaluate(ACCESSIBILITY_AUDIT) == []


async def test_supervisor_confirms_a_held_case_in_the_review_lane_and_it_is_offered(
    browser: Browser, stack: Stack, pages: list[Page]
) -> None:
    """The classifier was unsure of a message of a team that holds such cases: the case waits
    in the Review view, not offered, until the supervisor confirms its tags; then its team's
    agent is offered it."""
    # Signed in first: an open console keeps the router from setting her away meanwhile.
    agent = await sign_in(browser, stack, "pia", pages)
    stack.set_presence(pia="available")
    run = uuid.uuid4().hex[:6]
    text = f"Thank you, the new web shop is lovely and quick ({run})"
    await stack.produce_classified(
        feedback(
            text,
            customer=f"kudos-{run}",
            channel=Channel(HELD_CHANNEL),
            category=HELD_CATEGORY,
            unsure="suggestion",
            sentiment_score=0.7,
            at=datetime.now(UTC),
        )
    )

    page = await sign_in(browser, stack, "kate", pages)
    await page.get_by_role("navigation").get_by_role("link", name="Review").click()
    await expect(page.get_by_role("heading", level=1, name="Review")).to_be_visible()
    item = page.get_by_role("listitem").filter(has_text=text)
    await expect(item).to_be_visible(timeout=30_000)
    await expect(item).to_contain_text("Held: not offered until reviewed")
    await expect(item).to_contain_text("Waiting for review")
    tags = item.get_by_role("table", name="Tags of the message")
    category = tags.get_by_role("row").filter(has_text="Category")
    await expect(category).to_contain_text("Praise")
    await expect(category).to_contain_text("41%")
    await expect(category).to_contain_text("Suggestion 38%")
    await expect(category).to_contain_text("Unsure")
    with stack.api("kate") as api:
        (held,) = [
            c for c in api.get("/v1/review").json()["items"] if text in c["messages"][0]["excerpt"]
        ]
        assert (held["team"], held["state"], held["hold"]) == ("kudos", "queued", True)
        case_id = held["case_id"]
        assert api.get(f"/v1/cases/{case_id}").json()["review"]["status"] == "pending"
    assert await page.evaluate(ACCESSIBILITY_AUDIT) == []

    # Correct proposes the runner-up of the unsure tag; cancelled, nothing changes.
    await item.get_by_role("button", name="Correct").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Category")).to_have_value("suggestion")
    await expect(dialog.get_by_label("Difficult type")).to_have_value("none")
    assert await page.evaluate(ACCESSIBILITY_AUDIT) == []
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()

    # The case view marks it too.
    await page.goto(f"{stack.router.base}/console/#/cases/{case_id}")
    await expect(page.get_by_text("Held for review").first).to_be_visible()
    await page.get_by_role("navigation").get_by_role("link", name="Review").click()
    await expect(item).to_be_visible()
    await expect(agent.get_by_role("listitem").filter(has_text=run)).to_have_count(0)

    await item.get_by_role("button", name="Confirm").click()
    await expect(page.get_by_role("status")).to_contain_text("confirmed")
    await expect(item).to_have_count(0)
    with stack.api("kate") as api:
        case = api.get(f"/v1/cases/{case_id}").json()
    assert case["review"]["status"] == "done"
    assert case["review"]["reviewed_by"] == "kate"
    assert case["category"] == HELD_CATEGORY, "confirmed as tagged"
    assert case["state"] == "offered"
    assert case["offer"]["agent_id"] == "pia"
    offer = agent.get_by_role("listitem").filter(has_text=run)
    await expect(offer).to_be_visible(timeout=15_000)
    await expect(offer.get_by_role("button", name="Accept")).to_be_visible()
    stack.set_presence(pia="away")


async def test_an_agent_whose_console_closed_is_set_away_and_comes_back(
    browser: Browser, stack: Stack, pages: list[Page]
) -> None:
    """An available agent closes the console: after the grace the router sets them away and
    the floor lists them with the reason. Back at the console they are told why and come back
    themselves; gone again, the supervisor brings them back from the floor."""
    agent = await sign_in(browser, stack, "ben", pages)
    stack.set_presence(ben="available")
    await agent.context.close()
    pages.remove(agent)

    page = await sign_in(browser, stack, "kate", pages)
    await page.get_by_role("navigation").get_by_role("link", name="Floor").click()
    set_away = page.get_by_role("region", name="Set away by the router")
    row = set_away.get_by_role("row").filter(has_text="Ben Okafor")
    # The grace, then the floor's next refresh (every 10 s at the latest).
    await expect(row).to_contain_text(
        "console disconnected", timeout=DISCONNECT_GRACE_S * 1000 + 30_000
    )
    await expect(row).to_contain_text("Customer care")
    assert await page.evaluate(ACCESSIBILITY_AUDIT) == []
    with stack.api("kate") as api:
        ben = api.get("/v1/agents", params={"limit": 100}).json()["items"]
        (ben,) = [a for a in ben if a["profile"]["id"] == "ben"]
        assert (ben["presence"], ben["away_reason"]) == ("away", "disconnected")

    agent = await sign_in(browser, stack, "ben", pages)
    notice = agent.get_by_role("region", name="The router set you away")
    await expect(notice).to_contain_text("your console was disconnected")
    assert await agent.evaluate(ACCESSIBILITY_AUDIT) == []
    await notice.get_by_role("button", name="I'm back").click()
    await expect(notice).to_be_hidden()
    await expect(agent.get_by_label("Presence")).to_have_value("available")
    with stack.api("ben") as api:
        me = api.get("/v1/me").json()
        assert (me["presence"], me["away_reason"]) == ("available", None)
    await expect(row).to_have_count(0, timeout=15_000)

    await agent.context.close()
    pages.remove(agent)
    await expect(row).to_be_visible(timeout=DISCONNECT_GRACE_S * 1000 + 30_000)
    await row.get_by_role("button", name="Set available").click()
    await expect(page.get_by_role("status")).to_contain_text("Ben Okafor is available again")
    await expect(row).to_have_count(0)
    with stack.api("kate") as api:
        floor = api.get("/v1/floor").json()
        assert "ben" not in [a["agent_id"] for a in floor["set_away"]]
        ben = api.get("/v1/agents", params={"limit": 100}).json()["items"]
        (ben,) = [a for a in ben if a["profile"]["id"] == "ben"]
        assert (ben["presence"], ben["away_reason"]) == ("available", None)
    stack.set_presence(ben="away")
