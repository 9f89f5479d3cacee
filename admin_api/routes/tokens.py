"""HTTP routes of API tokens: issue (the token is shown once), list without secrets, revoke."""

from __future__ import annotations

from fastapi import APIRouter, status

from admin_api.deps import AdminRole, AnyRole, IdPath, PagingDep, SessionDep
from admin_api.routes.responses import NOT_FOUND, responses
from admin_api.schemas import ListOf, TokenCreate, TokenCreated, TokenOut
from admin_api.services import tokens as service

router = APIRouter(prefix="/tokens", tags=["tokens"], responses=responses())


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenCreate, session: SessionDep, _: AdminRole):
    """Issue a token; the response carries it once, the database keeps only its SHA-256."""
    issued = service.create_token(session, name=body.name, role=body.role)
    session.commit()
    return TokenCreated(**TokenOut.model_validate(issued.token).model_dump(), token=issued.secret)


@router.get("", response_model=ListOf[TokenOut])
def list_tokens(session: SessionDep, _: AnyRole, paging: PagingDep):
    page = service.list_tokens(session, limit=paging.limit, offset=paging.offset)
    return {"items": page.items, "total": page.total}


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def revoke_token(token_id: IdPath, session: SessionDep, _: AdminRole) -> None:
    """Revoke a token: it stops working at once; it stays listed with revoked_at."""
    service.revoke_token(session, token_id=token_id)
    session.commit()
