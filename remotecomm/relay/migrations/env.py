"""Alembic environment of the relay's own store (see remotecomm/store/migrations/env.py)."""

from alembic import context

from remotecomm.relay.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=True, compare_type=True, version_table="relay_alembic_version")
with context.begin_transaction():
    context.run_migrations()
