"""Session logs (S176–S179, S209–S212, S267–S270, S295–S298): written first, pushed until filed.

The relay writes each log -- "device side started", "terminal side ended"
and so on -- to its own store together with the connection record, then
pushes it to the manager with an idempotency key (``session:side:kind``),
each side's logs in order and up to :data:`FILE_AT_ONCE` of different sides
at once, and resends it until the manager acknowledges (with a backoff that
:meth:`LogOutbox.retry_now` cuts short once the manager answers heartbeats
again).  A log the manager rejects for good (``LogRejected``: it names no
session the manager knows) moves to the ``dead_letters`` table with the
reason and never blocks the logs after it.  The manager files each key once,
so duplicates are harmless.  At start the relay writes "relay-restart" end
logs for every connection its store still shows open.

Writes are group-committed: logs that arrive while a write is under way go
into the next transaction together, so a burst of thousands of session ends
costs a few dozen commits.  A log is never dropped because the store is
busy: its write is retried (backoff up to 2 s) until it is committed, and
only then is the side told anything or the log pushed.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Connection, bindparam, func, insert, select, update
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from remotecomm.clock import now_us
from remotecomm.relay.core import ISessionLogs
from remotecomm.relay.gateway import Admission, IManagerForRelay, LogRejected, SessionLog, log_key
from remotecomm.relay.schema import dead_letters, log_outbox, relay_connections
from remotecomm.store.engine import Store, migrate, open_sqlite

log = Logger()

RELAY_MIGRATIONS = Path(__file__).parent / "migrations"
BATCH = 100
FILE_AT_ONCE = 32        # logs sent to the manager together (each of a different side)
RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30)
MAX_GROUP = 500          # logs in one group commit
WRITE_RETRY_CAP = 2.0    # seconds between attempts to write to a busy store


def open_relay_store(path: Path, reactor) -> Store:
    """The relay's store at ``path``, migrated to the newest schema."""
    engine = open_sqlite(path)
    migrate(engine, location=RELAY_MIGRATIONS)
    return Store(engine, reactor)


# Built once: every admitted side writes these (building a statement cost about twice
# running it).
_LOG_EXISTS = select(log_outbox.c.seq).where(log_outbox.c.log_key == bindparam("_key"))
_INSERT_LOG = insert(log_outbox)
_INSERT_CONNECTION = insert(relay_connections)
_CLOSE_CONNECTION = update(relay_connections).where(
    relay_connections.c.session_id == bindparam("_session_id"),
    relay_connections.c.side == bindparam("_side"),
    relay_connections.c.ended_us.is_(None))


def _enqueue(connection: Connection, entry: SessionLog) -> None:
    if connection.execute(_LOG_EXISTS, {"_key": entry.key}).first() is None:
        connection.execute(_INSERT_LOG, dict(
            log_key=entry.key, body=json.dumps(entry.to_json(), sort_keys=True),
            created_us=entry.at_us, attempts=0, acked_us=None))


def record_started(connection: Connection, entry: SessionLog) -> None:
    """The connection record and its started log, in one transaction."""
    connection.execute(_INSERT_CONNECTION, dict(
        session_id=entry.session_id, side=entry.side, request_id=entry.request_id,
        party_id=entry.party_id, started_us=entry.at_us, ended_us=None,
        ended_normally=None, end_reason=None, bytes_from_side=0, bytes_to_side=0))
    _enqueue(connection, entry)


def record_ended(connection: Connection, entry: SessionLog) -> None:
    """Close the connection record and queue its end log, in one transaction."""
    connection.execute(_CLOSE_CONNECTION, dict(
        _session_id=entry.session_id, _side=entry.side, ended_us=entry.at_us,
        ended_normally=entry.normal, end_reason=entry.reason,
        bytes_from_side=entry.bytes_from_side, bytes_to_side=entry.bytes_to_side))
    _enqueue(connection, entry)


def open_connections(connection: Connection) -> list[dict]:
    """Connections the store still shows open."""
    return [dict(row._mapping) for row in connection.execute(
        select(relay_connections).where(relay_connections.c.ended_us.is_(None)))]


def pending_logs(connection: Connection, limit: int = BATCH) -> list[SessionLog]:
    """Logs not yet acknowledged, oldest first."""
    rows = connection.execute(select(log_outbox.c.body).where(log_outbox.c.acked_us.is_(None))
                              .order_by(log_outbox.c.seq).limit(limit))
    return [SessionLog(**json.loads(row.body)) for row in rows]  # written by us, trusted


def record_many(connection: Connection, entries: list[SessionLog]) -> None:
    """Several started/ended records in one transaction (group commit)."""
    for entry in entries:
        (record_started if entry.kind == "started" else record_ended)(connection, entry)


def mark_acked(connection: Connection, keys: list[str], at_us: int) -> None:
    """The manager filed these logs."""
    connection.execute(update(log_outbox).where(log_outbox.c.log_key.in_(keys))
                       .values(acked_us=at_us))


def bury(connection: Connection, key: str, reason: str, at_us: int) -> None:
    """Move a log the manager rejected for good from the outbox to the dead letters."""
    row = connection.execute(select(log_outbox).where(log_outbox.c.log_key == key)).first()
    if row is None:
        return
    connection.execute(insert(dead_letters).values(log_key=key, body=row.body, reason=reason,
                                                   attempts=row.attempts + 1, dead_us=at_us))
    connection.execute(log_outbox.delete().where(log_outbox.c.log_key == key))


def dead_letter_count(connection: Connection) -> int:
    """How many logs lie in the dead letters."""
    return connection.execute(select(func.count()).select_from(dead_letters)).scalar()


def count_attempt(connection: Connection, key: str) -> None:
    """One more failed push of this log."""
    connection.execute(update(log_outbox).where(log_outbox.c.log_key == key)
                       .values(attempts=log_outbox.c.attempts + 1))


@implementer(ISessionLogs)
def _one_per_side(logs: list[SessionLog]) -> list[SessionLog]:
    """The oldest pending log of each session side, in outbox order."""
    seen: set[tuple[str, str]] = set()
    first = []
    for entry in logs:
        side = (entry.session_id, entry.side)
        if side not in seen:
            seen.add(side)
            first.append(entry)
    return first


class LogOutbox:
    """Durable logs for the manager: written, then pushed in order until acknowledged."""

    def __init__(self, store: Store, gateway: IManagerForRelay, clock: IReactorTime, node: str):
        self._store = store
        self._gateway = gateway
        self._clock = clock
        self._node = node
        self._sending: Deferred | None = None
        self._again = False
        self._retry_pause: Deferred | None = None
        self._to_write: list[tuple[SessionLog, Deferred]] = []
        self._writing = False
        self.filed = 0
        self.pending = 0
        self.dead = 0
        self.written = {"started": 0, "ended": 0}

    def started(self, admission: Admission, at_us: int) -> Deferred:
        """Write a started log (with its connection record), then push it; fires once the
        log is committed."""
        return self._write(self._log("started", admission.session_id, admission.side,
                                     admission.request_id, admission.party_id, at_us))

    def ended(self, admission: Admission, at_us: int, normal: bool, reason: str,
              bytes_from_side: int, bytes_to_side: int, refused_frames: int = 0,
              detail: str | None = None) -> Deferred:
        """Write an end log (closing the connection record), then push it; fires once the
        log is committed."""
        return self._write(self._log("ended", admission.session_id, admission.side,
                                     admission.request_id, admission.party_id, at_us,
                                     normal=normal, reason=reason,
                                     bytes_from_side=bytes_from_side,
                                     bytes_to_side=bytes_to_side,
                                     refused_frames=refused_frames, detail=detail))

    def _log(self, kind: str, session_id: str, side: str, request_id: str, party_id: str,
             at_us: int, **ended) -> SessionLog:
        return SessionLog(key=log_key(session_id, side, kind), kind=kind,
                          session_id=session_id, request_id=request_id, side=side,
                          party_id=party_id, at_us=at_us, relay_node=self._node, **ended)

    def _write(self, entry: SessionLog) -> Deferred:
        committed: Deferred = Deferred()
        self._to_write.append((entry, committed))
        if not self._writing:
            self._writing = True
            ensureDeferred(self._write_groups()).addErrback(
                lambda f: log.failure("writing session logs failed", f))
        return committed

    async def _write_groups(self) -> None:
        try:
            while self._to_write:
                group = self._to_write[:MAX_GROUP]
                del self._to_write[:MAX_GROUP]
                await self._commit([entry for entry, _ in group])
                for entry, _ in group:
                    self.written[entry.kind] += 1
                    self.pending += 1
                self.kick()
                for _, committed in group:
                    committed.callback(None)
        finally:
            self._writing = False

    async def _commit(self, entries: list[SessionLog]) -> None:
        """Commit ``entries``, retrying while the store is busy or failing."""
        delay = 0.05
        while True:
            try:
                await self._store.run(record_many, entries)
                return
            except Exception as e:
                log.warn("could not write {count} session logs yet ({error}); retrying in "
                         "{delay:g} s", count=len(entries), error=repr(e), delay=delay)
                await deferLater(self._clock, delay, lambda: None)
                delay = min(delay * 2, WRITE_RETRY_CAP)

    async def close_left_open(self, reason: str = "relay-restart") -> int:
        """End logs for every connection the store shows open (at start); how many.  Also
        counts the dead letters an earlier run left."""
        self.dead = await self._store.run(dead_letter_count)
        rows = await self._store.run(open_connections)
        at = now_us(self._clock)
        for row in rows:
            await self._write(self._log(
                "ended", row["session_id"], row["side"], row["request_id"], row["party_id"], at,
                normal=False, reason=reason, bytes_from_side=row["bytes_from_side"],
                bytes_to_side=row["bytes_to_side"], refused_frames=0,
                detail="the relay restarted while this side was connected"))
        if rows:
            log.info("closed {count} connections left open by an earlier run: {reason}",
                     count=len(rows), reason=reason)
        self.kick()
        return len(rows)

    def kick(self) -> None:
        """Make sure a push is under way (or runs again right after the current one)."""
        if self._sending is not None:
            self._again = True
            return
        self._sending = ensureDeferred(self._push_all())
        self._sending.addErrback(lambda f: log.failure("pushing logs failed", f))

        def done(_):
            self._sending = None
            if self._again:
                self._again = False
                self.kick()

        self._sending.addBoth(done)

    async def _push_all(self) -> None:
        attempt = 0
        while True:
            logs = await self._store.run(pending_logs)
            self.pending = len(logs)
            if not logs:
                return
            batch = _one_per_side(logs)[:FILE_AT_ONCE]
            # Sent together, so that the manager files them in one commit; a side's logs
            # stay in order (only its oldest pending one is in a batch).
            outcomes = await DeferredList(
                [ensureDeferred(self._gateway.file_log(entry)) for entry in batch],
                consumeErrors=True)
            filed: list[str] = []
            failure = None
            for entry, (ok, result) in zip(batch, outcomes):
                if ok:
                    filed.append(entry.key)
                elif result.check(LogRejected):
                    # The manager will never file it: keep it aside, go on with the rest.
                    await self._store.run(bury, entry.key, result.value.reason,
                                          now_us(self._clock))
                    self.dead += 1
                    self.pending = max(0, self.pending - 1)
                    log.error("log {key} rejected by the manager ({reason}); kept in the dead "
                              "letters", key=entry.key, reason=result.value.reason,
                              request_id=entry.request_id)
                else:
                    await self._store.run(count_attempt, entry.key)
                    failure = failure or (entry, result)
            await self._acked(filed)
            if failure is not None:
                entry, result = failure
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                attempt += 1
                log.warn("log {key} not filed ({error}); retrying in {delay} s",
                         key=entry.key, error=repr(result.value), delay=delay,
                         request_id=entry.request_id)
                await self._pause(delay)
            else:
                attempt = 0

    def _pause(self, delay: float) -> Deferred:
        """Wait ``delay`` seconds before the next attempt, or less if :meth:`retry_now`."""
        pause = self._retry_pause = Deferred()
        timer = self._clock.callLater(delay, self.retry_now)

        def over(result):
            if timer.active():
                timer.cancel()
            self._retry_pause = None
            return result

        return pause.addBoth(over)

    def retry_now(self) -> None:
        """The manager answers again (a heartbeat got through): push what is pending now
        instead of at the end of the backoff."""
        if self._retry_pause is not None and not self._retry_pause.called:
            self._retry_pause.callback(None)

    async def _acked(self, keys: list[str]) -> None:
        """Mark filed logs acknowledged, in one transaction (a crash before it only means
        they are pushed again, and the manager files each key once)."""
        if keys:
            await self._store.run(mark_acked, keys, now_us(self._clock))
            self.filed += len(keys)
            self.pending = max(0, self.pending - len(keys))

    async def flush(self, timeout: float) -> bool:
        """Push what is pending; whether everything was filed within ``timeout`` seconds."""
        deadline = self._clock.seconds() + timeout
        self.kick()
        while self._clock.seconds() < deadline:
            if not self._writing and not self._to_write and self._sending is None and \
                    not await self._store.run(pending_logs, 1):
                return True
            await deferLater(self._clock, 0.05, lambda: None)
        return False
