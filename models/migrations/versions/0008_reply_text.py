"""ticket_messages.reply_text: the new part of a reply, without quoted history and signature

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 00:50:00

NULL means "the whole body_text" (mail that is not a reply, or where nothing was cut), so most
messages store their text once. Existing messages keep NULL. On PostgreSQL the column is
compressed with lz4 like body_text (migration 0005).
"""
import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    op.add_column("ticket_messages", sa.Column("reply_text", sa.Text(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        savepoint = bind.begin_nested()
        try:
            bind.execute(text("ALTER TABLE ticket_messages ALTER COLUMN reply_text SET COMPRESSION lz4"))
            savepoint.commit()
        except Exception as exc:  # a server built without lz4: keep its default
            savepoint.rollback()
            log.warning("ticket_messages.reply_text keeps the default compression: %s", str(exc).splitlines()[0])


def downgrade() -> None:
    op.drop_column("ticket_messages", "reply_text")
