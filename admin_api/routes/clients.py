"""HTTP routes of clients; the JSON carries ``domains`` and ``primary_contact_id``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from admin_api.deps import AdminRole, AnyRole, IdPath, PagingDep, SessionDep
from admin_api.routes.responses import CONFLICT, NOT_FOUND, responses
from admin_api.schemas import NO_NUL, ClientCreate, ClientOut, ClientUpdate, ListOf
from admin_api.services import clients as service

router = APIRouter(prefix="/clients", tags=["clients"], responses=responses())


def client_out(view: service.ClientView) -> ClientOut:
    """The JSON of one client."""
    client = view.client
    data = {k: getattr(client, k) for k in ClientOut.model_fields if k not in ("domains", "primary_contact_id")}
    return ClientOut(
        **data,
        domains=view.domains,
        primary_contact_id=view.primary_contact_id,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ClientOut, responses=CONFLICT)
def create_client(body: ClientCreate, session: SessionDep, _: AdminRole):
    """Create a client with its domains (normalised; public providers need allow_public_domain)."""
    client = service.create_client(session, **body.model_dump())
    session.commit()
    return client_out(service.view(session, client))


@router.get("", response_model=ListOf[ClientOut])
def list_clients(
    session: SessionDep,
    _: AnyRole,
    paging: PagingDep,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL, description="part of the name or business id")] = None,
    domain: Annotated[str | None, Query(max_length=300, pattern=NO_NUL, description="a registered domain, exactly")] = None,
):
    page = service.list_clients(session, q=q, domain=domain, limit=paging.limit, offset=paging.offset)
    return {"items": [client_out(v) for v in page.items], "total": page.total}


@router.get("/{client_id}", response_model=ClientOut, responses=NOT_FOUND)
def get_client(client_id: IdPath, session: SessionDep, _: AnyRole):
    return client_out(service.get_client_view(session, client_id=client_id))


@router.patch("/{client_id}", response_model=ClientOut, responses={**NOT_FOUND, **CONFLICT})
def update_client(client_id: IdPath, body: ClientUpdate, session: SessionDep, _: AdminRole):
    """Change a client; ``domains`` when given replaces its domain list."""
    changes = body.model_dump(exclude_unset=True)
    allow_public = changes.pop("allow_public_domain", False)
    client = service.update_client(session, client_id=client_id, changes=changes, allow_public_domain=allow_public)
    session.commit()
    return client_out(service.view(session, client))


@router.delete("/{client_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**NOT_FOUND, **CONFLICT})
def delete_client(
    client_id: IdPath,
    session: SessionDep,
    _: AdminRole,
    force: Annotated[bool, Query(description="also when it has tickets (they stay, in triage)")] = False,
) -> None:
    """Delete a client with its domains, contacts and contracts."""
    service.delete_client(session, client_id=client_id, force=force)
    session.commit()
