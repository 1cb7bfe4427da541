"""The store: tables, migrations, and transaction functions run off the reactor thread.

``schema`` is the current shape of the tables; ``migrations/`` is how a
database gets there; :class:`~remotecomm.store.engine.Store` runs
transaction functions (plain functions of a connection) in a dedicated
thread pool.  Query functions live beside the domain they serve
(``accounts``, ``devices``, ``audit``).
"""
