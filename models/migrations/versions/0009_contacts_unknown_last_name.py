"""contacts.last_name: routing's empty last names become "(unknown)"

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 01:35:00

Routing created contacts known by one name only (``info@acme.example`` → "Info") with an empty
last name, which the contacts API and import refuse, so a contacts export did not import back.
Routing now writes routing.steps.contact.UNKNOWN_LAST_NAME; existing rows get it too.
"""
from alembic import op
from sqlalchemy import text

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.get_bind().execute(text("UPDATE contacts SET last_name = '(unknown)' WHERE trim(last_name) = ''"))


def downgrade() -> None:
    pass  # the empty names were never valid; nothing to restore
