"""HTTP routes of the inbound log: outcome, reason and explanation; raw download; replay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel

from admin_api.deps import AdminRole, AnyRole, IdPath, PagingDep, SessionDep
from admin_api.routes.responses import CONFLICT, NOT_FOUND, responses
from admin_api.schemas import NO_NUL, InboundDetail, InboundOut, InboundStatus, ListOf, Outcome
from admin_api.services import inbound as service

router = APIRouter(prefix="/inbound", tags=["inbound"], responses=responses())


class ReplayOut(BaseModel):
    """A replay was accepted: the message is ``received`` again and routing will decide anew."""

    inbound: InboundDetail
    enqueued: bool
    detail: str


@router.get("", response_model=ListOf[InboundOut])
def list_inbound(
    session: SessionDep,
    _: AnyRole,
    paging: PagingDep,
    status: InboundStatus | None = None,
    outcome: Outcome | None = None,
    client_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    message_id: Annotated[str | None, Query(max_length=998, pattern=NO_NUL)] = None,
    source: Annotated[str | None, Query(max_length=200, pattern=NO_NUL, description="smtp, imap:<mailbox>, cli")] = None,
):
    page = service.list_inbound(
        session, status=status, outcome=outcome, client_id=client_id, message_id=message_id,
        source=source, limit=paging.limit, offset=paging.offset,
    )
    return {"items": page.items, "total": page.total}


@router.get("/{inbound_id}", response_model=InboundDetail, responses=NOT_FOUND)
def get_inbound(inbound_id: IdPath, session: SessionDep, _: AnyRole):
    """One message with its outcome, reason and each routing step's decision (explanation)."""
    return service.get_inbound(session, inbound_id=inbound_id)


@router.get(
    "/{inbound_id}/raw",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"message/rfc822": {}}, "description": "the message as received"}},
)
def get_raw(inbound_id: IdPath, session: SessionDep, _: AnyRole):
    """The raw message exactly as received (message/rfc822)."""
    raw = service.raw_message(session, inbound_id=inbound_id)
    return Response(
        content=raw,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="inbound-{inbound_id}.eml"'},
    )


@router.post(
    "/{inbound_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayOut,
    responses={**NOT_FOUND, **CONFLICT},
)
def replay(inbound_id: IdPath, request: Request, session: SessionDep, _: AdminRole):
    """Route a failed (or never routed) message again; a routed message keeps its outcome (409)."""
    result = service.replay_message(session, inbound_id=inbound_id, engine=request.app.state.engine)
    detail = (
        "handed to routing again"
        if result.enqueued
        else "queue unreachable: the sweeper hands it to routing when the queue is back"
    )
    session.expire_all()
    return ReplayOut(
        inbound=InboundDetail.model_validate(service.get_inbound(session, inbound_id=inbound_id)),
        enqueued=result.enqueued,
        detail=detail,
    )
