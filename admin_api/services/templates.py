"""A client's texts for acknowledgements and notices: read (override or default) and replace.

A template is checked when it is saved (``routing.outbox.templates.check_template``: it must
compile in the sandbox and render sample values to a subject and a text), so a mistake is a 422
naming the part (``subject``, ``body_text``, ``body_html``), never a failed send later.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin_api.services.errors import Invalid, NotFound
from models import Client, ClientTemplate, utcnow
from routing.outbox.templates import TemplateInvalid, TemplateSet, check_template, default_template


@dataclass(frozen=True)
class TemplateView:
    """The template a client's mail of ``kind`` is written with."""

    kind: str
    client_id: int
    subject: str
    body_text: str
    body_html: str | None
    is_default: bool


def _client(session: Session, client_id: int) -> Client:
    client = session.get(Client, client_id)
    if client is None:
        raise NotFound("client", client_id)
    return client


def get_template(session: Session, *, client_id: int, kind: str) -> TemplateView:
    """The client's override of ``kind``, else the installation default; raises NotFound."""
    _client(session, client_id)
    row = session.scalar(select(ClientTemplate).where(ClientTemplate.client_id == client_id,
                                                      ClientTemplate.kind == kind))
    if row is not None:
        return TemplateView(kind, client_id, row.subject, row.body_text, row.body_html, False)
    default = default_template(kind)
    return TemplateView(kind, client_id, default.subject, default.text, default.html, True)


def put_template(session: Session, *, client_id: int, kind: str, subject: str, body_text: str,
                 body_html: str | None = None) -> TemplateView:
    """Replace the client's template of ``kind``; raises NotFound, Invalid (naming the part)."""
    _client(session, client_id)
    try:
        check_template(kind, TemplateSet(subject, body_text, body_html))
    except TemplateInvalid as exc:
        raise Invalid(("body", exc.field), exc.message) from None
    row = session.scalar(select(ClientTemplate).where(ClientTemplate.client_id == client_id,
                                                      ClientTemplate.kind == kind).with_for_update())
    if row is None:
        row = ClientTemplate(client_id=client_id, kind=kind)
        session.add(row)
    row.subject, row.body_text, row.body_html, row.updated_at = subject, body_text, body_html, utcnow()
    session.flush()
    return TemplateView(kind, client_id, subject, body_text, body_html, False)


def delete_template(session: Session, *, client_id: int, kind: str) -> None:
    """Drop the client's override of ``kind`` (the default applies again); raises NotFound."""
    _client(session, client_id)
    row = session.scalar(select(ClientTemplate).where(ClientTemplate.client_id == client_id,
                                                      ClientTemplate.kind == kind))
    if row is None:
        raise NotFound("template", kind, field="kind", message=f"client {client_id} has no own {kind} template")
    session.delete(row)
