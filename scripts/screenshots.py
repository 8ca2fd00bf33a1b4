"""Screenshots of the console for the docs, taken from a running stack with demo traffic.

    .venv/bin/triage up --demo --rate 2 --duration 600 &     # wait a few minutes, then:
    .venv/bin/python scripts/screenshots.py [--router http://127.0.0.1:8082] [--out DIR]

The agent view shows the frontline agent holding the most cases, with their first case open;
the floor and trends views are the supervisor's (run the demo with --incident and wait for its
surge to see the banner and an emerging issue). Needs Debian's chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import httpx
from playwright.async_api import Page, async_playwright

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def busiest_agent(router: str, supervisor_token: str) -> str:
    """The frontline agent holding the most cases now."""
    agents = httpx.get(
        f"{router}/v1/agents",
        params={"tier": "frontline", "limit": 1000},
        headers={"Authorization": f"Bearer {supervisor_token}"},
        timeout=10,
    ).json()["items"]
    frontline = [a for a in agents if a["profile"]["tier"] == "frontline"]
    return str(max(frontline, key=lambda a: len(a["cases"]))["profile"]["id"])


async def sign_in(page: Page, router: str, token: str) -> None:
    await page.goto(f"{router}/console/")
    await page.get_by_label("Agent token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("button", name="Sign out").wait_for()


async def main(router: str, out: Path, supervisor: str, chromium: str) -> None:
    agent = busiest_agent(router, f"dev-{supervisor}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=ARGS)
        viewport = {"width": 1280, "height": 800}
        page = await browser.new_page(viewport=viewport)  # type: ignore[arg-type]
        await sign_in(page, router, f"dev-{agent}")
        cases = page.get_by_role("list", name="My cases").get_by_role("link")
        if await cases.count():
            await cases.first.click()
            await page.get_by_role("heading", name="Handling guidance").wait_for()
        await page.wait_for_timeout(1500)
        await page.screenshot(path=out / "console-agent.png")
        await page.context.close()

        page = await browser.new_page(viewport=viewport)  # type: ignore[arg-type]
        await sign_in(page, router, f"dev-{supervisor}")
        await page.get_by_role("link", name="Floor").click()
        await page.get_by_role("table", name="Team queues").wait_for()
        await page.wait_for_timeout(3000)
        await page.screenshot(path=out / "console-floor.png")
        await page.get_by_role("link", name="Trends").click()
        await page.get_by_role("img", name="Messages by category over time").wait_for()
        await page.wait_for_timeout(3000)
        await page.screenshot(path=out / "console-trends.png", full_page=True)
        await browser.close()
    print(f"agent {agent}: {out / 'console-agent.png'}; supervisor: {out / 'console-floor.png'}")
    print(f"trends: {out / 'console-trends.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", default="http://127.0.0.1:8082")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--supervisor", default="kate", help="development supervisor id")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(options.router, options.out, options.supervisor, options.chromium))
