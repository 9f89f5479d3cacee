"""Storm-guard index: a sender's new tickets by time, partial and covering

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 18:20:00

Routing counts, for every message, the tickets its sender opened in the hour before
(``routing.sender_record.RECENT_NEW_TICKETS``). The old index (sender_email, received_at) held
every message, and the count read each row to check its outcome. The new one holds only messages
that opened a ticket and (PostgreSQL) carries the id, so the count is answered from the index.
"""
from alembic import op
from sqlalchemy import text

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PREDICATE = "outcome IN ('ticket_created', 'triaged')"  # models.inbound.NEW_TICKET_PREDICATE, frozen here


def upgrade() -> None:
    op.create_index(
        "ix_inbound_new_tickets_by_sender",
        "inbound_messages",
        ["sender_email", "received_at"],
        unique=False,
        postgresql_include=["id"],
        postgresql_where=text(PREDICATE),
        sqlite_where=text(PREDICATE),
    )
    op.drop_index("ix_inbound_sender_outcome", table_name="inbound_messages")


def downgrade() -> None:
    op.create_index("ix_inbound_sender_outcome", "inbound_messages", ["sender_email", "received_at"], unique=False)
    op.drop_index("ix_inbound_new_tickets_by_sender", table_name="inbound_messages")
