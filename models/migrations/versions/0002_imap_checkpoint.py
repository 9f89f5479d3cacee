"""IMAP checkpoint: 32-bit unsigned UIDs, the acknowledged UID and the re-read boundary

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 15:05:00

- ``uidvalidity`` and ``last_uid`` become BIGINT: IMAP UIDs and UIDVALIDITY are unsigned 32-bit
  numbers, over PostgreSQL's INTEGER range on some servers (SQLite's INTEGER is 64-bit already).
- ``acked_uid``: the highest UID whose ``\\Seen``/move was done after commit; a crash between
  commit and flag leaves ``acked_uid < last_uid`` and the next poller finishes the job.
- ``resync_until_uid``: UIDs up to this one were already in the folder when the poller first saw
  it (new mailbox or new UIDVALIDITY); they are filtered by ``since`` and de-duplicated against
  what this mailbox already took in.
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("acked_uid", sa.BigInteger(), nullable=True))
    op.add_column("mailboxes", sa.Column("resync_until_uid", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name != "sqlite":
        for column in ("uidvalidity", "last_uid"):
            op.alter_column(
                "mailboxes", column, type_=sa.BigInteger(), existing_type=sa.Integer(),
                existing_nullable=True,
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for column in ("uidvalidity", "last_uid"):
            op.alter_column(
                "mailboxes", column, type_=sa.Integer(), existing_type=sa.BigInteger(),
                existing_nullable=True,
            )
    op.drop_column("mailboxes", "resync_until_uid")
    op.drop_column("mailboxes", "acked_uid")
