"""Whether an inbound message's sender is authenticated (SPEC §6).

Contract used by the routing pipeline (the full implementation — RFC 8601 parsing, DKIM alignment,
local dkimpy verification — replaces this first version; keep the signature).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import Message


@dataclass(frozen=True)
class AuthVerdict:
    """The answer to "is this sender authenticated?" and one sentence saying why."""

    authenticated: bool
    method: str | None  # "dmarc", "dkim", "local-dkim" or None
    detail: str


def evaluate_authentication(
    *,
    message: Message,
    raw: bytes,
    from_domain: str,
    trusted_authserv_ids: Sequence[str],
    dkim_verify: bool = False,
    dns: Callable[[bytes], bytes | None] | None = None,
) -> AuthVerdict:
    """Decide from the topmost trusted Authentication-Results header (or local DKIM)."""
    return AuthVerdict(False, None, "no Authentication-Results header from a trusted authserv-id")
