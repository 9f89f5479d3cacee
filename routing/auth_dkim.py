"""Local DKIM verification (dkimpy) with the DNS lookup behind a small interface.

``DnsLookup`` is any callable that takes the record name dkimpy asks for — bytes such as
``b"sel._domainkey.acme.com."`` (with the trailing dot) — and returns the TXT record's bytes or
``None`` when there is none. Production passes nothing and gets ``system_dns`` (dkimpy's
resolver, dnspython); tests pass a dict-backed lookup (``static_dns``) and verify real
signatures without any network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

log = logging.getLogger(__name__)

DnsLookup = Callable[[bytes], "bytes | None"]

#: At most this many DKIM-Signature headers are checked: a message with hundreds of them must
#: not turn one routing step into hundreds of DNS lookups and RSA operations.
MAX_SIGNATURES = 5


@dataclass(frozen=True)
class SignatureCheck:
    """The result of verifying one DKIM-Signature header."""

    domain: str | None  # the signature's d= tag, lower-case, or None when unreadable
    selector: str | None
    verified: bool
    error: str | None  # why it did not verify; None when it did


def system_dns(name: bytes) -> bytes | None:
    """The production ``DnsLookup``: a real TXT query through dkimpy's resolver (dnspython).

    Used when the caller passes no ``dns``; end-to-end tests replace this module attribute with
    a ``static_dns`` zone, since this machine has no DNS.
    """
    return dkim.get_txt(name)


def static_dns(records: dict[str, bytes | str]) -> DnsLookup:
    """A ``DnsLookup`` answering from ``records`` (name without trailing dot → TXT value).

    For tests and for pinning keys of a few domains without DNS.
    """
    table = {
        name.rstrip(".").lower(): (value.encode() if isinstance(value, str) else value)
        for name, value in records.items()
    }

    def lookup(name: bytes) -> bytes | None:
        key = name.decode("ascii", "replace").rstrip(".").lower()
        return table.get(key)

    return lookup


def count_signatures(raw: bytes) -> int:
    """How many DKIM-Signature headers the raw message has."""
    try:
        return sum(1 for name, _ in dkim.DKIM(raw).headers if name.lower() == b"dkim-signature")
    except Exception:  # a message dkimpy cannot even split into headers has no usable signature
        return 0


def _tags(raw: bytes, index: int) -> tuple[str | None, str | None]:
    try:
        headers = [v for n, v in dkim.DKIM(raw).headers if n.lower() == b"dkim-signature"]
        tags = parse_tag_value(headers[index])
    except (InvalidTagValueList, IndexError, Exception):
        return None, None
    domain = tags.get(b"d")
    selector = tags.get(b"s")
    return (
        domain.decode("ascii", "replace").strip().lower() if domain else None,
        selector.decode("ascii", "replace").strip() if selector else None,
    )


def verify_signatures(raw: bytes, *, dns: DnsLookup | None = None) -> list[SignatureCheck]:
    """Verify each DKIM-Signature of ``raw`` (topmost first, at most MAX_SIGNATURES).

    Never raises: a malformed signature, a missing key or a DNS failure is a failed check with
    its reason in ``error``.
    """
    lookup = dns if dns is not None else system_dns

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        return lookup(name)

    checks: list[SignatureCheck] = []
    for index in range(min(count_signatures(raw), MAX_SIGNATURES)):
        domain, selector = _tags(raw, index)
        try:
            verified = bool(dkim.DKIM(raw).verify(idx=index, dnsfunc=dnsfunc))
            error = None if verified else "the signature does not match the message"
        except dkim.DKIMException as exc:
            verified, error = False, str(exc) or type(exc).__name__
        except Exception as exc:  # dkimpy on hostile input: a failed check, never a crash
            log.warning("DKIM verification raised", extra={"error": repr(exc)})
            verified, error = False, f"verification error: {exc}"
        checks.append(SignatureCheck(domain, selector, verified, error))
    return checks
