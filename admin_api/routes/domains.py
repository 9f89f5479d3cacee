"""HTTP routes of client domains, and where a sender domain routes to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from admin_api.deps import AdminRole, AnyRole, IdPath, SessionDep
from admin_api.routes.responses import CONFLICT, NOT_FOUND, responses
from admin_api.schemas import NO_NUL, DomainCreate, DomainOut, DomainRoute
from admin_api.services import domains as service

router = APIRouter(tags=["domains"], responses=responses())

DomainPath = Annotated[str, Path(min_length=1, max_length=300, pattern=NO_NUL)]


@router.post(
    "/clients/{client_id}/domains",
    status_code=status.HTTP_201_CREATED,
    response_model=DomainOut,
    responses={**NOT_FOUND, **CONFLICT, 200: {"model": DomainOut, "description": "the client already had it"}},
)
def add_domain(client_id: IdPath, body: DomainCreate, session: SessionDep, response: Response, _: AdminRole):
    """Register a domain for the client: 409 when another client owns it, 422 for public providers."""
    row, created = service.add_domain(
        session, client_id=client_id, domain=body.domain, allow_public_domain=body.allow_public_domain
    )
    session.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return row


@router.delete(
    "/clients/{client_id}/domains/{domain}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND
)
def remove_domain(client_id: IdPath, domain: DomainPath, session: SessionDep, _: AdminRole) -> None:
    service.remove_domain(session, client_id=client_id, domain=domain)
    session.commit()


@router.get("/domains/{domain}", response_model=DomainRoute, responses=NOT_FOUND)
def route_domain(domain: DomainPath, session: SessionDep, _: AnyRole):
    """Which client mail from this sender domain routes to, and by which registered domain."""
    route = service.route_domain(session, domain=domain)
    return DomainRoute(
        domain=route.domain,
        client_id=route.client_id,
        client_name=route.client_name,
        matched_domain=route.matched_domain,
        exact=route.exact,
    )
