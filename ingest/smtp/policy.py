"""Who may be written to and how: the recipient policy, the bind check and the STARTTLS context."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from core.settings import Settings
from models.domain_names import InvalidDomain, normalize_domain


class SmtpConfigError(RuntimeError):
    """Raised when the SMTP settings would make an unsafe or unusable listener."""


def has_control_characters(address: str) -> bool:
    """True when ``address`` holds a character no stored address may hold (NUL above all)."""
    return any(ord(ch) < 32 or ch == "\x7f" for ch in address)


def canonical_address(address: str) -> str:
    """``Help@Exämple.COM`` → ``help@xn--exmple-cua.com`` (comparison form; best effort)."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at:
        return address.strip().lower()
    try:
        domain = normalize_domain(domain)
    except InvalidDomain:
        domain = domain.lower()
    return f"{local.lower()}@{domain}"


@dataclass(frozen=True)
class RecipientPolicy:
    """Which RCPT TO addresses are accepted: exact addresses and whole domains (``*@domain``)."""

    addresses: frozenset[str]
    domains: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> "RecipientPolicy":
        addresses, domains = set(), set()
        for entry in settings.support_addresses:
            entry = entry.strip()
            if entry.startswith("*@"):
                try:
                    domains.add(normalize_domain(entry[2:]))
                except InvalidDomain as exc:
                    raise SmtpConfigError(
                        f"TICKETPOST_SUPPORT_ADDRESSES entry {entry!r}: {exc}"
                    ) from None
            elif "@" in entry:
                addresses.add(canonical_address(entry))
            else:
                raise SmtpConfigError(
                    f"TICKETPOST_SUPPORT_ADDRESSES entry {entry!r} is neither an address "
                    "(help@msp.example) nor a domain wildcard (*@msp.example)"
                )
        return cls(frozenset(addresses), frozenset(domains))

    @property
    def accepts_anything(self) -> bool:
        return not self.addresses and not self.domains

    def accepts(self, address: str) -> bool:
        """True when mail to ``address`` is for us."""
        if self.accepts_anything:
            return True
        canonical = canonical_address(address)
        if canonical in self.addresses:
            return True
        return canonical.rpartition("@")[2] in self.domains


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
