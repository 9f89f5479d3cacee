"""HTTP routes of a client's templates for acknowledgements and notices."""

from __future__ import annotations

from fastapi import APIRouter, status

from admin_api.deps import AdminRole, AnyRole, IdPath, SessionDep
from admin_api.routes.responses import NOT_FOUND, responses
from admin_api.schemas import TemplateIn, TemplateKind, TemplateOut
from admin_api.services import templates as service

router = APIRouter(prefix="/clients", tags=["templates"], responses=responses())


@router.get("/{client_id}/templates/{kind}", response_model=TemplateOut, responses=NOT_FOUND)
def get_template(client_id: IdPath, kind: TemplateKind, session: SessionDep, _: AnyRole):
    """The client's template of ``kind``, or the installation default (``is_default``)."""
    return service.get_template(session, client_id=client_id, kind=kind)


@router.put("/{client_id}/templates/{kind}", response_model=TemplateOut, responses=NOT_FOUND)
def put_template(client_id: IdPath, kind: TemplateKind, body: TemplateIn, session: SessionDep, _: AdminRole):
    """Replace the client's template (sandboxed Jinja2; checked now: a mistake is a 422 naming the part)."""
    view = service.put_template(session, client_id=client_id, kind=kind, subject=body.subject,
                                body_text=body.body_text, body_html=body.body_html)
    session.commit()
    return view


@router.delete("/{client_id}/templates/{kind}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_template(client_id: IdPath, kind: TemplateKind, session: SessionDep, _: AdminRole):
    """Drop the client's own template: the installation default applies again."""
    service.delete_template(session, client_id=client_id, kind=kind)
    session.commit()
