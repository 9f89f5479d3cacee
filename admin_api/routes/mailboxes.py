"""HTTP routes of mailboxes (IMAP and Graph); secrets are write-only and never returned."""

from __future__ import annotations

from fastapi import APIRouter, status

from admin_api.deps import AdminRole, AnyRole, IdPath, PagingDep, SessionDep, SettingsDep
from admin_api.routes.responses import CONFLICT, NOT_FOUND, responses
from admin_api.schemas import ListOf, MailboxCreate, MailboxOut, MailboxUpdate
from admin_api.services import mailboxes as service
from admin_api.services.errors import Invalid
from models import Mailbox
from models.secrets import SecretKeyMissing

router = APIRouter(prefix="/mailboxes", tags=["mailboxes"], responses=responses())


def mailbox_out(mailbox: Mailbox) -> MailboxOut:
    """The public view of a mailbox: health fields, whether a password is set, never the password."""
    return MailboxOut.model_validate(
        {
            **{k: getattr(mailbox, k) for k in MailboxOut.model_fields if hasattr(mailbox, k)},
            "has_password": mailbox.password_encrypted is not None,
            "oauth2": service.oauth2_view(mailbox),
            "user": mailbox.username if mailbox.kind == "graph" else None,
            "graph_base_url": (mailbox.graph_base_url or service.GRAPH_BASE_URL)
            if mailbox.kind == "graph" else None,
            "health": service.mailbox_health(mailbox),
        }
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MailboxOut, responses=CONFLICT)
def create_mailbox(body: MailboxCreate, session: SessionDep, settings: SettingsDep, _: AdminRole):
    values = body.model_dump(exclude={"password", "oauth2"})
    values["password"] = body.password.get_secret_value() if body.password else None
    values["oauth2"] = body.oauth2.plain() if body.oauth2 else None
    try:
        mailbox = service.create_mailbox(session, **values, secret_key=settings.secret_key)
    except SecretKeyMissing as exc:
        raise Invalid("password" if body.password else "oauth2", str(exc)) from None
    session.commit()
    return mailbox_out(mailbox)


@router.get("", response_model=ListOf[MailboxOut])
def list_mailboxes(session: SessionDep, _: AnyRole, paging: PagingDep):
    page = service.list_mailboxes(session, limit=paging.limit, offset=paging.offset)
    return {"items": [mailbox_out(m) for m in page.items], "total": page.total}


@router.get("/{mailbox_id}", response_model=MailboxOut, responses=NOT_FOUND)
def get_mailbox(mailbox_id: IdPath, session: SessionDep, _: AnyRole):
    return mailbox_out(service.get_mailbox(session, mailbox_id=mailbox_id))


@router.patch("/{mailbox_id}", response_model=MailboxOut, responses={**NOT_FOUND, **CONFLICT})
def update_mailbox(
    mailbox_id: IdPath, body: MailboxUpdate, session: SessionDep, settings: SettingsDep, _: AdminRole
):
    changes = body.model_dump(exclude_unset=True)
    if "password" in changes:
        changes["password"] = body.password.get_secret_value() if body.password else None
        if changes["password"] is None:
            raise Invalid("password", "the password cannot be null; leave it out to keep it")
    if "oauth2" in changes:
        changes["oauth2"] = body.oauth2.plain(exclude_unset=True) if body.oauth2 else None
    for key in ("name", "host", "username", "folder", "security", "enabled", "auth", "user"):
        if key in changes and changes[key] is None:
            raise Invalid(key, f"{key} cannot be null")
    try:
        mailbox = service.update_mailbox(
            session, mailbox_id=mailbox_id, changes=changes, secret_key=settings.secret_key
        )
    except SecretKeyMissing as exc:
        raise Invalid("password", str(exc)) from None
    session.commit()
    return mailbox_out(mailbox)


@router.delete("/{mailbox_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_mailbox(mailbox_id: IdPath, session: SessionDep, _: AdminRole) -> None:
    """Remove a mailbox; mail already taken in stays in the inbound log."""
    service.delete_mailbox(session, mailbox_id=mailbox_id)
    session.commit()
