"""Outbound transports from ``TICKETPOST_OUTBOUND_URL``: SMTP (STARTTLS, AUTH), SMTPS, Graph.

* ``smtp://user:pass@host:587``: STARTTLS whenever the server offers it, and always before
  credentials are sent: a server that offers no STARTTLS never gets the password (the send fails
  with that reason). ``?tls=required`` refuses a server without STARTTLS even without credentials.
* ``smtps://user:pass@host:465``: TLS from the first byte.
* ``graph://MAILBOX_ID``: Microsoft Graph ``sendMail`` through a cloud mailbox of kind ``graph``
  (SPEC §9; the mailbox's id, or its name), with the mailbox's OAuth2 access token.

Certificates are verified against the system CAs, or ``TICKETPOST_OUTBOUND_CA_FILE``. A transport
keeps one SMTP connection per thread open between sends (a dispatcher sends hundreds of mails a
second over it) and reconnects when the server hung up.
"""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
from sqlalchemy import select

from models.db import get_engine
from models.mailbox import GRAPH_BASE_URL, Mailbox
from models.oauth2 import AuthFailed, TokenUnavailable, access_token


class OutboundConfigError(ValueError):
    """Raised when ``TICKETPOST_OUTBOUND_URL`` cannot be used; the message says what is wrong."""


class SendFailed(Exception):
    """Raised when a message could not be handed over; ``permanent`` when retrying cannot help."""

    def __init__(self, reason: str, *, code: int | None = None, permanent: bool = False,
                 retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.permanent = permanent
        self.retry_after_s = retry_after_s  # the server said when to try again


@dataclass(frozen=True)
class OutboundUrl:
    """A parsed ``TICKETPOST_OUTBOUND_URL`` (the password never appears in ``str()``)."""

    scheme: str  # smtp, smtps, graph
    host: str
    port: int
    username: str | None
    password: str | None
    tls_required: bool
    mailbox_id: str | None = None

    def __str__(self) -> str:
        if self.scheme == "graph":
            return f"graph://{self.mailbox_id}"
        user = f"{self.username}:***@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}" + ("?tls=required" if self.tls_required else "")


def parse_outbound_url(url: str) -> OutboundUrl:
    """Parse and check ``url``; raise OutboundConfigError naming the problem."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    query = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
    if scheme == "graph":
        mailbox = parts.netloc or parts.path.strip("/")
        if not mailbox:
            raise OutboundConfigError("graph:// needs a mailbox id: graph://MAILBOX_ID")
        return OutboundUrl("graph", "", 0, None, None, True, mailbox_id=unquote(mailbox))
    if scheme not in ("smtp", "smtps"):
        raise OutboundConfigError(f"TICKETPOST_OUTBOUND_URL: unknown scheme {scheme!r} (smtp://, smtps:// or graph://)")
    if not parts.hostname:
        raise OutboundConfigError("TICKETPOST_OUTBOUND_URL has no host")
    tls = query.get("tls", "")
    if tls not in ("", "required", "auto"):
        raise OutboundConfigError(f"TICKETPOST_OUTBOUND_URL: tls={tls!r} is not 'required'")
    try:
        port = parts.port or (465 if scheme == "smtps" else 587)
    except ValueError as exc:
        raise OutboundConfigError(f"TICKETPOST_OUTBOUND_URL: {exc}") from None
    return OutboundUrl(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls_required=tls == "required" or scheme == "smtps",
    )


class Transport:
    """Hands one message (bytes) to the outside world; raises SendFailed."""

    def send(self, *, sender: str, recipients: list[str], data: bytes) -> int | None:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Let go of open connections."""


class SmtpTransport(Transport):
    """SMTP submission with STARTTLS (or implicit TLS) and AUTH; one connection per thread."""

    def __init__(self, url: OutboundUrl, *, ca_file: str | None = None, timeout_s: float = 30.0,
                 local_hostname: str | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.local_hostname = local_hostname
        self.tls = ssl.create_default_context(cafile=ca_file)
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._lock = threading.Lock()

    def _connect(self) -> smtplib.SMTP:
        url = self.url
        try:
            if url.scheme == "smtps":
                smtp = smtplib.SMTP_SSL(url.host, url.port, local_hostname=self.local_hostname,
                                        timeout=self.timeout_s, context=self.tls)
            else:
                smtp = smtplib.SMTP(url.host, url.port, local_hostname=self.local_hostname,
                                    timeout=self.timeout_s)
            try:
                smtp.ehlo()
                if url.scheme == "smtp":
                    if smtp.has_extn("starttls"):
                        smtp.starttls(context=self.tls)
                        smtp.ehlo()
                    elif url.tls_required or url.username:
                        why = "?tls=required" if url.tls_required else "credentials are never sent unencrypted"
                        raise SendFailed(f"{url.host}:{url.port} does not offer STARTTLS ({why})")
                if url.username:
                    smtp.login(url.username, url.password or "")
            except BaseException:
                smtp.close()
                raise
        except SendFailed:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise SendFailed(f"authentication at {url.host}:{url.port} failed: {exc.smtp_code} {_text(exc.smtp_error)}",
                             code=exc.smtp_code) from None
        except smtplib.SMTPResponseException as exc:
            raise SendFailed(f"{url.host}:{url.port} answered {exc.smtp_code} {_text(exc.smtp_error)}",
                             code=exc.smtp_code) from None
        except ssl.SSLError as exc:
            raise SendFailed(f"TLS with {url.host}:{url.port} failed: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendFailed(f"cannot connect to {url.host}:{url.port}: {type(exc).__name__}: {exc}") from None
        with self._lock:
            self._all.append(smtp)
        return smtp

    def _drop(self, smtp: smtplib.SMTP | None) -> None:
        self._local.smtp = None
        if smtp is None:
            return
        with self._lock:
            if smtp in self._all:
                self._all.remove(smtp)
        try:
            smtp.close()
        except Exception:  # noqa: BLE001
            pass

    def send(self, *, sender: str, recipients: list[str], data: bytes) -> int | None:
        """Send ``data``; return the server's reply code; raise SendFailed (permanent for 5xx)."""
        smtp = getattr(self._local, "smtp", None)
        reused = smtp is not None
        for _ in range(2):
            if smtp is None:
                smtp = self._connect()
                self._local.smtp = smtp
            try:
                refused = smtp.sendmail(sender, recipients, data)
                if refused:
                    first = next(iter(refused.items()))
                    raise SendFailed(f"recipient {first[0]} refused: {first[1][0]} {_text(first[1][1])}",
                                     code=first[1][0], permanent=first[1][0] >= 500)
                return 250
            except (smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout, ssl.SSLError) as exc:
                self._drop(smtp)
                smtp = None
                if reused:  # a kept connection the server closed meanwhile: one fresh try
                    reused = False
                    continue
                raise SendFailed(f"{self.url.host}:{self.url.port} dropped the connection: {type(exc).__name__}: {exc}") from None
            except smtplib.SMTPRecipientsRefused as exc:
                self._reset(smtp)
                address, (code, text) = next(iter(exc.recipients.items()))
                raise SendFailed(f"recipient {address} refused: {code} {_text(text)}", code=code,
                                 permanent=code >= 500) from None
            except smtplib.SMTPResponseException as exc:
                self._reset(smtp)
                raise SendFailed(f"{self.url.host}:{self.url.port} answered {exc.smtp_code} {_text(exc.smtp_error)}",
                                 code=exc.smtp_code, permanent=exc.smtp_code >= 500) from None
            except OSError as exc:
                self._drop(smtp)
                raise SendFailed(f"sending to {self.url.host}:{self.url.port} failed: {type(exc).__name__}: {exc}") from None
        raise SendFailed("unreachable")  # pragma: no cover

    def _reset(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.rset()
        except Exception:  # noqa: BLE001 - broken: start over next time
            self._drop(smtp)

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for smtp in connections:
            try:
                smtp.quit()
            except Exception:  # noqa: BLE001
                try:
                    smtp.close()
                except Exception:  # noqa: BLE001
                    pass


class GraphTransport(Transport):
    """``graph://MAILBOX_ID``: Microsoft Graph ``sendMail`` as a cloud mailbox (SPEC §9), MIME as is.

    The message goes base64-encoded with ``Content-Type: text/plain`` (Graph's MIME form of
    ``POST /users/{user}/sendMail``, answered ``202``); Graph takes the recipients from its To
    header and sends as the mailbox's user, so TICKETPOST_REPLY_FROM should be that address. The
    access token comes from ``models.oauth2.access_token`` (cached, refreshed once on ``401``).
    ``429``/``503`` are retried after their ``Retry-After``; other ``4xx`` are refusals.
    """

    def __init__(self, url: OutboundUrl, *, settings, timeout_s: float = 30.0) -> None:
        self.url = url
        self.settings = settings
        self.http = httpx.Client(timeout=timeout_s)

    def _mailbox(self, engine):
        key = self.url.mailbox_id or ""
        query = select(Mailbox.id, Mailbox.username, Mailbox.graph_base_url, Mailbox.kind)
        query = query.where(Mailbox.id == int(key)) if key.isdigit() else query.where(Mailbox.name == key)
        with engine.connect() as db:
            row = db.execute(query).first()
        if row is None:
            raise SendFailed(f"{self.url}: there is no mailbox {key!r}")
        if row.kind != "graph":
            raise SendFailed(f"{self.url}: mailbox {key!r} is not a Graph mailbox (kind {row.kind})", permanent=True)
        return row

    def send(self, *, sender: str, recipients: list[str], data: bytes) -> int | None:
        engine = get_engine(self.settings.database_url)
        mailbox = self._mailbox(engine)
        api = f"{(mailbox.graph_base_url or GRAPH_BASE_URL).rstrip('/')}/v1.0/users/{quote(mailbox.username, safe='@')}/sendMail"
        body = base64.b64encode(data)
        for fresh in (False, True):
            try:
                token = access_token(mailbox.id, engine=engine, settings=self.settings, refresh=fresh)
            except AuthFailed as exc:
                raise SendFailed(f"{self.url}: the mailbox's credentials are refused ({exc})") from None
            except TokenUnavailable as exc:
                raise SendFailed(f"{self.url}: no access token now ({exc})") from None
            try:
                response = self.http.post(api, content=body, headers={"Authorization": f"Bearer {token}",
                                                                      "Content-Type": "text/plain"})
            except httpx.HTTPError as exc:
                raise SendFailed(f"{self.url}: {type(exc).__name__}: {exc}") from None
            if response.status_code < 300:
                return response.status_code
            if response.status_code == 401 and not fresh:
                continue
            break
        status = response.status_code
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        what = f"{self.url}: Graph sendMail answered {status} {error.get('code') or ''}: {error.get('message') or response.text[:200]}"
        if status in (429, 503):
            raise SendFailed(what, code=status, retry_after_s=_retry_after(response))
        raise SendFailed(what, code=status, permanent=400 <= status < 500 and status not in (401, 408))


def _retry_after(response) -> float | None:
    try:
        return min(3600.0, max(0.0, float(response.headers.get("Retry-After", ""))))
    except ValueError:
        return None


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)[:300]


_transports: dict[tuple, Transport] = {}
_transports_lock = threading.Lock()


def get_transport(settings) -> Transport | None:
    """The process's transport for ``settings.outbound_url`` (None when unset); made once."""
    if not settings.outbound_url:
        return None
    key = (settings.outbound_url, settings.outbound_ca_file, settings.outbound_timeout_s)
    with _transports_lock:
        transport = _transports.get(key)
        if transport is None:
            url = parse_outbound_url(settings.outbound_url)
            if url.scheme == "graph":
                transport = GraphTransport(url, settings=settings, timeout_s=settings.outbound_timeout_s)
            else:
                transport = SmtpTransport(url, ca_file=settings.outbound_ca_file,
                                          timeout_s=settings.outbound_timeout_s,
                                          local_hostname=settings.smtp_hostname)
            _transports[key] = transport
        return transport


def close_transports() -> None:
    """Close every transport of this process (at shutdown, and between tests)."""
    with _transports_lock:
        transports = list(_transports.values())
        _transports.clear()
    for transport in transports:
        transport.close()
