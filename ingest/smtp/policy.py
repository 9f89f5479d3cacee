"""Who may be written to and how: the recipient policy, path syntax, bind check, STARTTLS context."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass

import idna

from core.settings import Settings
from models.addresses import AddressPatterns, address_key


class SmtpConfigError(RuntimeError):
    """Raised when the SMTP settings would make an unsafe or unusable listener."""


def has_control_characters(address: str) -> bool:
    """True when ``address`` holds a character no stored address may hold (NUL above all)."""
    return any(ord(ch) < 32 or ch == "\x7f" for ch in address)


# RFC 5321 4.1.2 Mailbox = Local-part "@" ( Domain / address-literal ); RFC 6531 adds UTF-8.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010FFFF-]+"
_DOT_STRING = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_QUOTED_STRING = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010FFFF]|\\[\x20-\x7e])*"')
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_ADDRESS_LITERAL = re.compile(r"\[[\x21-\x5a\x5e-\x7e]+\]")


def is_mailbox(address: str) -> bool:
    """True when ``address`` is an RFC 5321 mailbox (``local@domain`` or ``local@[literal]``).

    Syntax only, on purpose: the envelope sender is not whom routing answers (that is the From
    header, checked by ``models.addresses``), so an envelope that is well-formed but unusual
    (``root@localhost``, ``"a b"@host.local``, an address literal) must not cost the message;
    what has no ``@``, no domain or a broken one (``MAIL FROM:<not an address>``) is refused.
    """
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > 320:
        return False
    if not (_DOT_STRING.fullmatch(local) or _QUOTED_STRING.fullmatch(local)):
        return False
    if _ADDRESS_LITERAL.fullmatch(domain):
        return True
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return False
    return len(domain) <= 255 and _DOMAIN.fullmatch(domain) is not None


def unclosed_path(arg: str | None, keyword: str) -> bool:
    """True when the path of ``MAIL FROM:<…`` / ``RCPT TO:<…`` opens ``<`` and never closes it.

    aiosmtpd's parser accepts ``MAIL FROM:<bob@acme.example`` as ``bob@acme.example``; a client
    that sends it has a bug we should tell it about rather than guess what it meant.
    """
    if not arg or not arg[: len(keyword)].upper() == keyword:
        return False
    path = arg[len(keyword):].lstrip()
    return path.startswith("<") and ">" not in path


@dataclass(frozen=True)
class RecipientPolicy:
    """Which RCPT TO addresses are accepted: ``TICKETPOST_SUPPORT_ADDRESSES`` (exact addresses and
    whole domains ``*@domain``, matched by :class:`models.addresses.AddressPatterns`)."""

    patterns: AddressPatterns

    @classmethod
    def from_settings(cls, settings: Settings) -> "RecipientPolicy":
        """Raised when an entry is neither an address nor ``*@domain``: SmtpConfigError."""
        try:
            patterns = AddressPatterns.from_entries(settings.support_addresses, strict=True)
        except ValueError as exc:
            raise SmtpConfigError(f"TICKETPOST_SUPPORT_ADDRESSES {exc}") from None
        return cls(patterns)

    @property
    def accepts_anything(self) -> bool:
        return not self.patterns.addresses and not self.patterns.domains

    def accepts(self, address: str) -> bool:
        """True when mail to ``address`` is for us."""
        return self.accepts_anything or self.patterns.match(address) is not None


def recipient_key(address: str) -> str:
    """The form in which two RCPT TO addresses are the same recipient (for de-duplication)."""
    return address_key(address)


def check_bind(settings: Settings) -> None:
    """Refuse a listener that would accept any recipient on a non-loopback address.

    Raised when SUPPORT_ADDRESSES is empty and SMTP_HOST is not loopback: SmtpConfigError.
    """
    policy = RecipientPolicy.from_settings(settings)
    if policy.accepts_anything and not settings.smtp_on_loopback:
        raise SmtpConfigError(
            f"TICKETPOST_SUPPORT_ADDRESSES is empty, so every recipient would be accepted; "
            f"refusing to listen on {settings.smtp_host} (an open relay into the helpdesk). "
            "Set TICKETPOST_SUPPORT_ADDRESSES (e.g. help@msp.example or *@msp.example) "
            "or listen on 127.0.0.1."
        )


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server TLS context for STARTTLS, or None when no certificate is configured.

    Raised when only one of cert/key is set or they cannot be loaded: SmtpConfigError.
    """
    cert, key = settings.smtp_tls_cert, settings.smtp_tls_key
    if not cert and not key:
        return None
    if not (cert and key):
        raise SmtpConfigError("set both TICKETPOST_SMTP_TLS_CERT and TICKETPOST_SMTP_TLS_KEY")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SmtpConfigError(f"cannot load the SMTP TLS certificate/key: {exc}") from None
    return context
