"""A real SMTP sink for the outbox tests and bench.outbox: aiosmtpd with STARTTLS and AUTH on 127.0.0.1.

``SmtpSink`` records every accepted message (envelope and bytes) and what the session did
(STARTTLS before AUTH?). It can be stopped and started again on the same port (the "sink down"
case), refuse recipients with a 5xx, and hold DATA until released (a send in flight, for the
kill -9 case). The same class runs as a separate process (``python -m bench.smtp_sink``) that
appends each message to a spool directory, for the tests where ticketpost runs in subprocesses.
"""

from __future__ import annotations

import email
import json
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from email import policy
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from bench.smtp_e2e import free_port
from bench.tls import self_signed_cert

USER, PASSWORD = "ticketpost", "s3cret-pass"


@dataclass
class Received:
    """One accepted message."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    authenticated: bool

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)


@dataclass
class _Handler:
    sink: "SmtpSink"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.sink.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        self.sink.in_data.set()
        while self.sink.hold.is_set():
            await asyncio.sleep(0.05)
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content or envelope.content),
                            tls=self.sink.implicit_tls or session.ssl is not None, authenticated=bool(session.authenticated))
        self.sink.accept(received)
        return "250 2.0.0 queued"


class SmtpSink:
    """aiosmtpd on 127.0.0.1 with STARTTLS (or implicit TLS) and AUTH required after TLS."""

    def __init__(self, directory: Path, *, implicit_tls: bool = False, port: int | None = None,
                 spool: Path | None = None) -> None:
        self.cert, self.key = self_signed_cert(directory)
        self.port = port or free_port()
        self.implicit_tls = implicit_tls
        self.messages: list[Received] = []
        self.auth_attempts: list[tuple[bool, str]] = []  # (over TLS?, user)
        self.refuse: set[str] = set()
        self.hold = threading.Event()  # while set, DATA is received but not answered
        self.in_data = threading.Event()  # set when a session reached the end of DATA
        self.spool = spool
        self._controller: Controller | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
        self.auth_attempts.append((self.implicit_tls or session.ssl is not None, auth_data.login.decode() if isinstance(auth_data, LoginPassword) else ""))
        return AuthResult(success=ok)

    def accept(self, received: Received) -> None:
        with self._lock:
            self.messages.append(received)
        if self.spool is not None:
            name = f"{time.time_ns()}.eml"
            (self.spool / (name + ".tmp")).write_bytes(received.data)
            (self.spool / (name + ".tmp")).rename(self.spool / name)

    def start(self) -> "SmtpSink":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        kwargs = dict(hostname="127.0.0.1", port=self.port, server_hostname="sink.localhost",
                      authenticator=self._authenticate, auth_required=True, auth_require_tls=True)
        if self.implicit_tls:  # TLS from the first byte (aiosmtpd's TLS check knows only STARTTLS)
            kwargs.update(ssl_context=context, auth_require_tls=False)
        else:
            kwargs.update(tls_context=context, require_starttls=True)
        self._controller = Controller(_Handler(self), **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"the sink got {len(self.messages)} messages, not {count}, in {timeout} s")


def main() -> None:  # pragma: no cover - run as a process by tests and bench.outbox
    """``python -m bench.smtp_sink DIR PORT [--count-only]``: spool to DIR/spool, or only count."""
    directory, port = Path(sys.argv[1]), int(sys.argv[2])
    spool = None
    if "--count-only" not in sys.argv:
        spool = directory / "spool"
        spool.mkdir(exist_ok=True)
    sink = SmtpSink(directory, port=port, spool=spool)
    if spool is None:  # keep nothing in memory either
        sink.accept = lambda received: None
    sink.start()
    print(json.dumps({"port": sink.port, "cert": str(sink.cert)}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    main()
