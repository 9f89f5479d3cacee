"""The inbound log: every stored message with its outcome, reason and explanation; replay.

Replay follows routing.replay (one definition for the API and ``ticketpost replay``): a failed
or never-routed message is handed to routing again; a routed message keeps its outcome, so
replaying it is a Conflict saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, defer

from admin_api.services.errors import Conflict, NotFound
from admin_api.services.pages import Page, paginate
from models import InboundMessage


@dataclass(frozen=True)
class Replayed:
    """The result of replaying one message: whether the queue took it now (else the sweeper will)."""

    inbound_id: int
    enqueued: bool


def list_inbound(
    session: Session,
    *,
    status: str | None = None,
    outcome: str | None = None,
    client_id: int | None = None,
    message_id: str | None = None,
    source: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[InboundMessage]:
    """Inbound messages, newest first, without their raw bytes."""
    query = select(InboundMessage).options(defer(InboundMessage.raw)).order_by(InboundMessage.id.desc())
    if status is not None:
        query = query.where(InboundMessage.status == status)
    if outcome is not None:
        query = query.where(InboundMessage.outcome == outcome)
    if client_id is not None:
        query = query.where(InboundMessage.client_id == client_id)
    if message_id is not None:
        mid = message_id.strip()
        forms = {mid, mid.strip("<>"), f"<{mid.strip('<>')}>"}
        query = query.where(InboundMessage.message_id.in_(sorted(forms)))
    if source is not None:
        query = query.where(InboundMessage.source == source)
    return paginate(session, query, limit=limit, offset=offset)


def get_inbound(session: Session, *, inbound_id: int, with_raw: bool = False) -> InboundMessage:
    """The inbound message with this id; raises NotFound."""
    query = select(InboundMessage).where(InboundMessage.id == inbound_id)
    if not with_raw:
        query = query.options(defer(InboundMessage.raw))
    message = session.scalar(query)
    if message is None:
        raise NotFound("inbound message", inbound_id)
    return message


def raw_message(session: Session, *, inbound_id: int) -> bytes:
    """The raw bytes exactly as received."""
    return bytes(get_inbound(session, inbound_id=inbound_id, with_raw=True).raw)


def replay_message(session: Session, *, inbound_id: int, engine: Engine) -> Replayed:
    """Hand a failed or unrouted message to routing again; Conflict when it is already routed."""
    from routing.replay import replay_report

    message = get_inbound(session, inbound_id=inbound_id)
    if message.status == "routed":
        raise Conflict(
            f"inbound message {inbound_id} is already routed (outcome {message.outcome}); "
            "replay applies to failed or not yet routed messages"
        )
    session.rollback()  # the replay works in its own transaction; hold no locks meanwhile
    report = replay_report(inbound_ids=[inbound_id], engine=engine)
    if inbound_id in report.missing:
        raise NotFound("inbound message", inbound_id)
    if inbound_id in report.skipped_routed:
        raise Conflict(f"inbound message {inbound_id} was routed meanwhile; its outcome stands")
    if inbound_id in report.skipped_not_downloaded:
        raise Conflict(
            f"inbound message {inbound_id} was never downloaded ({message.reason}); "
            "there is nothing to replay"
        )
    return Replayed(inbound_id=inbound_id, enqueued=inbound_id not in report.not_enqueued)
