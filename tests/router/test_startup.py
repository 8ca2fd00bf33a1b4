"""What `triage up` reads from the router's roster before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.router.roster import RosterError, hash_token
from services.router.settings import RouterSettings
from services.router.startup import development_agents


def test_the_development_roster_s_agents_come_with_their_published_tokens() -> None:
    agents = development_agents(RouterSettings())
    assert agents
    assert all(agent.token == f"dev-{agent.id}" for agent in agents)
    assert "supervisor" in {agent.tier for agent in agents}


def test_a_real_roster_publishes_no_token(tmp_path: Path) -> None:
    roster = tmp_path / "roster.yaml"
    roster.write_text(
        "development: true\ndefault_team: care\nteams: [{id: care, name: Care}]\n"
        "agents:\n"
        "  - {id: ana, name: Ana, team: care, skills: {billing: 3}, languages: [en],"
        f" channels: {{chat: 2}}, token_sha256: {hash_token('secret')}}}\n"
    )
    assert development_agents(RouterSettings(roster_file=roster)) == []


def test_a_broken_roster_is_reported_before_anything_starts(tmp_path: Path) -> None:
    roster = tmp_path / "roster.yaml"
    roster.write_text("default_team: care\nteams: [{id: care, name: Care}]\nagents: [{id: x}]\n")
    with pytest.raises(RosterError, match=r"agents\.0\.name"):
        development_agents(RouterSettings(roster_file=roster))
