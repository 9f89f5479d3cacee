"""Organizational domains and relaxed DMARC alignment, from the bundled Public Suffix List.

The list ships inside the ``publicsuffixlist`` package (its ``public_suffix_list.dat``); nothing
here touches the network. The private section of the list counts too (``alice.github.io`` and
``bob.github.io`` are different organizations), as OpenDMARC and most receivers do.
"""

from __future__ import annotations

from functools import lru_cache

import idna
from publicsuffixlist import PublicSuffixList


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def canonical_domain(value: str) -> str:
    """``Mail.Acme.COM.`` or ``bücher.example`` → lower-case A-label without the trailing dot.

    Best effort: a value IDNA refuses is returned lower-cased and stripped, so a comparison with
    it simply fails instead of raising.
    """
    text = (value or "").strip().strip('"').rstrip(".").lower()
    if text.startswith("@"):
        text = text[1:]
    if not text:
        return ""
    try:
        return idna.encode(text, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        return text


def organizational_domain(domain: str) -> str:
    """The registered domain of ``domain`` (RFC 7489 §3.2): ``mail.eu.acme.co.uk`` → ``acme.co.uk``.

    A domain that is itself a public suffix (``co.uk``) is its own organizational domain.
    """
    name = canonical_domain(domain)
    if not name:
        return ""
    return _psl().privatesuffix(name) or name


def aligned(signing_domain: str, from_domain: str) -> bool:
    """Whether ``signing_domain`` is in relaxed alignment with ``from_domain`` (same org domain)."""
    left, right = organizational_domain(signing_domain), organizational_domain(from_domain)
    return bool(left) and left == right
