"""HTTP routes of SLAs."""

from __future__ import annotations

from fastapi import APIRouter, status

from admin_api.deps import AdminRole, AnyRole, IdPath, PagingDep, SessionDep
from admin_api.routes.responses import CONFLICT, NOT_FOUND, responses
from admin_api.schemas import ListOf, SlaCreate, SlaOut, SlaUpdate
from admin_api.services import slas as service

router = APIRouter(prefix="/slas", tags=["slas"], responses=responses())


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SlaOut, responses=CONFLICT)
def create_sla(body: SlaCreate, session: SessionDep, _: AdminRole):
    sla = service.create_sla(session, **body.model_dump(mode="json"))
    session.commit()
    return sla


@router.get("", response_model=ListOf[SlaOut])
def list_slas(session: SessionDep, _: AnyRole, paging: PagingDep):
    page = service.list_slas(session, limit=paging.limit, offset=paging.offset)
    return {"items": page.items, "total": page.total}


@router.get("/{sla_id}", response_model=SlaOut, responses=NOT_FOUND)
def get_sla(sla_id: IdPath, session: SessionDep, _: AnyRole):
    return service.get_sla(session, sla_id=sla_id)


@router.patch("/{sla_id}", response_model=SlaOut, responses={**NOT_FOUND, **CONFLICT})
def update_sla(sla_id: IdPath, body: SlaUpdate, session: SessionDep, _: AdminRole):
    """Change an SLA; ``business_hours: null`` makes it 24x7. Existing tickets keep their snapshot."""
    sla = service.update_sla(session, sla_id=sla_id, changes=body.model_dump(mode="json", exclude_unset=True))
    session.commit()
    return sla


@router.delete("/{sla_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**NOT_FOUND, **CONFLICT})
def delete_sla(sla_id: IdPath, session: SessionDep, _: AdminRole) -> None:
    service.delete_sla(session, sla_id=sla_id)
    session.commit()
