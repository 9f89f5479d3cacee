"""One supervisor of mailbox pollers: a poller thread per enabled mailbox of one kind.

``ingest.imap.ImapService`` and ``ingest.graph.GraphService`` are this supervisor for their
mailbox kind: each names the kind (``Mailbox.kind``), the config class whose ``of(row)`` reads a
mailbox row, and the poller class (a thread built as ``poller_class(config, engine=...,
settings=..., hand_over=...)`` with ``stop()``). The supervisor starts, restarts (when the
config changed or the thread died) and stops pollers to match the mailbox table, re-read every
``imap_reload_interval_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import astuple
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.settings import Settings, get_settings
from ingest.handover import HandOver
from ingest.imap_lock import lock_for
from models import Mailbox
from models.db import get_engine, session_scope

log = logging.getLogger(__name__)


class LeasedPoller(threading.Thread):
    """A mailbox poller thread that works only while it holds the mailbox's lease.

    ``run()`` takes the lease (``ingest.imap_lock``: one poller per mailbox across processes),
    calls ``_hold(lock)`` while holding it, and otherwise stands by; subclasses implement
    ``_hold`` and ``_failed`` (called when the lease cannot even be asked for: database down).
    """

    #: "IMAP" or "Graph", for the log lines.
    label: ClassVar[str]

    def __init__(self, *, mailbox_id: int, mailbox_name: str, engine: Engine, settings: Settings,
                 hand_over: Callable[[int], object]) -> None:
        super().__init__(name=f"{self.label.lower()}-poller-{mailbox_name}", daemon=True)
        self.mailbox_id = mailbox_id
        self.mailbox_name = mailbox_name
        self.engine = engine
        self.settings = settings
        self.hand_over = hand_over
        self.failures = 0
        self.passes = 0  # sync passes run (for tests and logs)
        self.active = threading.Event()  # set while this poller holds the lease
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Ask the poller to finish its current step and exit."""
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        extra = {"mailbox": self.mailbox_name}
        log.info("%s poller started", self.label, extra=extra)
        standby_logged = False
        while not self.stopping:
            lock = lock_for(self.engine, self.mailbox_id)
            try:
                acquired = lock.acquire()
            except Exception as exc:  # noqa: BLE001 - database down: wait and try again
                self._failed(exc)
                continue
            if not acquired:
                if not standby_logged:
                    log.info("another poller has this mailbox; standing by", extra=extra)
                    standby_logged = True
                self._stop_event.wait(self.settings.imap_reload_interval_s)
                continue
            standby_logged = False
            self.active.set()
            try:
                self._hold(lock)
            finally:
                self.active.clear()
                lock.release()
        log.info("%s poller stopped", self.label, extra=extra)

    def _hold(self, lock) -> None:
        raise NotImplementedError

    def _failed(self, exc: BaseException) -> None:
        raise NotImplementedError


class PollerSupervisor:
    """Runs a poller for each enabled mailbox of ``kind`` and follows changes to the mailbox table.

    ``start()`` returns at once; ``stop(timeout)`` stops every poller and waits for them.
    Subclasses set ``kind``, ``label`` (for logs), ``config_class`` and ``poller_class``.
    """

    kind: ClassVar[str]
    label: ClassVar[str]
    config_class: ClassVar[Any]
    poller_class: ClassVar[Any]

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        settings: Settings | None = None,
        hand_over: Callable[[int], object] | None = None,
    ) -> None:
        """``hand_over`` (called in the poller thread) defaults to the routing queue, fed from a
        background thread (``ingest.handover.HandOver``)."""
        self.settings = settings or get_settings()
        self.engine = engine or get_engine(self.settings.database_url)
        self._background = HandOver(name=f"{self.kind}-hand-over") if hand_over is None else None
        self.hand_over = hand_over or self._background
        self.pollers: dict[int, Any] = {}
        self._configs: dict[int, Any] = {}
        self._stop_event = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self):
        """Start the pollers of enabled mailboxes and the thread that follows mailbox changes."""
        try:
            self.reconcile()
        except Exception:  # noqa: BLE001 - the supervisor keeps trying
            log.warning("could not read the %s mailboxes yet; will retry", self.label,
                        exc_info=True)
        self._supervisor = threading.Thread(target=self._supervise, name=f"{self.kind}-service",
                                            daemon=True)
        self._supervisor.start()
        return self

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Stop every poller (each finishes its current step) and wait up to ``timeout`` seconds;
        return the names of mailboxes whose poller had not finished by then (logged too)."""
        self._stop_event.set()
        deadline = time.monotonic() + timeout
        if self._supervisor is not None:
            self._supervisor.join(max(0.0, deadline - time.monotonic()))
        running = [(self._configs[mailbox_id].name, poller)
                   for mailbox_id, poller in self.pollers.items()]
        for _name, poller in running:
            poller.stop()
        for _name, poller in running:
            poller.join(max(0.0, deadline - time.monotonic()))
        self.pollers.clear()
        self._configs.clear()
        if self._background is not None:
            self._background.close(max(0.5, deadline - time.monotonic()))
        late = [name for name, poller in running if poller.is_alive()]
        if late:
            log.warning("%s pollers still finishing after stop", self.label,
                        extra={"mailboxes": late})
        return late

    def wait(self) -> None:
        """Block until ``stop()`` is called (the foreground ``ticketpost imap``)."""
        while not self._stop_event.wait(1.0):
            pass

    def _supervise(self) -> None:
        while not self._stop_event.wait(self.settings.imap_reload_interval_s):
            try:
                self.reconcile()
            except Exception:  # noqa: BLE001
                log.warning("could not re-read the %s mailboxes", self.label, exc_info=True)

    def reconcile(self) -> None:
        """Make the running pollers match the enabled mailboxes (start, restart, stop)."""
        with session_scope(self.engine) as session:
            rows = session.scalars(
                select(Mailbox).where(Mailbox.enabled.is_(True), Mailbox.kind == self.kind)
            ).all()
            wanted = {row.id: self.config_class.of(row) for row in rows}
        if self._stop_event.is_set():
            return
        for mailbox_id in list(self.pollers):
            config = wanted.get(mailbox_id)
            poller = self.pollers[mailbox_id]
            if config is None or astuple(config) != astuple(self._configs[mailbox_id]) \
                    or not poller.is_alive():
                poller.stop()
                poller.join(30)
                del self.pollers[mailbox_id]
                del self._configs[mailbox_id]
        for mailbox_id, config in wanted.items():
            if mailbox_id not in self.pollers:
                poller = self.poller_class(config, engine=self.engine, settings=self.settings,
                                           hand_over=self.hand_over)
                self.pollers[mailbox_id] = poller
                self._configs[mailbox_id] = config
                poller.start()
