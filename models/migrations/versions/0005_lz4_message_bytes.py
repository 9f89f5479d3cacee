"""PostgreSQL: compress stored mail with lz4 instead of pglz

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 18:35:00

Every accepted message is written once (``inbound_messages.raw``) and its text again with its
ticket (``ticket_messages.body_text``); PostgreSQL compresses both (TOAST) with pglz by default.
lz4 compresses several times faster at a similar ratio for mail: storing a batch of the benchmark
corpus went from 1.3 to about 0.45 ms per message (see BENCHMARKS.md). Existing rows keep their
compression until rewritten; new rows use lz4. A server built without lz4 keeps pglz (the
migration notes it and goes on). SQLite does not compress: nothing to do there.
"""
import logging

from alembic import op
from sqlalchemy import text

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = (("inbound_messages", "raw"), ("ticket_messages", "body_text"))
log = logging.getLogger("alembic.runtime.migration")


def _set_compression(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        savepoint = bind.begin_nested()
        try:
            bind.execute(text(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}"))
            savepoint.commit()
        except Exception as exc:  # a server built without lz4: keep its default
            savepoint.rollback()
            log.warning("%s.%s keeps the default compression: %s", table, column, str(exc).splitlines()[0])


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("pglz")
