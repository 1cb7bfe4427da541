"""The relay's own store: its connections and the logs it owes the manager.

Kept apart from the manager's database even when both run in one process
(DECISIONS.md): the relay writes every log here before sending it.
"""

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

# One row per side of a session this relay admitted.
relay_connections = Table(
    "relay_connections", metadata,
    Column("session_id", String(64), primary_key=True),
    Column("side", String(16), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("party_id", String(128), nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("ended_us", BigInteger, nullable=True),
    Column("ended_normally", Boolean, nullable=True),
    Column("end_reason", String(32), nullable=True),
    Column("bytes_from_side", BigInteger, nullable=False),
    Column("bytes_to_side", BigInteger, nullable=False),
)
Index("ix_relay_connections_open", relay_connections.c.ended_us)

# Logs to push to the manager, in order; acked_us is set when the manager filed one.
log_outbox = Table(
    "log_outbox", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("log_key", String(160), nullable=False, unique=True),
    Column("body", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("acked_us", BigInteger, nullable=True),
)
Index("ix_log_outbox_pending", log_outbox.c.acked_us)

# Logs the manager rejected for good (it names no session it knows): moved here from the
# outbox with the manager's reason, so that later logs go on.
dead_letters = Table(
    "dead_letters", metadata,
    Column("log_key", String(160), primary_key=True),
    Column("body", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("dead_us", BigInteger, nullable=False),
)
