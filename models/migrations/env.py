"""Alembic environment: runs our migrations online against the configured URL."""

from alembic import context
from sqlalchemy import pool

import models  # noqa: F401  (registers every table)
from models.base import Base
from models.db import make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
engine = make_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
