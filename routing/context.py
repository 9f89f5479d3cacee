"""The typed state one inbound message carries through the routing steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from routing.records import ClientRow, ContactRow, InboundRow, TicketRow

if TYPE_CHECKING:
    from routing.mailparse import ParsedMail
    from routing.sender_record import SenderRecord
    from core.settings import Settings


@dataclass
class RoutingContext:
    """What the steps know about one inbound message so far; each step fills in its part.

    ``explanation`` collects one ``{"step", "decision"}`` entry per decision, in order; it is what
    ``GET /api/v1/inbound/{id}`` and ``ticketpost route`` show.
    """

    db: Connection  # routing's connection; the steps after ``extract`` run in its write transaction
    settings: "Settings"
    inbound: InboundRow
    mail: "ParsedMail | None" = None
    message_id: str = ""  # the Message-ID (or synthetic one), storable as it is
    sender_email: str | None = None
    sender_domain: str | None = None
    sender_name: str = ""
    record: "SenderRecord | None" = None  # what the database knows about the sender (read once locked)
    webhooks: bool = True  # any webhook enabled (read with the lock); False skips the outcome's event
    #: the tickets holding the Message-IDs this message refers to, read with the rest of its batch
    #: (routing.batch); None = the thread step asks the database itself
    known_threads: dict[str, TicketRow] | None = None
    client: ClientRow | None = None
    client_via: str = ""  # "contact" or "domain <registered domain>"
    client_terms: tuple | None = None  # (active contract id, SLA) of client, when read with it
    contact: ContactRow | None = None
    contact_created: bool = False
    ticket: TicketRow | None = None  # the ticket a reply threads onto (None = a new ticket)
    reopened: bool = False
    subject: str = ""  # subject for a new ticket (reply prefixes and tags stripped)
    reply_text: str | None = None  # the new part of a reply (None: the whole body text)
    message: dict | None = None  # the ticket message to store, written with the outcome
    new_ticket: dict | None = None  # the ticket to open (routing.tickets.ticket_values), with the outcome
    ticket_status: str | None = None  # a reply's new ticket status (None = unchanged)
    outcome: str | None = None
    reason: str = ""
    explanation: list[dict[str, str]] = field(default_factory=list)
    _session: Session | None = field(default=None, repr=False)

    @property
    def session(self) -> Session:
        """An ORM Session on :attr:`db`'s connection and transaction, made on first use.

        Only a new ticket whose client's contract and SLA were not read with the client (a
        contact created at the same moment for another client) needs it.
        """
        if self._session is None:
            self._session = Session(bind=self.db, expire_on_commit=False, autoflush=True)
        return self._session

    def flush(self) -> None:
        """Send what the ORM Session holds to the database (before the caller commits)."""
        if self._session is not None:
            self._session.flush()

    def close(self) -> None:
        """Let go of the ORM Session, if one was made."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def explain(self, step: str, decision: str) -> None:
        """Record one decision of ``step`` for the explanation."""
        self.explanation.append({"step": step, "decision": decision})
