"""The outbox (acknowledgements, notices, webhooks), client templates, send_acknowledgements

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 00:50:00

SPEC §10: every outbound message is a row of ``outbox`` written in the transaction of the
decision that causes it; a client may override the texts (``client_templates``) and switch its
acknowledgements off (``clients.send_acknowledgements``, on by default).
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _utc():
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    # a plain ADD COLUMN (not batch mode: SQLite's table copy would drop uq_clients_name_lower)
    op.add_column("clients", sa.Column("send_acknowledgements", sa.Boolean(), nullable=False,
                                       server_default=sa.true()))
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("inbound_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("sent_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_outbox_ticket_id_tickets"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["inbound_id"], ["inbound_messages.id"],
                                name=op.f("fk_outbox_inbound_id_inbound_messages"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_outbox_client_id_clients"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_status_next_attempt", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_recipient_kind_created", "outbox", ["recipient", "kind", "created_at"])
    op.create_index(op.f("ix_outbox_ticket_id"), "outbox", ["ticket_id"])
    op.create_index(op.f("ix_outbox_inbound_id"), "outbox", ["inbound_id"])
    op.create_index(op.f("ix_outbox_message_id"), "outbox", ["message_id"])
    op.create_index(op.f("ix_outbox_target_id"), "outbox", ["target_id"])
    op.create_table(
        "client_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_client_templates_client_id_clients"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_templates")),
        sa.UniqueConstraint("client_id", "kind", name=op.f("uq_client_templates_client_id")),
    )


def downgrade() -> None:
    op.drop_table("client_templates")
    op.drop_table("outbox")
    op.drop_column("clients", "send_acknowledgements")
