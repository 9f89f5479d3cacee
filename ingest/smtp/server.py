"""The SMTP listener: its own event loop in a background thread, started and stopped gracefully."""

from __future__ import annotations

import asyncio
import logging
import threading

from sqlalchemy.engine import Engine

from core.settings import Settings, get_settings
from ingest.smtp.handler import IntakeHandler
from ingest.smtp.policy import check_bind, tls_context
from ingest.smtp.session import IntakeSMTP, Sessions

log = logging.getLogger(__name__)


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
        self._sessions = Sessions(self.settings.smtp_max_connections,
                                  self.settings.smtp_max_connections_per_ip)
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
            session_timeout=self.settings.smtp_session_timeout_s,
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
