"""What the agent is told with a case: how to handle this customer and what remedy fits."""

from __future__ import annotations

from services.common.cases import Remedy, RemedyKind
from services.common.messages import Category, DifficultType, Facts

HANDLING: dict[DifficultType, str] = {
    DifficultType.NONE: (
        "Listen, thank them for telling you, apologise where it is due, ask questions, repeat "
        "the problem back, decide the action, act quickly, promise only what you can keep, "
        "and follow up."
    ),
    DifficultType.ANGRY: (
        "Stay calm and do not take it personally. Let them vent without interrupting, "
        "acknowledge the feeling ('I understand why this is frustrating'), apologise for the "
        "experience, then move to the bottom line: what you will do and by when."
    ),
    DifficultType.ABUSIVE: (
        "Hold your ground politely: name the behaviour once and say you want to help. Do not "
        "answer insults or threats. You may end a contact that stays abusive and hand it to a "
        "senior; record threats. Take a short break afterwards."
    ),
    DifficultType.DEMANDING: (
        "Be efficient and businesslike: get to the point, state facts and the options you can "
        "offer, and give a clear next step and time. Do not over-apologise; if they ask for a "
        "manager, explain what you can do first."
    ),
    DifficultType.STUBBORN: (
        "Be persistent and patient. Explain the reason behind the answer, back it with "
        "documentation (policy, terms, records), and offer the alternatives that do exist."
    ),
    DifficultType.KNOW_IT_ALL: (
        "Be prepared: check the facts before replying, give a detailed and precise answer, "
        "have the documentation ready, acknowledge what they get right and correct the rest "
        "with sources."
    ),
    DifficultType.WHINER: (
        "Listen actively and acknowledge each point. Find out whether they want a fix, advice "
        "or only to be heard; solve what can be solved and summarise what will happen."
    ),
    DifficultType.CHATTERBOX: (
        "Be friendly but steer back to the issue: summarise what you heard, ask closed "
        "questions, handle one thing at a time, and close the contact clearly."
    ),
    DifficultType.QUIET: (
        "They give little away: ask easy, specific questions (order number, what happened, "
        "what they want), confirm your understanding, and spell out the next step."
    ),
    DifficultType.JESTER: (
        "Stay professional and do not match the sarcasm. Find something to agree with, answer "
        "the real complaint under the joke, and keep things moving."
    ),
}

HOSTILE = frozenset({DifficultType.ABUSIVE, DifficultType.ANGRY})

#: The remedy each category usually calls for (None: no remedy, an answer is enough).
REMEDY_BY_CATEGORY: dict[Category, RemedyKind | None] = {
    Category.BILLING: RemedyKind.REFUND,
    Category.PRODUCT_FAULT: RemedyKind.REPLACEMENT,
    Category.DELAY: RemedyKind.GOODWILL_CREDIT,
    Category.BROKEN_PROMISE: RemedyKind.GOODWILL_CREDIT,
    Category.POLICY: RemedyKind.FEE_WAIVER,
    Category.STAFF_CONDUCT: RemedyKind.VOUCHER,
    Category.COMMUNICATION: RemedyKind.VOUCHER,
    Category.TRUST_PRIVACY: RemedyKind.REFUND,
    Category.ACCESS_INCONVENIENCE: None,
    Category.PRAISE: None,
    Category.SUGGESTION: None,
}


def handling_guidance(difficult: DifficultType) -> str:
    """The handling advice for a kind of customer."""
    return HANDLING[difficult]


def estimate_remedy(category: Category, facts: Facts) -> Remedy | None:
    """The remedy a case likely needs: the category's kind, sized by the largest amount named."""
    kind = REMEDY_BY_CATEGORY.get(category)
    if kind is None:
        return None
    if not facts.amounts:
        return Remedy(kind=kind)
    largest = max(facts.amounts, key=lambda money: money.amount)
    return Remedy(kind=kind, amount=round(largest.amount, 2), currency=largest.currency)


def covers(authority: dict[RemedyKind, float], remedy: Remedy | None) -> bool:
    """Whether an agent's authority covers a remedy (no remedy needs no authority)."""
    if remedy is None:
        return True
    limit = authority.get(remedy.kind)
    if limit is None:
        return False
    return remedy.amount is None or remedy.amount <= limit
