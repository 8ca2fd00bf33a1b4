"""The roster: teams and agents, their skills, channels, capacity and authority (YAML or API).

Pure models and loaders; the router keeps the live state (presence, load) apart.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from services.common.cases import AgentTier, Presence, RemedyKind
from services.common.messages import Category, Channel
from services.common.models import FrozenModel

DEV_ROSTER_PATH = Path(__file__).with_name("config") / "roster.yaml"
DEFAULT_FLOOR = "main"  # the one floor of a roster that declares none


FLOOR_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class RosterError(ValueError):
    """The roster is invalid; the message names the offending entry."""


def hash_token(token: str) -> str:
    """The sha256 hex digest under which an agent token is configured."""
    return hashlib.sha256(token.encode()).hexdigest()


class ReviewPolicy(StrEnum):
    """What a team does with a case whose tags need a supervisor's review."""

    ROUTE = "route"  # offer at once; the review happens in parallel
    HOLD = "hold"  # offer only once reviewed (its own service level: the SLA file's `review`)


class Team(FrozenModel):
    """A team: the categories it owns and the business-hours calendar its clocks run on."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    name: str = Field(min_length=1, max_length=100)
    categories: tuple[Category, ...] = ()
    calendar: str = Field(default="always", description="A calendar of the service-level file.")
    review: ReviewPolicy = Field(
        default=ReviewPolicy.ROUTE,
        description="Cases whose tags need review: `route` (offered at once, reviewed in "
        "parallel) or `hold` (offered once a supervisor reviewed them).",
    )
    floor: str | None = Field(
        default=None,
        description="The floor the team works on: one of the roster's `floors` (required when "
        "the roster declares floors, absent otherwise).",
    )


class AgentProfile(FrozenModel):
    """One agent as configured: who they are and what they may do."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    name: str = Field(min_length=1, max_length=100)
    team: str
    tier: AgentTier = AgentTier.FRONTLINE
    skills: dict[Category, int] = Field(
        description="Proficiency per category, 1 (can do) to 5 (expert)."
    )
    languages: tuple[str, ...] = Field(min_length=1, description="ISO 639-1 codes.")
    channels: dict[Channel, int] = Field(description="Concurrent case capacity per channel.")
    authority: dict[RemedyKind, float] = Field(
        default_factory=dict, description="Remedies the agent may grant, up to an amount."
    )
    hostile: bool = Field(default=False, description="Takes abusive and angry customers.")
    presence: Presence = Presence.OFFLINE
    token_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="sha256 of the agent's API token."
    )

    @field_validator("skills")
    @classmethod
    def _check_skills(cls, value: dict[Category, int]) -> dict[Category, int]:
        for category, level in value.items():
            if not 1 <= level <= 5:
                raise ValueError(f"proficiency of {category} must be 1..5, not {level}")
        return value

    @field_validator("channels")
    @classmethod
    def _check_channels(cls, value: dict[Channel, int]) -> dict[Channel, int]:
        if not value:
            raise ValueError("an agent needs at least one channel")
        for channel, capacity in value.items():
            if not 1 <= capacity <= 100:
                raise ValueError(f"capacity of {channel} must be 1..100, not {capacity}")
        return value

    @field_validator("authority")
    @classmethod
    def _check_authority(cls, value: dict[RemedyKind, float]) -> dict[RemedyKind, float]:
        for kind, amount in value.items():
            if amount < 0:
                raise ValueError(f"authority for {kind} must not be negative")
        return value

    @field_validator("languages")
    @classmethod
    def _check_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(language.lower() for language in value)
        for language in out:
            if not (2 <= len(language) <= 3 and language.isalpha()):
                raise ValueError(f"'{language}' is not an ISO 639 language code")
        return out

    @property
    def is_supervisor(self) -> bool:
        """Supervisors may see and act on every case and change the roster."""
        return self.tier == AgentTier.SUPERVISOR


class Roster(FrozenModel):
    """Teams and agents."""

    development: bool = Field(
        default=False,
        description="Development roster with published tokens (refused in production).",
    )
    floors: tuple[str, ...] = Field(
        default=(),
        description="Independent groups of teams, each routed by one active router worker "
        "(the router's inbox has a partition per floor, in this order). None declared: one "
        f"floor, `{DEFAULT_FLOOR}`.",
    )
    default_team: str
    teams: tuple[Team, ...] = Field(min_length=1)
    agents: tuple[AgentProfile, ...] = ()

    @field_validator("floors")
    @classmethod
    def _check_floors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for floor in value:
            if not FLOOR_ID.fullmatch(floor):
                raise ValueError(f"floor id '{floor}' must match {FLOOR_ID.pattern}")
        if len(set(value)) != len(value):
            raise ValueError("floor ids must be unique")
        return value

    @model_validator(mode="after")
    def _check_references(self) -> Roster:
        self._check_team_floors()
        team_ids = [team.id for team in self.teams]
        if len(set(team_ids)) != len(team_ids):
            raise ValueError("team ids must be unique")
        if self.default_team not in team_ids:
            raise ValueError(f"default_team '{self.default_team}' is not a team")
        owners: dict[Category, str] = {}
        for team in self.teams:
            for category in team.categories:
                if category in owners:
                    raise ValueError(
                        f"category {category} belongs to both {owners[category]} and {team.id}"
                    )
                owners[category] = team.id
        agent_ids = [agent.id for agent in self.agents]
        if len(set(agent_ids)) != len(agent_ids):
            raise ValueError("agent ids must be unique")
        for agent in self.agents:
            if agent.team not in team_ids:
                raise ValueError(f"agent '{agent.id}' is in unknown team '{agent.team}'")
        tokens = [agent.token_sha256 for agent in self.agents if agent.token_sha256]
        if len(set(tokens)) != len(tokens):
            raise ValueError("two agents have the same token")
        return self

    def _check_team_floors(self) -> None:
        if not self.floors:
            for team in self.teams:
                if team.floor is not None:
                    raise ValueError(
                        f"team '{team.id}' names floor '{team.floor}' but the roster declares "
                        "no floors"
                    )
            return
        staffed = set()
        for team in self.teams:
            if team.floor is None:
                raise ValueError(f"team '{team.id}' needs a floor (one of the roster's floors)")
            if team.floor not in self.floors:
                raise ValueError(f"team '{team.id}' is on unknown floor '{team.floor}'")
            staffed.add(team.floor)
        for floor in self.floors:
            if floor not in staffed:
                raise ValueError(f"floor '{floor}' has no team")

    @property
    def floor_ids(self) -> tuple[str, ...]:
        """The floors, in inbox partition order (one, `main`, when none is declared)."""
        return self.floors or (DEFAULT_FLOOR,)

    def floor_of(self, team_id: str) -> str:
        """The floor a team works on (the first floor for a team not on the roster)."""
        team = self.team(team_id)
        if team is None or team.floor is None:
            return self.floor_ids[0]
        return team.floor

    def floor_for(self, category: Category) -> str:
        """The floor of the team that owns a category."""
        return self.floor_of(self.team_for(category))

    def partition_of(self, floor: str) -> int:
        """The inbox partition of a floor."""
        return self.floor_ids.index(floor)

    def on_floor(self, floor: str) -> Roster:
        """The part of the roster one floor routes with: its teams and their agents. Its
        default team is the roster's when on this floor, else the floor's first team."""
        if floor not in self.floor_ids:
            raise RosterError(f"no floor '{floor}'")
        if not self.floors:
            return self
        teams = tuple(team for team in self.teams if team.floor == floor)
        ids = {team.id for team in teams}
        default = self.default_team if self.default_team in ids else teams[0].id
        agents = tuple(agent for agent in self.agents if agent.team in ids)
        return self.model_copy(
            update={"floors": (floor,), "teams": teams, "agents": agents, "default_team": default}
        )

    def as_one_floor(self) -> Roster:
        """The same teams and agents as one floor (a simulation of the whole centre)."""
        if not self.floors:
            return self
        teams = tuple(team.model_copy(update={"floor": None}) for team in self.teams)
        return self.model_copy(update={"floors": (), "teams": teams})

    def team_for(self, category: Category) -> str:
        """The team that owns a category (the default team when none does)."""
        for team in self.teams:
            if category in team.categories:
                return team.id
        return self.default_team

    def team(self, team_id: str) -> Team | None:
        """A team by id."""
        return next((team for team in self.teams if team.id == team_id), None)


def parse_roster(data: Any, *, where: str = "roster") -> Roster:
    """A roster from parsed YAML/JSON data."""
    try:
        return Roster.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'roster'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        )
        raise RosterError(f"{where}: {problems}") from None


def load_roster(path: Path | None = None) -> Roster:
    """The roster file (default: the development roster shipped with the project)."""
    path = path or DEV_ROSTER_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RosterError(f"cannot read roster {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RosterError(f"{path}: not valid YAML: {exc}") from None
    return parse_roster(data, where=str(path))


def development_tokens(roster: Roster) -> dict[str, str]:
    """The published tokens of the development roster: agent id -> token."""
    if not roster.development:
        return {}
    tokens = {}
    for agent in roster.agents:
        token = f"dev-{agent.id}"
        if agent.token_sha256 == hash_token(token):
            tokens[agent.id] = token
    return tokens
