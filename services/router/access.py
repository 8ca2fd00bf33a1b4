"""Who sees a case: the one rule the agent API, the live stream and its snapshot apply."""

from __future__ import annotations

from typing import Protocol

from services.common.cases import Case, CaseEvent


class Viewer(Protocol):
    """Someone signed in to the agent API (an agent's profile, or their live stream)."""

    @property
    def id(self) -> str: ...

    @property
    def is_supervisor(self) -> bool: ...


def holder(case: Case) -> str | None:
    """The agent the case is offered or assigned to now."""
    return case.offer.agent_id if case.offer else case.assignee


def sees(viewer: Viewer, case: Case) -> bool:
    """A supervisor sees every case; an agent the cases offered or assigned to them now, and
    those they worked on (a transferred or resolved case stays readable to its agents)."""
    return viewer.is_supervisor or holder(case) == viewer.id or viewer.id in case.agents_involved


def receives(viewer: Viewer, event: CaseEvent) -> bool:
    """Whether a live stream carries an event: the case as :func:`sees` allows, and events
    about the viewer (an offer taken back from them, which they no longer see)."""
    return sees(viewer, event.case) or event.agent_id == viewer.id
