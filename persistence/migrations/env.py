"""Alembic environment: the URL comes from the caller (gembus db upgrade, tests), never a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from persistence.tables import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "persistence.migrate sets sqlalchemy.url"

connectable = config.attributes.get("connection")
if connectable is None:
    engine = create_engine(url)
    with engine.begin() as connection:
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
else:
    context.configure(connection=connectable, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
