"""Fixtures of the router's service tests: the router processes started, and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.router.test_service import Router


@pytest.fixture
def routers() -> Iterator[list[Router]]:
    """Routers a test starts; killed after it."""
    started: list[Router] = []
    yield started
    for router in started:
        router.kill()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as http:
        yield http
