"""Cloud mailboxes: kind (imap|graph), auth (password|oauth2), OAuth2 settings, Graph state

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 00:50:00

- ``mailboxes.kind`` / ``auth`` (defaults ``imap`` / ``password``: existing rows keep working);
- ``oauth2_*``: provider, tenant, client id, encrypted client secret, scope, grant, encrypted
  refresh token (replaced by the rotated one before its access token is used), authority and
  token URL overrides;
- ``graph_base_url`` and ``graph_delta_links`` (the deltaLink per folder, committed with the
  messages its delta query found); ``auth_error`` (the provider's error: health ``auth_failed``);
- ``graph_messages``: the Graph ids a mailbox stored (de-duplication) and whether each was
  marked read after its commit.
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (
    sa.Column("kind", sa.String(10), nullable=False, server_default="imap"),
    sa.Column("auth", sa.String(10), nullable=False, server_default="password"),
    sa.Column("oauth2_provider", sa.String(20), nullable=True),
    sa.Column("oauth2_tenant_id", sa.String(200), nullable=True),
    sa.Column("oauth2_client_id", sa.String(500), nullable=True),
    sa.Column("oauth2_client_secret_encrypted", sa.LargeBinary(), nullable=True),
    sa.Column("oauth2_scope", sa.String(1000), nullable=True),
    sa.Column("oauth2_grant", sa.String(30), nullable=True),
    sa.Column("oauth2_refresh_token_encrypted", sa.LargeBinary(), nullable=True),
    sa.Column("oauth2_authority_url", sa.String(500), nullable=True),
    sa.Column("oauth2_token_url", sa.String(1000), nullable=True),
    sa.Column("graph_base_url", sa.String(500), nullable=True),
    sa.Column("graph_delta_links", sa.JSON(), nullable=True),
    sa.Column("auth_error", sa.Text(), nullable=True),
)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("mailboxes", column.copy())
    op.create_table(
        "graph_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(500), nullable=False),
        sa.Column("graph_id", sa.String(500), nullable=False),
        sa.Column("inbound_id", sa.BigInteger(), nullable=True),
        sa.Column("acked", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailboxes.id"],
                                name=op.f("fk_graph_messages_mailbox_id_mailboxes"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_graph_messages")),
        sa.UniqueConstraint("mailbox_id", "graph_id", name="uq_graph_messages_graph_id"),
    )
    op.create_index(op.f("ix_graph_messages_mailbox_id"), "graph_messages", ["mailbox_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_graph_messages_mailbox_id"), table_name="graph_messages")
    op.drop_table("graph_messages")
    with op.batch_alter_table("mailboxes") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column.name)
