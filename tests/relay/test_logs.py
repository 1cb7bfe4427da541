"""Tests for remotecomm.relay.logs: write first, push until acknowledged, file once."""

from pathlib import Path

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay.logs import RELAY_MIGRATIONS, LogOutbox, open_connections, pending_logs
from remotecomm.store.engine import StoreBusy, migrate, open_sqlite
from remotecomm.testing.fakes import InlineStore


def started(side="device", session_id="s1"):
    return {"session_id": session_id, "side": side, "request_id": "r1", "party_id": "mfp-1",
            "at_us": 10}


def ended(side="device", session_id="s1", normal=True):
    return {"session_id": session_id, "side": side, "request_id": "r1", "party_id": "mfp-1",
            "at_us": 20, "normal": normal, "reason": "normal" if normal else "dropped-device",
            "bytes_from_side": 5, "bytes_to_side": 7}


class FlakyManager:
    """Files logs by key (once each), failing the next ``failures`` calls."""

    def __init__(self):
        self.filed = {}
        self.calls = []
        self.failures = 0

    def file_log(self, body):
        self.calls.append(body["key"])
        if self.failures:
            self.failures -= 1
            return fail(ConnectionError("manager down"))
        self.filed.setdefault(body["key"], body)
        return succeed(None)


class OutboxTests(SynchronousTestCase):
    """Logs reach the manager exactly once, whatever the manager does."""

    def setUp(self):
        self.clock = Clock()
        self.path = Path(self.mktemp()) / "relay.sqlite3"
        self.manager = FlakyManager()
        self.outbox = self.make_outbox()

    def make_outbox(self):
        engine = open_sqlite(self.path)
        self.addCleanup(engine.dispose)
        migrate(engine, location=RELAY_MIGRATIONS)
        self.store = InlineStore(engine, reactor=None)
        return LogOutbox(self.store, self.manager, self.clock, "relay-1")

    def test_log_is_written_then_filed(self):
        """A started log lands in the store, is pushed, and is marked acknowledged."""
        self.successResultOf(self.outbox.started(started()))
        self.assertEqual(list(self.manager.filed), ["s1:device:started"])
        self.assertEqual(self.manager.filed["s1:device:started"]["relay_node"], "relay-1")
        self.assertEqual(self.store.run_sync(pending_logs), [])
        self.assertEqual(len(self.store.run_sync(open_connections)), 1)

    def test_resent_until_acknowledged(self):
        """While the manager fails, the log stays pending and is resent with backoff."""
        self.manager.failures = 3
        self.successResultOf(self.outbox.started(started()))
        self.assertEqual(self.manager.filed, {})
        self.assertEqual(len(self.store.run_sync(pending_logs)), 1)
        for delay in (0.5, 1, 2):
            self.clock.advance(delay)
        self.assertEqual(list(self.manager.filed), ["s1:device:started"])
        self.assertEqual(self.manager.calls, ["s1:device:started"] * 4)
        self.assertEqual(self.store.run_sync(pending_logs), [])

    def test_order_is_kept(self):
        """Logs are filed in the order they were written."""
        self.manager.failures = 1
        self.successResultOf(self.outbox.started(started("device")))
        self.successResultOf(self.outbox.started(started("terminal")))
        self.successResultOf(self.outbox.ended(ended("terminal")))
        self.clock.advance(0.5)
        self.assertEqual(list(self.manager.filed), ["s1:device:started", "s1:terminal:started",
                                                    "s1:terminal:ended"])

    def test_ended_log_closes_the_connection_record(self):
        """The end log carries normality, reason and bytes, and closes the record."""
        self.successResultOf(self.outbox.started(started()))
        self.successResultOf(self.outbox.ended(ended(normal=False)))
        body = self.manager.filed["s1:device:ended"]
        self.assertEqual((body["normal"], body["reason"], body["bytes_to_side"]),
                         (False, "dropped-device", 7))
        self.assertEqual(self.store.run_sync(open_connections), [])

    def test_duplicate_writes_are_one_log(self):
        """Writing the same end log twice queues it once."""
        self.successResultOf(self.outbox.started(started()))
        self.successResultOf(self.outbox.ended(ended()))
        self.successResultOf(self.outbox.ended(ended()))
        self.assertEqual(self.manager.calls.count("s1:device:ended"), 1)

    def test_restart_resends_and_closes_what_was_open(self):
        """A new outbox over the same store resends pending logs and ends open connections."""
        self.manager.failures = 100
        self.successResultOf(self.outbox.started(started()))
        self.manager.failures = 0
        self.outbox = self.make_outbox()
        count = self.successResultOf(Deferred.fromCoroutine(self.outbox.close_left_open()))
        self.assertEqual(count, 1)
        self.assertEqual(list(self.manager.filed), ["s1:device:started", "s1:device:ended"])
        self.assertEqual(self.manager.filed["s1:device:ended"]["reason"], "relay-restart")
        self.assertFalse(self.manager.filed["s1:device:ended"]["normal"])


class BusyStore:
    """An InlineStore that answers StoreBusy for its next ``busy`` calls, or holds each call
    until released (``hold``), counting transactions."""

    def __init__(self, store):
        self._store = store
        self.busy = 0
        self.hold = False
        self.held: list[Deferred] = []
        self.transactions = 0
        self.commits = 0

    def run(self, fn, *args):
        if self.busy:
            self.busy -= 1
            return fail(StoreBusy("1000 transactions already waiting"))
        self.transactions += 1
        self.commits += fn.__name__ == "record_many"
        if self.hold:
            released = Deferred()
            released.addCallback(lambda _: self._store.run(fn, *args))
            self.held.append(released)
            return released
        return self._store.run(fn, *args)

    def run_sync(self, fn, *args):
        return self._store.run_sync(fn, *args)


class BusyStoreTests(SynchronousTestCase):
    """A busy store delays logs; it never loses them (found by the benchmark's teardown of
    2,000 sessions)."""

    def setUp(self):
        self.clock = Clock()
        engine = open_sqlite(Path(self.mktemp()) / "relay.sqlite3")
        self.addCleanup(engine.dispose)
        migrate(engine, location=RELAY_MIGRATIONS)
        self.store = BusyStore(InlineStore(engine, reactor=None))
        self.manager = FlakyManager()
        self.outbox = LogOutbox(self.store, self.manager, self.clock, "relay-1")

    def test_end_log_is_written_once_the_store_has_room(self):
        self.successResultOf(self.outbox.started(started()))
        self.store.busy = 3
        written = self.outbox.ended(ended())
        self.assertNoResult(written)
        self.clock.pump([0.05, 0.1, 0.2])
        self.successResultOf(written)
        self.assertIn("s1:device:ended", self.manager.filed)
        self.assertEqual(self.outbox.written, {"started": 1, "ended": 1})

    def test_logs_arriving_during_a_write_share_the_next_commit(self):
        self.store.hold = True
        first = self.outbox.started(started("device", "s0"))
        later = [self.outbox.started(started("device", f"s{i}")) for i in range(1, 50)]
        self.assertEqual(self.store.transactions, 1)
        self.store.hold = False
        self.store.held.pop(0).callback(None)
        self.successResultOf(first)
        for d in later:
            self.successResultOf(d)
        # One commit for the first log, one for the 49 that queued behind it.
        self.assertEqual(self.store.commits, 2)
        self.assertEqual(self.outbox.written["started"], 50)
        self.assertEqual(len(self.manager.filed), 50)
