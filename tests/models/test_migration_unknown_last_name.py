"""Migration 0009: contacts routing created with an empty last name get "(unknown)" (issue 15, item 12)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from models.db import alembic_config, make_engine, migrate

NOW = "2026-12-05 00:00:00"


def test_existing_contacts_without_a_last_name_get_the_unknown_marker(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0008")
    engine = make_engine(url)
    with engine.begin() as db:
        db.execute(text(
            "INSERT INTO clients (id, name, tickets_only_by_primary_contact, require_authenticated_sender,"
            " created_at, updated_at) VALUES (1, 'Acme', false, false, :now, :now)"), {"now": NOW})
        db.execute(text(
            "INSERT INTO contacts (client_id, first_name, last_name, email, is_primary, ignore_email,"
            " auto_created, created_at, updated_at)"
            " VALUES (1, 'Info', '', 'info@acme.com', false, false, true, :now, :now),"
            "        (1, 'Bob', 'Builder', 'bob@acme.com', false, false, false, :now, :now)"), {"now": NOW})
    migrate(url)
    with engine.connect() as db:
        names = dict(db.execute(text("SELECT email, last_name FROM contacts")).all())
    engine.dispose()
    assert names == {"info@acme.com": "(unknown)", "bob@acme.com": "Builder"}
