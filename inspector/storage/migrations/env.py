"""Alembic environment: always run programmatically with a connection from `inspector.storage.db`.

There is no alembic.ini: the station upgrades itself at start (`open_database`), and
`pcb-inspector db upgrade` does the same by hand. Autogenerate compares against models.Base.
"""

from __future__ import annotations

from alembic import context

from inspector.storage.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through inspector.storage.db.upgrade(), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
