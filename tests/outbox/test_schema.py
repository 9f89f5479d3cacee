"""The migrations build exactly the outbox tables the models describe (both databases)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from models import Base


def test_the_migrated_schema_matches_the_outbox_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if any(name in repr(d) for name in ("outbox", "client_templates", "send_acknowledgements"))]
    assert ours == []
