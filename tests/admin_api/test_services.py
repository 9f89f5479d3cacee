"""Service functions where HTTP cannot show the point: concurrency, the api command's refusal."""

from __future__ import annotations

import threading

from sqlalchemy import select

from admin_api.services import clients as client_service
from admin_api.services import contacts as contact_service
from admin_api.services import mailboxes as mailbox_service
from models import Contact, Mailbox
from models.db import session_scope
from models.secrets import decrypt_secret


def test_concurrent_primary_switches_leave_exactly_one_primary(pg_engine):
    with session_scope(pg_engine) as session:
        client = client_service.create_client(session, name="Acme", domains=["acme.com"])
        ids = [
            contact_service.create_contact(
                session, client_id=client.id, first_name="P", last_name=str(i), email=f"p{i}@acme.com"
            ).id
            for i in range(6)
        ]
    barrier = threading.Barrier(len(ids))
    errors: list[BaseException] = []

    def promote(contact_id: int) -> None:
        try:
            barrier.wait()
            with session_scope(pg_engine) as session:
                contact_service.update_contact(session, contact_id=contact_id, changes={"is_primary": True})
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with session_scope(pg_engine) as session:
        primaries = session.scalars(select(Contact.id).where(Contact.is_primary.is_(True))).all()
    assert len(primaries) == 1 and primaries[0] in ids


def test_a_new_mailbox_starts_with_mail_arriving_after_it_is_added(pg_engine):
    with session_scope(pg_engine) as session:
        mailbox = mailbox_service.create_mailbox(
            session, name="support", host="imap.example.com", username="u", password="pw", secret_key="k"
        )
        created_at = mailbox.created_at
    with session_scope(pg_engine) as session:
        stored = session.scalar(select(Mailbox))
        assert stored.since is not None and abs((stored.since - created_at).total_seconds()) < 60
        assert (stored.uidvalidity, stored.last_uid) == (None, None)
        assert decrypt_secret(stored.password_encrypted, key="k") == "pw"
        moved = mailbox_service.update_mailbox(
            session, mailbox_id=stored.id, changes={"folder": "Support"}, secret_key="k"
        )
        assert moved.folder == "Support"


def test_the_api_command_refuses_a_database_without_schema(tmp_path, monkeypatch, capsys):
    from models.db import dispose_engines
    from ticketpost.cli import main
    from core.settings import reset_settings

    monkeypatch.setenv("TICKETPOST_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    reset_settings()
    try:
        assert main(["api", "--port", "1"]) == 2
    finally:
        dispose_engines()
    assert "ticketpost migrate" in capsys.readouterr().err
