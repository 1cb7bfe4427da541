"""Alembic environment: migrations run on a connection the store hands in.

Run through :func:`remotecomm.store.engine.migrate`, never with a URL from
an ini file: the caller owns the connection and its transaction.
"""

from alembic import context

from remotecomm.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
