"""The clients, contacts, SLA and contracts the golden corpus is routed against."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Client, ClientDomain, Contact, Contract, OutboundMessage, Sla, TicketMessage
from routing.tickets import open_ticket

BUSINESS_HOURS = {
    "timezone": "Europe/Berlin",
    "windows": [{"day": d, "start": "09:00", "end": "17:00"} for d in range(5)],
    "holidays": ["2026-12-24", "2026-12-25", "2027-01-01"],
}

# name: (domains, tickets_only_by_primary_contact, require_authenticated_sender)
CLIENTS = {
    "Acme": (["acme.com"], False, False),
    "Acme Europe": (["eu.acme.com"], False, False),
    "Beta": (["beta.example"], True, False),
    "Gamma": (["gamma.example"], True, True),
    "Delta": (["delta.example"], True, False),
    "Bücher": (["xn--bcher-kva.example"], False, False),
}

# email: (client, first, last, is_primary, ignore_email)
CONTACTS = {
    "bob@acme.com": ("Acme", "Bob", "Builder", True, False),
    "muted@acme.com": ("Acme", "Mute", "Person", False, False),
    "boss@beta.example": ("Beta", "Berta", "Boss", True, False),
    "worker@beta.example": ("Beta", "Walter", "Worker", False, False),
    "jane.public@gmail.com": ("Beta", "Jane", "Public", False, False),
    "carol.acme@gmail.com": ("Acme", "Carol", "Homeoffice", False, False),
    "ceo@gamma.example": ("Gamma", "Gina", "Gamma", True, False),
}
MUTED = {"muted@acme.com"}


def build_world(session: Session) -> dict[str, Client]:
    """Create the corpus world; return the clients by name."""
    sla = Sla(name="Business 8x5", first_response_minutes=240, resolution_minutes=2400,
              business_hours=BUSINESS_HOURS)
    session.add(sla)
    session.flush()
    clients: dict[str, Client] = {}
    for name, (domains, only_primary, require_auth) in CLIENTS.items():
        client = Client(name=name, tickets_only_by_primary_contact=only_primary,
                        require_authenticated_sender=require_auth,
                        sla_id=sla.id if name == "Acme" else None)
        session.add(client)
        session.flush()
        for domain in domains:
            session.add(ClientDomain(client_id=client.id, domain=domain))
        clients[name] = client
    for email, (client_name, first, last, primary, _) in CONTACTS.items():
        session.add(Contact(client_id=clients[client_name].id, first_name=first, last_name=last,
                            email=email, is_primary=primary, ignore_email=email in MUTED))
    today = date.today()
    session.add(Contract(client_id=clients["Acme"].id, name="Old retainer", type="retainer",
                         start_date=today - timedelta(days=400), end_date=today - timedelta(days=31)))
    session.add(Contract(client_id=clients["Acme"].id, name="Retainer", type="retainer",
                         start_date=today - timedelta(days=30), end_date=today + timedelta(days=300)))
    session.add(Contract(client_id=clients["Acme"].id, name="Monitoring", type="remote_monitoring",
                         start_date=None, end_date=None))
    session.flush()
    return clients


def apply_setup(session: Session, clients: dict[str, Client], setup: dict) -> None:
    """Create the tickets (numbered 1, 2, ... in order) and outbound Message-IDs a case needs."""
    for spec in setup.get("tickets", []):
        client = clients[spec["client"]] if spec.get("client") else None
        contact = None
        if spec.get("contact"):
            contact = session.scalars(select(Contact).where(Contact.email == spec["contact"])).one()
        ticket = open_ticket(session, client=client, contact=contact, subject=spec.get("subject", "Earlier"),
                             channel="email",
                             first_message={"message_id": spec.get("message_id"),
                                            "sender_email": spec.get("sender", spec.get("contact")),
                                            "body_text": "earlier message"})
        ticket.status = spec.get("status", "open")
        for extra in spec.get("messages", []):
            session.add(TicketMessage(ticket_id=ticket.id, message_id=extra["message_id"],
                                      sender_email=extra.get("sender"), body_text="earlier"))
        for mid in spec.get("outbound", []):
            session.add(OutboundMessage(ticket_id=ticket.id, message_id=mid))
        session.flush()
