"""Outcomes that end routing early: raised by a step, caught only in ``routing.pipeline``."""

from __future__ import annotations


class RoutingStop(Exception):
    """Raised when a step has decided the message's final outcome (reject or ignore).

    ``outcome`` is one of ``models.OUTCOMES``; ``reason`` is the sentence a person reads.
    """

    def __init__(self, outcome: str, reason: str, *, step: str | None = None) -> None:
        super().__init__(f"{outcome}: {reason}")
        self.outcome = outcome
        self.reason = reason
        self.step = step  # the step to name in the explanation, when not the one that raised


class Ignored(RoutingStop):
    """Raised when the message must not reach a ticket (auto-reply, bounce, loop, duplicate...)."""


class Rejected(RoutingStop):
    """Raised when the sender may not open a ticket (unknown, not primary, unauthenticated...)."""
