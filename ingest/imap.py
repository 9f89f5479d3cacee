"""IMAP intake: one poller thread per enabled mailbox, supervised by ``ImapService``.

A poller (``MailboxPoller``) loops forever, in this order:

1. take the mailbox's lease (``ingest.imap_lock``: PostgreSQL advisory lock, or a file lock next to
   the SQLite database) — without it, it waits as a standby and tries again;
2. decrypt the password (``TICKETPOST_SECRET_KEY``), connect (``ssl``, ``starttls`` or ``none``;
   certificates are verified against the system CAs or ``TICKETPOST_IMAP_CA_FILE``), log in;
3. run a sync pass (``ingest.imap_sync``), record ``last_success_at``;
4. wait for news with IDLE when the server has it (re-issued every ``TICKETPOST_IMAP_IDLE_RENEW_S``,
   well inside the 29 minutes after which servers may drop an idle client), and run a full UID
   sweep at least every ``TICKETPOST_IMAP_SWEEP_INTERVAL_S`` anyway (without IDLE: only the
   sweep); back to 3.

Any failure (network, login, server, database) closes the connection, is written to the
mailbox's health fields (``last_error``, ``last_error_at``, ``consecutive_failures``) and is
followed by an exponential backoff (``TICKETPOST_IMAP_BACKOFF_INITIAL_S`` doubling up to
``TICKETPOST_IMAP_BACKOFF_MAX_S``, with jitter) before the next attempt — forever. A success resets
``consecutive_failures`` to 0; ``last_error`` stays as the record of the most recent failure.

``ImapService`` starts a poller per enabled mailbox and re-reads the mailbox table every
``TICKETPOST_IMAP_RELOAD_INTERVAL_S``: added, enabled, changed, disabled and removed mailboxes are
picked up without a restart.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import time
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from ingest.handover import enqueue_for_routing
from ingest.pollers import LeasedPoller, PollerSupervisor
from ingest.imap_sync import (
    CheckpointMoved,
    MailboxConfig,
    MailboxGone,
    sync_pass,
    take_mail_notices,
)
from models import Mailbox
from models.base import utcnow
from models.db import session_scope
from models.secrets import decrypt_secret
from models.oauth2 import AuthFailed, access_token, token_provider
from core.settings import Settings
from routing.webhooks.events import mailbox_unhealthy

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}


def connect(config: MailboxConfig, *, password: str | None = None, settings: Settings,
            access_token: str | None = None):
    """A logged-in ``IMAPClient`` for ``config`` (TLS verified unless the mode is ``none``):
    LOGIN with ``password``, or SASL XOAUTH2 with ``access_token``."""
    from imapclient import IMAPClient

    port = config.port or DEFAULT_PORTS.get(config.security, 993)
    context = None
    if config.security in ("ssl", "starttls"):
        context = ssl.create_default_context(cafile=settings.imap_ca_file)
    client = IMAPClient(
        config.host,
        port=port,
        ssl=config.security == "ssl",
        ssl_context=context if config.security == "ssl" else None,
        timeout=settings.imap_timeout_s,
    )
    try:
        if config.security == "starttls":
            client.starttls(context)
        client.normalise_times = False  # INTERNALDATE as aware datetimes
        if access_token is not None:
            client.oauth2_login(config.username, access_token)
        else:
            client.login(config.username, password)
    except BaseException:
        _logout_quietly(client)
        raise
    _enlarge_read_buffer(client, settings.imap_timeout_s)
    return client


#: Read buffer of the IMAP connection. imaplib reads through an 8 KiB buffer, which means about one
#: recv() per message of a FETCH; each recv gives up the GIL, and next to CPU-bound routing threads
#: winning it back costs up to a switch interval (5 ms). A 1 MiB buffer needs ~25x fewer.
READ_BUFFER = 1024 * 1024


def _enlarge_read_buffer(client, timeout: float) -> None:
    """Swap imaplib's response reader for one with ``READ_BUFFER``, if nothing is buffered."""
    imap = getattr(client, "_imap", None)
    sock, old = getattr(imap, "sock", None), getattr(imap, "file", None)
    if sock is None or old is None or not hasattr(old, "peek"):
        return
    try:
        sock.setblocking(False)
        try:
            pending = old.peek(1)
        except (BlockingIOError, ssl.SSLWantReadError):
            pending = b""
        except OSError:
            return
        if not pending:  # nothing unread would be lost with the old reader
            imap.file = sock.makefile("rb", buffering=READ_BUFFER)
    finally:
        sock.settimeout(timeout)


def backoff_delay(failures: int, settings: Settings) -> float:
    """Seconds to wait after ``failures`` consecutive failures: doubling, capped, with jitter."""
    base = settings.imap_backoff_initial_s * (2 ** max(0, min(failures - 1, 30)))
    return min(base, settings.imap_backoff_max_s) * random.uniform(0.8, 1.0)


def record_failure(engine: Engine, mailbox_id: int, error: str, *, auth_failed: bool = False,
                   unhealthy_after: int = 3) -> None:
    """Write a failure into the mailbox's health fields (``auth_failed``: also ``auth_error``).

    The failure that turns the mailbox unhealthy (the ``unhealthy_after``-th in a row, or the
    first refusal of its credentials) writes the ``mailbox.unhealthy`` webhook event with it.
    """
    values = dict(
        last_error=error[:2000],
        last_error_at=utcnow(),
        consecutive_failures=Mailbox.consecutive_failures + 1,
    )
    if auth_failed:
        values["auth_error"] = error[:2000]
    with session_scope(engine) as session:
        had_auth_error = session.scalar(select(Mailbox.auth_error.is_not(None)).where(Mailbox.id == mailbox_id))
        row = session.execute(
            update(Mailbox).where(Mailbox.id == mailbox_id).values(**values)
            .returning(Mailbox.consecutive_failures, Mailbox.name, Mailbox.kind, Mailbox.host, Mailbox.username)
        ).first()
        if row is None:
            return
        health = None
        if auth_failed and not had_auth_error:
            health = "auth_failed"
        elif row.consecutive_failures == max(1, unhealthy_after) and not had_auth_error:
            health = "failing"
        if health is not None:
            mailbox = {"id": mailbox_id, "name": row.name, "kind": row.kind, "host": row.host,
                       "username": row.username, "consecutive_failures": row.consecutive_failures}
            mailbox_unhealthy(session.connection(), mailbox=mailbox, health=health, reason=error[:2000])


def record_auth_ok(engine: Engine, mailbox_id: int) -> None:
    """The provider took our credentials again: clear ``auth_error`` (health leaves auth_failed)."""
    with session_scope(engine) as session:
        session.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox_id, Mailbox.auth_error.is_not(None))
            .values(auth_error=None)
        )


def failure_delay(exc: BaseException, failures: int, settings: Settings) -> float:
    """The backoff after a failure; a refusal of credentials waits at least
    ``TICKETPOST_OAUTH2_AUTH_FAILURE_BACKOFF_S`` (asking again at once would be refused again)."""
    delay = backoff_delay(failures, settings)
    if isinstance(exc, AuthFailed):
        delay = max(delay, settings.oauth2_auth_failure_backoff_s * random.uniform(0.9, 1.0))
    return delay


def describe(exc: BaseException) -> str:
    """A one-line description of a failure for the health fields and logs."""
    text = str(exc).strip() or "no details"
    return f"{type(exc).__name__}: {text}"


class MailboxPoller(LeasedPoller):
    """The thread that keeps one mailbox's folder taken in (see the module docstring)."""

    label = "IMAP"

    def __init__(
        self,
        config: MailboxConfig,
        *,
        engine: Engine,
        settings: Settings,
        hand_over: Callable[[int], object] = enqueue_for_routing,
    ) -> None:
        super().__init__(mailbox_id=config.id, mailbox_name=config.name, engine=engine,
                         settings=settings, hand_over=hand_over)
        self.config = config
        self.idles = 0  # IDLE commands issued (each renewal is one)
        self._client = None

    # --- while holding the lease --------------------------------------------------------------

    def _hold(self, lock) -> None:
        while not self.stopping and lock.alive():
            try:
                self._session(lock)
            except MailboxGone:
                log.info("mailbox removed; its poller stops", extra={"mailbox": self.config.name})
                self._stop_event.set()
            except CheckpointMoved as exc:
                log.warning(
                    "checkpoint moved under this poller; starting over",
                    extra={"mailbox": self.config.name, "error": str(exc)},
                )
                self._stop_event.wait(1.0)
            except Exception as exc:  # noqa: BLE001 - every failure: record, back off, retry
                if self.stopping:
                    return
                self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        error = str(exc) if isinstance(exc, AuthFailed) else describe(exc)
        delay = failure_delay(exc, self.failures, self.settings)
        log.warning(
            "IMAP mailbox failed; retrying",
            extra={
                "mailbox": self.config.name,
                "error": error,
                "failures": self.failures,
                "retry_in_s": round(delay, 2),
            },
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        try:
            record_failure(self.engine, self.config.id, error,
                           auth_failed=isinstance(exc, AuthFailed),
                           unhealthy_after=self.settings.webhooks_mailbox_failures)
        except Exception:  # noqa: BLE001 - the database may be what failed
            log.warning("could not record the failure", extra={"mailbox": self.config.name},
                        exc_info=True)
        self._stop_event.wait(delay)

    def _session(self, lock) -> None:
        """One connection: sync, wait, sync …; returns when stopping or the lease is lost."""
        client = self._login()
        self._client = client
        try:
            if self.config.move_to and not client.folder_exists(self.config.move_to):
                client.create_folder(self.config.move_to)
            idle = client.has_capability("IDLE")
            while not self.stopping:
                result = sync_pass(
                    client,
                    engine=self.engine,
                    config=self.config,
                    max_bytes=self.settings.smtp_max_message_bytes,
                    batch_size=self.settings.imap_batch_size,
                    hand_over=self.hand_over,
                    should_stop=self._stop_event.is_set,
                )
                self.passes += 1  # record_pass wrote last_success_at
                if self.failures:
                    log.info("IMAP mailbox recovered", extra={"mailbox": self.config.name,
                                                             "after_failures": self.failures})
                self.failures = 0
                if result.stored or result.too_large:
                    log.info(
                        "IMAP messages stored",
                        extra={
                            "mailbox": self.config.name,
                            "stored": len(result.stored),
                            "too_large": result.too_large,
                            "duplicates": result.duplicates,
                        },
                    )
                if not lock.alive():
                    log.warning("lost the mailbox lease", extra={"mailbox": self.config.name})
                    return
                self._wait_for_mail(client, idle)
        finally:
            self._client = None
            _logout_quietly(client)

    def _login(self):
        """A logged-in client: password LOGIN, or XOAUTH2 with the mailbox's (cached) token."""
        if self.config.auth != "oauth2":
            if not self.config.password_encrypted:
                raise ValueError("the mailbox has no password stored")
            password = decrypt_secret(self.config.password_encrypted, key=self.settings.secret_key)
            return connect(self.config, password=password, settings=self.settings)
        from imapclient.exceptions import LoginError

        token = access_token(self.config.id, engine=self.engine, settings=self.settings)
        try:
            client = connect(self.config, access_token=token, settings=self.settings)
        except LoginError as exc:
            # the server refused the token: the next attempt asks the provider for a new one
            token_provider(engine=self.engine, settings=self.settings).forget(self.config.id)
            raise AuthFailed("imap_login_refused", str(exc).strip() or "XOAUTH2 refused") from None
        record_auth_ok(self.engine, self.config.id)
        return client

    def _wait_for_mail(self, client, idle: bool) -> None:
        """Return when new mail may be there: IDLE news, the sweep interval, or stopping."""
        sweep_at = time.monotonic() + self.settings.imap_sweep_interval_s
        if not idle:
            if not take_mail_notices(client):
                self._stop_event.wait(self.settings.imap_sweep_interval_s)
            return
        while not self.stopping and time.monotonic() < sweep_at:
            renew_at = min(sweep_at, time.monotonic() + self.settings.imap_idle_renew_s)
            client.idle()
            self.idles += 1
            # mail announced during the pass, or when IDLE began, is not announced again
            news = take_mail_notices(client)
            try:
                while not self.stopping and not news:
                    left = renew_at - time.monotonic()
                    if left <= 0:
                        break
                    if _read_ahead(client, self.settings.imap_timeout_s):
                        break  # already received: DONE collects it (below)
                    wait = min(0.5, left)
                    began = time.monotonic()
                    responses = client.idle_check(timeout=wait)
                    if not responses and time.monotonic() - began < wait / 2 \
                            and _closed_by_server(client, self.settings.imap_timeout_s):
                        raise ConnectionError("the server closed the connection during IDLE")
                    news = _has_news(responses)
            finally:
                _, responses = client.idle_done()
            # mail noticed while we renew comes with the DONE completion, not as IDLE news
            if news or _has_news(responses):
                return


def _has_news(responses) -> bool:
    """True when IDLE told us about new messages; raises when the server says goodbye."""
    news = False
    for response in responses:
        if not isinstance(response, tuple) or not response:
            continue
        if response[0] == b"BYE":
            raise ConnectionError(f"server closed the connection: {response!r}")
        if len(response) > 1 and response[1] in (b"EXISTS", b"RECENT"):
            news = True
    return news


def _read_ahead(client, timeout: float) -> bool:
    """True when server data sits in imaplib's read buffer (or on the socket) unread.

    ``idle_check`` only reads when the *socket* is readable. A server that announces mail in the
    same packet as its ``+ idling`` (Dovecot does, for mail that came just before IDLE) leaves
    that announcement in the buffer behind the continuation line, where ``idle_check`` never
    looks; it would wait for the next sweep.
    """
    imap = getattr(client, "_imap", None)
    reader, sock = getattr(imap, "file", None), getattr(imap, "sock", None)
    if reader is None or sock is None or not hasattr(reader, "peek"):
        return False
    try:
        sock.setblocking(False)
        try:
            return bool(reader.peek(1))
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        except OSError:
            return True  # let DONE surface the error
    finally:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass


def _closed_by_server(client, timeout: float) -> bool:
    """True when the peer closed the TCP connection (imapclient's ``idle_check`` hides EOF)."""
    sock = client.socket()
    try:
        sock.setblocking(False)
        # peek at the raw TCP stream (also under TLS): b"" means the server hung up
        return socket.socket.recv(sock, 1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass


def _logout_quietly(client) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001
            pass


class ImapService(PollerSupervisor):
    """Runs a ``MailboxPoller`` for each enabled IMAP mailbox and follows the mailbox table.

    ``start()`` returns at once; ``stop(timeout)`` stops every poller and waits for them
    (``ingest.pollers.PollerSupervisor``).
    """

    kind = "imap"
    label = "IMAP"
    config_class = MailboxConfig
    poller_class = MailboxPoller
