"""Which URLs a webhook may call: http(s) only, and no private network unless allowed (SSRF).

A webhook URL is chosen by whoever holds an admin token, but it is called from inside the MSP's
network, so by default it may not point at loopback, private (RFC 1918, fc00::/7), link-local
(169.254/16 with the cloud metadata service, fe80::/10), shared (100.64/10), multicast, reserved
or unspecified addresses. ``TICKETPOST_WEBHOOKS_ALLOW_PRIVATE=true`` allows them (an on-premise
PSA, tests).

The check runs when a webhook is saved (an IP literal, or a name that resolves to such an
address, is refused with 422 naming ``url``) and again at every delivery: the name is resolved,
every address checked, and the request goes to the checked address (the ``Host`` header and TLS
server name stay the name's), so a DNS answer that changes to a private address later
("DNS rebinding") is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL = 2000


class TargetRefused(ValueError):
    """Raised when a webhook URL is not http(s) or points at an address that is not allowed."""


def blocked_reason(address: str) -> str | None:
    """Why ``address`` (an IP) may not be called without ALLOW_PRIVATE, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for test, what in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                       ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
                       ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(ip, test):
            return f"{ip} is a {what} address"
    if ip in ipaddress.ip_network("100.64.0.0/10"):
        return f"{ip} is a shared (carrier-grade NAT) address"
    return None


def parse_target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a webhook URL; raises TargetRefused saying what is wrong."""
    if len(url) > MAX_URL:
        raise TargetRefused(f"the URL is longer than {MAX_URL} characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("the URL must start with http:// or https://")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise TargetRefused(f"the URL's port is not valid: {exc}") from None
    if not host:
        raise TargetRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the URL may not carry credentials (user:password@)")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def check_url(url: str, *, allow_private: bool, resolve: bool = True) -> str:
    """The URL, once it is http(s) and (unless ``allow_private``) not private; raises TargetRefused.

    A host name is resolved (``resolve``) and refused when any of its addresses is private; a
    name that does not resolve now is accepted (every delivery checks again).
    """
    _scheme, host, port = parse_target(url)
    if allow_private:
        return url
    literal = _literal(host)
    addresses = [literal] if literal else []
    if literal is None and host.rstrip(".").lower() in ("localhost",) or host.lower().endswith(".localhost"):
        raise TargetRefused(f"{host} is a loopback name (TICKETPOST_WEBHOOKS_ALLOW_PRIVATE allows it)")
    if literal is None and resolve:
        try:
            addresses = [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
        except (OSError, UnicodeError):
            addresses = []
    for address in addresses:
        why = blocked_reason(address)
        if why:
            raise TargetRefused(f"{host} is not allowed: {why} (TICKETPOST_WEBHOOKS_ALLOW_PRIVATE allows it)")
    return url


def checked_addresses(host: str, infos: list) -> list[str]:
    """The addresses of getaddrinfo ``infos`` for ``host``; raises TargetRefused if any is private."""
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise TargetRefused(f"{host} did not resolve to any address")
    for address in addresses:
        why = blocked_reason(address)
        if why:
            raise TargetRefused(f"{host} is not allowed: {why} (TICKETPOST_WEBHOOKS_ALLOW_PRIVATE allows it)")
    return addresses
