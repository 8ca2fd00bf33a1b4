"""Who may read the trends, and which categories a team owns: both read from the router's
roster file, the one place supervisors' tokens and teams are configured.

Only what the trends need is read (teams' categories; agents' tier and token digest); the
roster's full rules stay the router's. Tokens are compared as sha256 digests, as the router
keeps them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.errors import ConfigurationError

#: The development roster shipped with the router (tokens published: refused in production).
DEV_ROSTER_PATH = Path(__file__).parents[1] / "router" / "config" / "roster.yaml"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Team(_Lenient):
    id: str
    categories: tuple[str, ...] = ()


class _Agent(_Lenient):
    id: str
    tier: str = "frontline"
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class _Roster(_Lenient):
    development: bool = False
    default_team: str
    teams: tuple[_Team, ...]
    agents: tuple[_Agent, ...] = ()


@dataclass(frozen=True)
class Access:
    """Supervisors' token digests and each team's categories."""

    supervisors: dict[str, str]  # token sha256 -> agent id
    teams: dict[str, frozenset[str]]
    default_team: str
    development: bool

    def supervisor_of(self, token: str) -> str | None:
        """The supervisor whose token this is, or None."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        for known, agent_id in self.supervisors.items():
            if hmac.compare_digest(known, digest):
                return agent_id
        return None

    def categories_of(self, team: str) -> frozenset[str] | None:
        """The categories a team owns (None for an unknown team)."""
        return self.teams.get(team)


def parse_access(data: Any, *, where: str = "roster") -> Access:
    """Access from parsed roster data."""
    try:
        roster = _Roster.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"{where}: not a roster: {exc.error_count()} problem(s)") from None
    return Access(
        supervisors={
            agent.token_sha256: agent.id
            for agent in roster.agents
            if agent.tier == "supervisor" and agent.token_sha256
        },
        teams={team.id: frozenset(team.categories) for team in roster.teams},
        default_team=roster.default_team,
        development=roster.development,
    )


def load_access(path: Path | None, *, production: bool) -> Access:
    """Access from a roster file (default: the development roster, refused in production)."""
    path = path or DEV_ROSTER_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read roster {path}: {exc}") from None
    access = parse_access(data, where=str(path))
    if production and access.development:
        raise ConfigurationError(
            f"{path} is a development roster (published tokens): set TRIAGE_TRENDS_ROSTER_FILE"
        )
    return access
