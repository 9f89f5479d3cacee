"""The SMTP listener: takes mail for the support addresses; answers 250 only once it is durable.

Built on aiosmtpd. What it guarantees (SPEC §4):

* Recipients: only ``TICKETPOST_SUPPORT_ADDRESSES`` (``help@msp.example`` or ``*@msp.example``,
  case-insensitive, IDNA domains) else ``550 5.1.1``, at RCPT time. With no support addresses
  configured any recipient is accepted, but only while listening on loopback: :func:`check_bind`
  refuses to start on another address (that would be an open relay into the helpdesk).
* ``SIZE`` is advertised; a declared or actual size over ``SMTP_MAX_MESSAGE_BYTES`` gets
  ``552 5.3.4``. More than ``SMTP_MAX_CONNECTIONS`` sessions get ``421 4.7.0`` and are closed.
* ``250`` only after the message is committed, with group commit (:class:`GroupCommitWriter`):
  one writer thread takes every message whose DATA ended while it was busy, stores them with one
  multi-row INSERT (:func:`ingest.store.store_inbound_batch`) and one COMMIT, then answers each
  session with its own id. The event loop never touches the database. Database down → every
  message of that batch gets ``451 4.3.0`` and none of it is stored (one transaction); any other
  failure of a batch stores its messages one by one, so one bad row costs only its own ``451``.
  Then a hand-over thread gives the ids to the queue; a broker outage still answers ``250`` (the
  sweeper hands the message over later).
* Any unexpected error → ``451 4.3.0`` with no internals in the reply (never aiosmtpd's
  ``500 Error: (ClassName) ...``, which makes senders drop mail).
* STARTTLS when ``SMTP_TLS_CERT`` and ``SMTP_TLS_KEY`` are set. An idle timeout between commands
  and a separate, longer timeout for the DATA transfer; both close with ``421 4.4.2``.
* Graceful stop: stop listening, refuse new DATA with ``421``, let the stores in flight finish
  and answer, then close the remaining sessions.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import ssl
import threading
from dataclasses import dataclass

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ingest.store import inbound_values, store_inbound_batch
from models.domain_names import InvalidDomain, normalize_domain
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)

# --- Replies: every answer we give, named ---------------------------------------------------------

REPLY_RCPT_OK = "250 2.1.5 Recipient OK"
REPLY_SENDER_OK = "250 2.1.0 Sender OK"
REPLY_BAD_SENDER = "553 5.1.7 Sender address contains control characters"
REPLY_BAD_RECIPIENT = "553 5.1.3 Recipient address contains control characters"


def _has_control_characters(address: str) -> bool:
    """True when ``address`` holds a character no stored address may hold (NUL above all)."""
    return any(ord(ch) < 32 or ch == "\x7f" for ch in address)
REPLY_STORED = "250 2.0.0 OK: stored as inbound message {inbound_id}"
REPLY_UNKNOWN_RECIPIENT = "550 5.1.1 Recipient address rejected: not a support address here"
REPLY_TOO_BIG = "552 5.3.4 Message size exceeds the maximum allowed here"
REPLY_TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
REPLY_DATABASE_DOWN = "451 4.3.0 Temporary local problem (storage unavailable), try again later"
REPLY_INTERNAL_ERROR = "451 4.3.0 Temporary local problem, try again later"
REPLY_SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
REPLY_TIMEOUT = "421 4.4.2 Timeout, closing connection"

#: aiosmtpd's own wording for replies we must give with enhanced status codes.
_BUILTIN_REPLIES = {
    "552 Error: message size exceeds fixed maximum message size": REPLY_TOO_BIG,
    "552 Error: Too much mail data": REPLY_TOO_BIG,
}


class SmtpConfigError(RuntimeError):
    """Raised when the SMTP settings would make an unsafe or unusable listener."""


# --- Recipient policy -----------------------------------------------------------------------------


def _canonical_address(address: str) -> str:
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
                addresses.add(_canonical_address(entry))
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
        canonical = _canonical_address(address)
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


# --- Metrics, off the event loop ------------------------------------------------------------------


class _MetricsSender:
    """Hands SMTP metric events to ``core.telemetry`` from one background thread.

    The metric hooks may talk to Redis; doing that on the event loop would stall every session
    (and for seconds while Redis is down). The thread sums what queued up while it wrote, so a busy
    listener makes a few writes, not one per reply. Events beyond a bounded backlog are dropped.
    """

    def __init__(self, backlog: int = 10_000) -> None:
        self._queue: queue.Queue = queue.Queue(backlog)
        self._thread: threading.Thread | None = None
        try:
            from core import telemetry as metrics
        except ImportError:  # metrics are optional wiring
            metrics = None
        self._metrics = metrics

    def reply(self, status: str) -> None:
        self._put("smtp_reply", status)

    def session(self, delta: int) -> None:
        self._put("smtp_session_delta", delta)

    def _put(self, hook: str, arg) -> None:
        if self._metrics is None:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="smtp-metrics", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait((hook, arg))
        except queue.Full:
            pass

    def _run(self) -> None:
        while True:
            events = [self._queue.get()]
            while len(events) < 1000:  # what else is waiting goes in the same writes
                try:
                    events.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._send(events)
            except Exception:  # noqa: BLE001 - metrics never break the mail flow
                log.debug("SMTP metric failed", exc_info=True)

    def _send(self, events: list[tuple[str, object]]) -> None:
        """One metric write per reply code and one for the session gauge, however many events."""
        replies: dict[str, int] = {}
        sessions = 0
        for hook, arg in events:
            if hook == "smtp_reply":
                code = str(arg)[:3]
                replies[code] = replies.get(code, 0) + 1
            else:
                sessions += int(arg)
        for code, count in replies.items():
            self._metrics.smtp_reply(code, count)
        if sessions:
            self._metrics.smtp_session_delta(sessions)


# --- Group commit: one writer thread stores what is waiting, one COMMIT per batch ----------------

#: A batch holds at most this many messages and (beyond its first message) this many raw bytes.
BATCH_MAX_MESSAGES = 200
BATCH_MAX_BYTES = 32 * 1024 * 1024


@dataclass
class _Waiting:
    """A message whose DATA has ended, waiting for the writer; ``future`` gets its id or error."""

    raw: bytes
    mail_from: str
    rcpt_tos: list[str]
    future: asyncio.Future


def _database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached (not that one row was refused)."""
    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


class _HandOver:
    """Gives committed ids to the routing queue from its own thread, after their 250s are sent.

    A slow or unreachable broker then never holds up a COMMIT or a reply; what it fails to take,
    the sweeper re-sends (the rows are committed).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="smtp-hand-over", daemon=True)
        self._thread.start()

    def put(self, ids: list[int]) -> None:
        self._queue.put(ids)

    def stop(self, timeout: float) -> None:
        """Hand over what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        from routing.broker import enqueue

        while (ids := self._queue.get()) is not None:
            for inbound_id in ids:
                try:
                    enqueue(inbound_id)
                except Exception:  # noqa: BLE001 - the sweeper hands it over later
                    log.exception("handing a stored message to the queue failed")


class GroupCommitWriter:
    """Stores SMTP messages with group commit: one thread, one transaction per batch.

    Sessions whose DATA ended call :meth:`store` and wait. Each time the thread is free it
    takes everything waiting (no timer: what queued up during the previous COMMIT is the next
    batch), INSERTs it with one statement and COMMITs once; only then does each session learn its
    own id, and only then are the ids handed to the routing queue. A batch that fails because the
    database is unreachable fails as a whole (nothing of it is stored: one transaction); a batch
    that fails for any other reason is stored again message by message, so one bad row does not
    cost the others their ``250``.
    """

    def __init__(self, *, engine: Engine | None = None) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._carried: _Waiting | None = None  # taken but over a batch limit: first of the next
        self._thread: threading.Thread | None = None
        self._hand_over: _HandOver | None = None
        self._lock = threading.Lock()

    async def store(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> int:
        """The id of the committed message; raises what storing it raised."""
        self._start()
        future = asyncio.get_running_loop().create_future()
        self._queue.put(_Waiting(raw, mail_from, rcpt_tos, future))
        return await future

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batches queued so far and the hand-over, then end both threads."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)
        if self._hand_over is not None:
            self._hand_over.stop(timeout)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._hand_over = _HandOver()
                self._thread = threading.Thread(target=self._run, name="smtp-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while batch := self._next_batch():
            results = self._store(batch)
            try:
                batch[0].future.get_loop().call_soon_threadsafe(_settle, batch, results)
            except RuntimeError:  # the loop is closed: nobody is waiting for an answer
                log.warning("stored %d messages after the SMTP loop closed", len(batch))
            self._hand_over.put([r for r in results if isinstance(r, int)])

    def _next_batch(self) -> list[_Waiting]:
        """Block for the first waiting message, then take what else waits, within the limits."""
        first, self._carried = self._carried or self._queue.get(), None
        if first is None:
            return []
        batch, size = [first], len(first.raw)
        while len(batch) < BATCH_MAX_MESSAGES:
            try:
                waiting = self._queue.get_nowait()
            except queue.Empty:
                break
            if waiting is None:
                self._queue.put(None)  # stop after this batch
                break
            if size + len(waiting.raw) > BATCH_MAX_BYTES:
                self._carried = waiting
                break
            batch.append(waiting)
            size += len(waiting.raw)
        return batch

    def _store(self, batch: list[_Waiting]) -> list[int | BaseException]:
        """One id or one exception per message of ``batch``, in order."""
        try:
            ids = self._commit(batch)
        except Exception as exc:  # noqa: BLE001 - answered per message below
            if len(batch) == 1 or _database_unavailable(exc):
                return [exc] * len(batch)
            log.warning("a batch of %d messages failed; storing them one by one", len(batch),
                        extra={"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
            return [self._store_alone(waiting) for waiting in batch]
        return list(ids)

    def _store_alone(self, waiting: _Waiting) -> int | BaseException:
        try:
            return self._commit([waiting])[0]
        except Exception as exc:  # noqa: BLE001 - this message's own answer
            return exc

    def _commit(self, batch: list[_Waiting]) -> list[int]:
        rows = [
            inbound_values(raw=w.raw, source="smtp", envelope_from=w.mail_from,
                           envelope_to=w.rcpt_tos)
            for w in batch
        ]
        return store_inbound_batch(rows=rows, engine=self.engine)


def _settle(batch: list[_Waiting], results: list[int | BaseException]) -> None:
    """On the event loop: give each waiting session its id or its error."""
    for waiting, result in zip(batch, results, strict=True):
        if waiting.future.done():  # the session went away meanwhile
            continue
        if isinstance(result, BaseException):
            waiting.future.set_exception(result)
        else:
            waiting.future.set_result(result)


# --- The handler: what happens at RCPT and at the end of DATA -------------------------------------


class IntakeHandler:
    """aiosmtpd handler: recipient check at RCPT; at DATA, 250 once the group commit is done."""

    def __init__(self, *, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.policy = RecipientPolicy.from_settings(settings)
        self.closing = False
        self.in_flight = 0
        self.accepted = 0
        self.metrics = _MetricsSender()
        self.writer = GroupCommitWriter(engine=engine)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # We offer no AUTH (login_always_fail): do not advertise it after STARTTLS.
        return [r for r in responses if not r[4:].upper().startswith("AUTH")]

    async def handle_MAIL(self, server, session: Session, envelope: Envelope, address, options):
        # A control character (NUL above all) cannot be stored: refuse it now for good, rather
        # than 451 after DATA on every retry. The same for recipients.
        if _has_control_characters(address):
            self.metrics.reply(REPLY_BAD_SENDER)
            return REPLY_BAD_SENDER
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return REPLY_SENDER_OK

    async def handle_RCPT(self, server, session: Session, envelope: Envelope, address, options):
        if _has_control_characters(address):
            self.metrics.reply(REPLY_BAD_RECIPIENT)
            return REPLY_BAD_RECIPIENT
        if not self.policy.accepts(address):
            log.info("recipient refused", extra={"rcpt": address, "peer": str(session.peer)})
            self.metrics.reply(REPLY_UNKNOWN_RECIPIENT)
            return REPLY_UNKNOWN_RECIPIENT
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return REPLY_RCPT_OK

    async def handle_DATA(self, server, session: Session, envelope: Envelope) -> str:
        reply = await self._data(envelope)
        self.metrics.reply(reply)
        return reply

    async def _data(self, envelope: Envelope) -> str:
        if self.closing:
            return REPLY_SHUTTING_DOWN
        raw = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        if mail_from == "<>":
            mail_from = ""  # the null reverse-path of bounces
        self.in_flight += 1
        try:
            inbound_id = await self.writer.store(raw, mail_from, list(envelope.rcpt_tos))
        except SQLAlchemyError as exc:
            log.warning(
                "database unavailable; answered 451",
                extra={"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"},
            )
            return REPLY_DATABASE_DOWN
        except Exception:  # noqa: BLE001 - the sender must retry, never drop the mail
            log.exception("storing an inbound message failed; answered 451")
            return REPLY_INTERNAL_ERROR
        finally:
            self.in_flight -= 1
        self.accepted += 1
        return REPLY_STORED.format(inbound_id=inbound_id)

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error; answered 451", exc_info=error)
        self.metrics.reply(REPLY_INTERNAL_ERROR)
        return REPLY_INTERNAL_ERROR


# --- The protocol: connection cap, reply wording, timeouts ----------------------------------------


class _Sessions:
    """The live sessions of one listener, and the cap on how many may be open."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.live: set["IntakeSMTP"] = set()

    def admit(self, protocol: "IntakeSMTP") -> bool:
        if len(self.live) >= self.limit:
            return False
        self.live.add(protocol)
        return True

    def release(self, protocol: "IntakeSMTP") -> None:
        self.live.discard(protocol)


class IntakeSMTP(SMTP):
    """aiosmtpd's SMTP with a connection cap, enhanced status codes and a DATA timeout.

    Lines up to 1 MiB are accepted in DATA: RFC 5322 says 998 characters, but real senders
    (generated HTML, broken MUAs) exceed it, and a ``500`` would make them drop the mail.
    Command lines stay limited by aiosmtpd's command size limits.
    """

    line_length_limit = 1024 * 1024

    def __init__(self, handler: IntakeHandler, *, sessions: _Sessions, data_timeout: float, **kw):
        super().__init__(handler, **kw)
        self._sessions = sessions
        self._data_timeout = data_timeout
        self._admitted = False
        self._refused = False

    def connection_made(self, transport) -> None:
        first = not self._admitted and not self._refused
        if first:
            if not self._sessions.admit(self):
                self._refused = True
                log.warning("connection refused: too many sessions")
                self.event_handler.metrics.reply(REPLY_TOO_MANY_CONNECTIONS)
                transport.write(REPLY_TOO_MANY_CONNECTIONS.encode("ascii") + b"\r\n")
                transport.close()
                return
            self._admitted = True
            self.event_handler.metrics.session(+1)
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self._refused:
            return
        self._sessions.release(self)
        self.event_handler.metrics.session(-1)
        super().connection_lost(error)

    async def push(self, status) -> None:
        if isinstance(status, str):
            status = _BUILTIN_REPLIES.get(status, status)
        await super().push(status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA, read in large pieces instead of aiosmtpd's line-by-line loop (its hot spot).

        The message ends at CRLF "." CRLF; lines starting with "." lose that dot (RFC 5321
        4.5.2). A message over SMTP_MAX_MESSAGE_BYTES is read to its end, discarded, and
        answered ``552 5.3.4``. The DATA timeout covers the whole transfer.
        """
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        self._reset_timeout(self._data_timeout)
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await self._read_message()
        except asyncio.IncompleteReadError:
            return  # the client went away mid-message: nothing was acknowledged
        if content is None:
            await self.push(REPLY_TOO_BIG)
            self._set_post_data_state()
            self._reset_timeout()
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        if self.transport is not None:
            self._reset_timeout()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_message(self) -> bytes | None:
        """The un-dot-stuffed message, or None when it exceeds the size limit (then discarded).

        Reads up to each ".CRLF" (or 1 MiB, the stream limit, at a time); the message ends where
        that dot starts a line, i.e. the two bytes before it are CRLF (the start of DATA counts as
        a line start).
        """
        reader, limit = self._reader, self.data_size_limit
        parts: list[bytes] = []
        size = 0
        tail = b"\r\n"  # the last two bytes read so far
        while True:
            try:
                piece = await reader.readuntil(b".\r\n")
            except asyncio.LimitOverrunError as exc:
                piece = await reader.readexactly(exc.consumed)  # no terminator in it
            else:
                before_dot = (tail + piece[:-3])[-2:]
                if before_dot == b"\r\n":
                    piece = piece[:-3]
                    size += len(piece)
                    if size <= (limit or size):
                        parts.append(piece)
                    break
            size += len(piece)
            if limit and size > limit:
                parts = []  # keep reading to the end, keep nothing
            else:
                parts.append(piece)
            tail = (tail + piece)[-2:]
        if limit and size > limit:
            return None
        data = b"".join(parts)
        data = data.replace(b"\r\n.", b"\r\n")
        return data[1:] if data.startswith(b".") else data

    def _timeout_cb(self) -> None:
        if self.transport is not None:
            try:
                self.transport.write(REPLY_TIMEOUT.encode("ascii") + b"\r\n")
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        super()._timeout_cb()

    def say_goodbye(self) -> None:
        """Close this session at shutdown, telling the client to come back later."""
        if self.transport is not None:
            try:
                self.transport.write(REPLY_SHUTTING_DOWN.encode("ascii") + b"\r\n")
            finally:
                self.transport.close()


# --- The server: its own event loop in a thread ---------------------------------------------------


class SmtpServer:
    """The SMTP listener on ``SMTP_HOST:SMTP_PORT``, run by an event loop in a background thread.

    ``start()`` returns once the socket listens; ``stop(timeout)`` stops gracefully.
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        engine: Engine | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        check_bind(self.settings)
        self.host = host or self.settings.smtp_host
        self.port = self.settings.smtp_port if port is None else port
        self.handler = IntakeHandler(settings=self.settings, engine=engine)
        self.tls_context = tls_context(self.settings)
        self._sessions = _Sessions(self.settings.smtp_max_connections)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    def _factory(self) -> IntakeSMTP:
        return IntakeSMTP(
            self.handler,
            sessions=self._sessions,
            data_timeout=self.settings.smtp_data_timeout_s,
            data_size_limit=self.settings.smtp_max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=self.settings.smtp_hostname,
            ident="ticketpost ESMTP",
            tls_context=self.tls_context,
            timeout=self.settings.smtp_idle_timeout_s,
            loop=self._loop,
        )

    def start(self) -> None:
        """Bind and serve in a background thread; return once listening.

        Raised when the port cannot be bound: OSError.
        """
        self._thread = threading.Thread(target=self._run, name="ticketpost-smtp", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                loop.create_server(self._factory, host=self.host, port=self.port, backlog=512)
            )
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        log.info("SMTP listening", extra={"host": self.host, "port": self.port})
        try:
            loop.run_forever()
        finally:
            self.handler.writer.stop()
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _shutdown(self, timeout: float) -> None:
        self.handler.closing = True
        assert self._server is not None
        self._server.close()
        deadline = self._loop.time() + timeout
        while self.handler.in_flight and self._loop.time() < deadline:
            await asyncio.sleep(0.02)
        for session in list(self._sessions.live):
            session.say_goodbye()
        await asyncio.sleep(0)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop listening, finish the stores in flight (up to ``timeout`` s), close all sessions."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), self._loop)
        try:
            future.result(timeout + 5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout + 5)
        log.info("SMTP stopped", extra={"accepted": self.handler.accepted})
