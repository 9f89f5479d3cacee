"""Whether an inbound message's sender is authenticated (SPEC §6).

The receiving mail server (ours, or the customer's MX in front of us) writes its verdict into an
``Authentication-Results`` header (RFC 8601). Anyone can write such a header into a message, so
only the **topmost** header whose authserv-id is in ``TICKETPOST_TRUSTED_AUTHSERV_IDS`` counts:
headers above it come from hosts we do not trust and are ignored; headers below it were there
before our trusted server saw the message and may be forged, so they are not considered either.

The sender is authenticated when that header says

* ``dmarc=pass`` (for the From domain, when the result names it with ``header.from``), or
* ``dkim=pass`` with a signing domain (``header.d``, else the domain of ``header.i``) in relaxed
  alignment with the From domain: the same organizational domain, from the Public Suffix List
  bundled with ``publicsuffixlist`` (no network).

When no trusted header exists and ``dkim_verify`` is on, the message's own DKIM signatures are
verified locally with dkimpy; one that verifies and is aligned authenticates the sender. ARC,
SPF alone and ``auth=`` (SMTP AUTH) results do not authenticate the From header and are not used.

Headers are read with ``authres`` (a maintained RFC 8601 parser). A trusted header it cannot
parse does not authenticate anyone, and lower headers are not used in its place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

import authres

from routing.auth_dkim import count_signatures, verify_signatures
from routing.auth_orgdomain import aligned, canonical_domain, organizational_domain


@dataclass(frozen=True)
class AuthVerdict:
    """The answer to "is this sender authenticated?" and one sentence saying why."""

    authenticated: bool
    method: str | None  # "dmarc", "dkim", "local-dkim" or None
    detail: str


@dataclass(frozen=True)
class _Header:
    """One Authentication-Results header: its authserv-id and, when it parsed, its results."""

    authserv_id: str
    results: list | None  # authres result objects; None when the header did not parse
    error: str | None


#: Only this many Authentication-Results headers (from the top) are read. Our trusted MX writes its
#: header above everything a sender controls, so a message that buries it deeper is not
#: authenticated; the cap keeps a message with thousands of such headers cheap to judge.
MAX_HEADERS = 100
#: At most this many ignored authserv-ids are named in the detail sentence.
MAX_NAMED_IDS = 5

_COMMENT = re.compile(r"\([^()]*\)")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def evaluate_authentication(
    *,
    message: Message,
    raw: bytes,
    from_domain: str,
    trusted_authserv_ids: Sequence[str],
    dkim_verify: bool = False,
    dns: Callable[[bytes], bytes | None] | None = None,
) -> AuthVerdict:
    """Decide from the topmost trusted Authentication-Results header (or local DKIM).

    ``message`` is the parsed message (any policy); ``raw`` its bytes, needed for local DKIM.
    ``dns`` is the TXT lookup for local DKIM (see ``routing.auth_dkim``); None = real DNS.
    Never raises on message content: what cannot be read does not authenticate.
    """
    domain = canonical_domain(from_domain)
    if not domain:
        return AuthVerdict(False, None, "the message has no From domain to authenticate")
    trusted = {t.strip().lower() for t in trusted_authserv_ids if t and t.strip()}

    values = _header_values(message, raw)[:MAX_HEADERS]
    untrusted: list[str] = []
    for position, value in enumerate(values):
        authserv_id = authserv_id_of(value)
        if authserv_id in trusted:
            # Only the decisive header is parsed in full (authres costs ~1 ms per header).
            header = _read_header(value, authserv_id)
            below = len(values) - position - 1
            verdict = _judge_header(header, domain, below)
            return _with_ignored(verdict, untrusted)
        untrusted.append(authserv_id or "(unreadable)")

    if not trusted:
        reason = (
            "no authserv-id is trusted (TICKETPOST_TRUSTED_AUTHSERV_IDS is empty), so no "
            "Authentication-Results header can authenticate the sender"
        )
    elif values:
        reason = (
            "no Authentication-Results header from a trusted authserv-id "
            f"({', '.join(sorted(trusted))})"
        )
    else:
        reason = "the message has no Authentication-Results header"
    if dkim_verify:
        return _with_ignored(_local_dkim(raw, domain, reason, dns), untrusted)
    return _with_ignored(
        AuthVerdict(False, None, f"{reason}, and local DKIM verification is off"), untrusted
    )


def dmarc_failure(*, message: Message | None, raw: bytes, trusted_authserv_ids: Sequence[str]) -> str | None:
    """"dmarc=fail at X" when the topmost trusted Authentication-Results says DMARC failed, else None.

    The answering rules (routing.outbox.answer) never answer such a From: it is likely forged.
    """
    trusted = {t.strip().lower() for t in trusted_authserv_ids if t and t.strip()}
    if not trusted:
        return None
    for value in _header_values(message, raw)[:MAX_HEADERS]:
        authserv_id = authserv_id_of(value)
        if authserv_id not in trusted:
            continue
        header = _read_header(value, authserv_id)
        for result in header.results or []:
            if (result.method or "").lower() == "dmarc" and (result.result or "").lower() == "fail":
                return f"dmarc=fail at {authserv_id}"
        return None
    return None


# --- reading headers ----------------------------------------------------------------------------


def _header_values(message: Message | None, raw: bytes) -> list[str]:
    """The Authentication-Results values, topmost first, unfolded."""
    if message is None:
        message = BytesHeaderParser(policy=compat32).parsebytes(raw or b"")
    values = message.get_all("Authentication-Results") or []
    return [_FOLD.sub("", str(value)).strip() for value in values]


def _read_header(value: str, authserv_id: str) -> _Header:
    """Parse one header with authres; unparseable, or read differently by authres, = no results."""
    try:
        parsed = authres.AuthenticationResultsHeader.parse_value(value)
    except Exception as exc:  # authres.SyntaxError and friends: keep the id, mark unparseable
        return _Header(authserv_id, None, str(exc) or type(exc).__name__)
    parsed_id = (parsed.authserv_id or "").strip().strip('"').lower()
    if parsed_id != authserv_id:
        return _Header(authserv_id, None, f"authres reads its authserv-id as {parsed_id!r}")
    return _Header(authserv_id, list(parsed.results), None)


def authserv_id_of(value: str) -> str:
    """The authserv-id of a header value, lower-case: the first token before the first ``;``.

    A cheap read that decides whether a header is trusted at all; only the trusted one is then
    parsed in full by authres, which must read the same id.
    """
    text = value
    while True:  # comments may nest: remove innermost first
        stripped = _COMMENT.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    tokens = text.split(";", 1)[0].split()
    return tokens[0].strip('"').lower() if tokens else ""


def _prop(result, ptype: str, name: str) -> str | None:
    for prop in getattr(result, "properties", None) or []:
        if (prop.type or "").lower() == ptype and (prop.name or "").lower() == name:
            return prop.value
    return None


def _signing_domain(result) -> str | None:
    d = _prop(result, "header", "d")
    if d:
        return canonical_domain(d)
    identity = _prop(result, "header", "i")
    if identity and "@" in identity:
        return canonical_domain(identity.rsplit("@", 1)[1])
    return None


# --- judging ------------------------------------------------------------------------------------


def _judge_header(header: _Header, domain: str, below: int) -> AuthVerdict:
    where = f"Authentication-Results from {header.authserv_id} (topmost trusted)"
    tail = _below_note(below)
    if header.results is None:
        return AuthVerdict(
            False,
            None,
            f"{where} cannot be parsed ({header.error}), so the sender is not authenticated{tail}",
        )

    dmarc = [r for r in header.results if (r.method or "").lower() == "dmarc"]
    dkims = [r for r in header.results if (r.method or "").lower() == "dkim"]

    dmarc_notes: list[str] = []
    for result in dmarc:
        outcome = (result.result or "").lower()
        checked = _prop(result, "header", "from")
        if outcome == "pass" and (checked is None or canonical_domain(checked) == domain):
            return AuthVerdict(True, "dmarc", f"{where}: dmarc=pass for {domain}{tail}")
        if outcome == "pass":
            dmarc_notes.append(
                f"dmarc=pass but for header.from={canonical_domain(checked)}, not {domain}"
            )
        else:
            dmarc_notes.append(f"dmarc={outcome or 'unknown'}")

    dkim_notes: list[str] = []
    for result in dkims:
        outcome = (result.result or "").lower()
        signer = _signing_domain(result)
        if outcome == "pass" and signer and aligned(signer, domain):
            return AuthVerdict(
                True,
                "dkim",
                f"{where}: dkim=pass with d={signer}, aligned with {domain} "
                f"(organizational domain {organizational_domain(domain)}){tail}",
            )
        if outcome == "pass" and signer:
            dkim_notes.append(f"dkim=pass but d={signer} is not aligned with {domain}")
        elif outcome == "pass":
            dkim_notes.append("dkim=pass without a signing domain (header.d)")
        else:
            dkim_notes.append(f"dkim={outcome or 'unknown'}" + (f" (d={signer})" if signer else ""))

    notes = dkim_notes or ["no dkim result"]
    notes += dmarc_notes or ["no dmarc result"]
    return AuthVerdict(False, None, f"{where}: {'; '.join(notes)}{tail}")


def _local_dkim(raw: bytes, domain: str, reason: str, dns) -> AuthVerdict:
    if not count_signatures(raw or b""):
        return AuthVerdict(
            False, None, f"{reason}, and the message has no DKIM-Signature to verify locally"
        )
    failures: list[str] = []
    for check in verify_signatures(raw, dns=dns):
        label = f"d={check.domain or '?'}" + (f" s={check.selector}" if check.selector else "")
        if check.verified and check.domain and aligned(check.domain, domain):
            return AuthVerdict(
                True,
                "local-dkim",
                f"{reason}; local DKIM verification: the signature by {label} verifies and is "
                f"aligned with {domain}",
            )
        if check.verified:
            failures.append(f"the signature by {label} verifies but is not aligned with {domain}")
        else:
            failures.append(f"the signature by {label} fails ({check.error})")
    return AuthVerdict(
        False, None, f"{reason}; local DKIM verification: {'; '.join(failures)}"
    )


def _below_note(below: int) -> str:
    if not below:
        return ""
    noun = "header" if below == 1 else "headers"
    return f" ({below} lower Authentication-Results {noun} not considered)"


def _with_ignored(verdict: AuthVerdict, untrusted: list[str]) -> AuthVerdict:
    """Add "headers from untrusted authserv-ids were ignored" to the sentence, when any were."""
    if not untrusted:
        return verdict
    distinct = list(dict.fromkeys(untrusted))
    ids = ", ".join(distinct[:MAX_NAMED_IDS])
    if len(distinct) > MAX_NAMED_IDS:
        ids += f" and {len(distinct) - MAX_NAMED_IDS} more"
    noun = "authserv-id" if len(distinct) == 1 else "authserv-ids"
    return AuthVerdict(
        verdict.authenticated,
        verdict.method,
        f"{verdict.detail}; ignored Authentication-Results from untrusted {noun} {ids}",
    )
