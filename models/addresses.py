"""E-mail addresses: the one validation and canonical form for routing, the API and imports.

An address is valid when email-validator accepts it (no DNS: ``check_deliverability=False``) and
its domain passes :func:`models.domain_names.normalize_domain`. Its parts are the local part as
written and the domain as a lower-case IDNA A-label; its :attr:`Address.key` (local part
lower-cased) is the form contacts are stored, matched and compared in (SPEC §1: e-mail is unique
case-insensitively). Routing, the contacts API, the contacts import, the loop guard's own-address
check and the SMTP recipient check all use this module, so what one accepts the others accept.

Checking is cached: routing asks about the same senders all day, and email-validator costs about
100 µs per address. Plain ASCII addresses (dot-atom local part) skip email-validator after their
domain has been checked once: for them it gives exactly that answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from models.domain_names import InvalidDomain, normalize_domain

__all__ = ["Address", "AddressPatterns", "InvalidAddress", "address_key", "normalize_email", "parse_address"]

# A plain ASCII address: dot-atom local part, letters/digits/hyphens/dots domain.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@([A-Za-z0-9.-]+)")


class InvalidAddress(ValueError):
    """Raised when a string is not a usable e-mail address; the message says why."""


@dataclass(frozen=True, slots=True)
class Address:
    """A checked e-mail address: local part as written, canonical domain, comparison key."""

    local: str
    domain: str  # lower-case IDNA A-label (models.domain_names)
    key: str  # local part lower-cased @ domain: stored, matched and compared in this form

    def __str__(self) -> str:
        return self.key


def parse_address(value: str) -> Address:
    """``Bob@Bücher.EXAMPLE`` → Address(``Bob``, ``xn--bcher-kva.example``); raise InvalidAddress.

    Surrounding white space is ignored; anything else email-validator refuses is refused.
    """
    if not isinstance(value, str):
        raise InvalidAddress("the address must be a string")
    checked = _parse(value.strip())
    if isinstance(checked, str):
        raise InvalidAddress(checked)
    return checked


def normalize_email(value: str) -> str:
    """``value`` in stored form (:attr:`Address.key`); raise InvalidAddress saying what is wrong."""
    return parse_address(value).key


def address_key(value: str) -> str:
    """The comparison form of ``value``, best effort: never raises.

    For a valid address its key; otherwise the text lower-cased, with the part after the last
    ``@`` canonical where it is a valid domain (configuration entries and headers are compared
    with what they say, even when they are not valid addresses).
    """
    text = value.strip().strip("<>").strip()
    checked = _parse(text)
    if not isinstance(checked, str):
        return checked.key
    local, at, domain = text.rpartition("@")
    if not at:
        return text.lower()
    try:
        domain = normalize_domain(domain)
    except InvalidDomain:
        domain = domain.lower()
    return f"{local.lower()}@{domain}"


@lru_cache(maxsize=65536)
def _parse(text: str) -> Address | str:
    """The Address, or the reason ``text`` is none (cached either way)."""
    plain = _PLAIN_ADDRESS.fullmatch(text)
    if plain and len(text) <= 254:
        domain = _checked_domain(plain[2])
        if not domain.startswith("!"):
            return Address(plain[1], domain, f"{plain[1].lower()}@{domain}")
        # an unusable domain: the full check below gives the message for the address itself
    return _full_check(text)


@lru_cache(maxsize=8192)
def _checked_domain(domain: str) -> str:
    """The canonical form of a plain domain, as the full check gives it; ``!reason`` when unusable."""
    checked = _full_check(f"postmaster@{domain}")
    return "!" + checked if isinstance(checked, str) else checked.domain


def _full_check(text: str) -> Address | str:
    try:
        checked = validate_email(
            text, check_deliverability=False, globally_deliverable=False, allow_smtputf8=True
        )
    except EmailNotValidError as exc:
        return f"{text[:254]!r} is not a usable e-mail address: {exc}"
    try:
        domain = normalize_domain(checked.domain)
    except InvalidDomain as exc:
        return f"the domain of {text[:254]!r} is not usable: {exc}"
    return Address(checked.local_part, domain, f"{checked.local_part.lower()}@{domain}")


@dataclass(frozen=True)
class AddressPatterns:
    """A set of addresses (``help@msp.example``) and whole domains (``*@msp.example``) to match.

    The support addresses of ``TICKETPOST_SUPPORT_ADDRESSES``: the SMTP listener accepts mail
    for them and the loop guard ignores mail from them. Both sides compare in
    :func:`address_key` form.
    """

    addresses: frozenset[str]
    domains: frozenset[str]

    @classmethod
    def from_entries(cls, entries: tuple[str, ...] | list[str], *, strict: bool = False) -> AddressPatterns:
        """Read ``entries``; with ``strict``, raise ValueError for an entry that is neither form."""
        return _patterns(tuple(entries), strict)

    def match(self, address: str) -> str | None:
        """The entry ``address`` matches (``help@x`` or ``*@x``), or None."""
        key = address_key(address)
        if key in self.addresses:
            return key
        domain = key.rpartition("@")[2]
        if domain in self.domains:
            return f"*@{domain}"
        return None


@lru_cache(maxsize=64)
def _patterns(entries: tuple[str, ...], strict: bool) -> AddressPatterns:
    addresses, domains = set(), set()
    for entry in entries:
        entry = entry.strip()
        if entry.startswith("*@"):
            try:
                domains.add(normalize_domain(entry[2:]))
            except InvalidDomain as exc:
                if strict:
                    raise ValueError(f"entry {entry!r}: {exc}") from None
                domains.add(entry[2:].lower())
        elif "@" in entry:
            addresses.add(address_key(entry))
        elif strict:
            raise ValueError(
                f"entry {entry!r} is neither an address (help@msp.example) "
                "nor a domain wildcard (*@msp.example)"
            )
    return AddressPatterns(frozenset(addresses), frozenset(domains))
