"""What the router's roster tells a supervisor before the router starts: the development agents
whose published tokens sign in (for the banner of ``triage up`` and the agents its demo plays).
Reading it there fails early, with the roster's own message, before any process starts."""

from __future__ import annotations

from dataclasses import dataclass

from services.router.roster import development_tokens, load_roster
from services.router.settings import RouterSettings


@dataclass(frozen=True)
class DevelopmentAgent:
    """An agent of the development roster and the published token it signs in with."""

    id: str
    name: str
    team: str
    tier: str
    token: str


def development_agents(settings: RouterSettings) -> list[DevelopmentAgent]:
    """The agents of the configured roster that sign in with their published development
    token, in roster order (none for a real roster); RosterError when it cannot be read."""
    roster = load_roster(settings.roster_file)
    tokens = development_tokens(roster)
    return [
        DevelopmentAgent(
            id=profile.id,
            name=profile.name,
            team=profile.team,
            tier=profile.tier.value,
            token=tokens[profile.id],
        )
        for profile in roster.agents
        if profile.id in tokens
    ]
