"""Tests for remotecomm.relay.logs: write first, push until acknowledged, file once."""

from pathlib import Path

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay.gateway import Admission, LogRejected
from remotecomm.relay.logs import RELAY_MIGRATIONS, LogOutbox, open_connections, pending_logs
from remotecomm.relay.schema import dead_letters
from remotecomm.store.engine import StoreBusy, migrate, open_sqlite
from remotecomm.testing.fakes import InlineStore


def sid(n: int = 1) -> str:
    """A session ID of the right shape."""
    return f"session-{n:024d}"


def admission(side: str, session_id: str) -> Admission:
    return Admission(session_id=session_id, side=side, request_id="R" * 22, party_id="mfp-1",
                     app_id="web-server", pairing_deadline_us=0, lifetime_deadline_us=0)


def started(outbox, side="device", session_id=None):
    return outbox.started(admission(side, session_id or sid()), 10)


def ended(outbox, side="device", session_id=None, normal=True):
    return outbox.ended(admission(side, session_id or sid()), 20, normal,
                        "normal" if normal else "dropped-device", 5, 7)


def key(side: str, kind: str, n: int = 1) -> str:
    return f"{sid(n)}:{side}:{kind}"


class FlakyManager:
    """Files logs by key (once each), failing the next ``failures`` calls."""

    def __init__(self):
        self.filed = {}
        self.calls = []
        self.failures = 0
        self.rejected = set()

    def file_log(self, entry):
        self.calls.append(entry.key)
        if entry.key in self.rejected:
            return fail(LogRejected(entry.key, f"log {entry.key} names no known session"))
        if self.failures:
            self.failures -= 1
            return fail(ConnectionError("manager down"))
        self.filed.setdefault(entry.key, entry)
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
        self.successResultOf(started(self.outbox))
        self.assertEqual(list(self.manager.filed), [key("device", "started")])
        self.assertEqual(self.manager.filed[key("device", "started")].relay_node, "relay-1")
        self.assertEqual(self.store.run_sync(pending_logs), [])
        self.assertEqual(len(self.store.run_sync(open_connections)), 1)

    def test_resent_until_acknowledged(self):
        """While the manager fails, the log stays pending and is resent with backoff."""
        self.manager.failures = 3
        self.successResultOf(started(self.outbox))
        self.assertEqual(self.manager.filed, {})
        self.assertEqual(len(self.store.run_sync(pending_logs)), 1)
        for delay in (0.5, 1, 2):
            self.clock.advance(delay)
        self.assertEqual(list(self.manager.filed), [key("device", "started")])
        self.assertEqual(self.manager.calls, [key("device", "started")] * 4)
        self.assertEqual(self.store.run_sync(pending_logs), [])

    def test_retry_now_ends_the_backoff(self):
        """When the manager answers again, pending logs go at once, not after the backoff."""
        self.manager.failures = 4
        self.successResultOf(started(self.outbox))
        for delay in (0.5, 1, 2):
            self.clock.advance(delay)
        self.assertEqual(self.manager.filed, {})  # now waiting 5 s
        self.outbox.retry_now()
        self.assertEqual(list(self.manager.filed), [key("device", "started")])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.outbox.retry_now()  # nothing pending: nothing happens
        self.assertEqual(len(self.manager.calls), 5)

    def test_logs_of_different_sides_go_together_and_each_sides_in_order(self):
        """Pending logs of different sides are sent at once (the manager commits them
        together); a side's end log waits until its started log was filed."""
        answers = {}

        class SlowManager:
            def file_log(self, entry):
                answers[entry.key] = Deferred()
                return answers[entry.key]

        self.manager = SlowManager()
        outbox = self.make_outbox()
        started(outbox, "device", sid(1))
        ended(outbox, "device", sid(1))
        started(outbox, "device", sid(2))
        self.assertEqual(list(answers), [key("device", "started", 1)])
        answers.pop(key("device", "started", 1)).callback(None)
        self.assertEqual(list(answers), [key("device", "ended", 1), key("device", "started", 2)])
        for answer in list(answers.values()):
            answer.callback(None)
        self.assertEqual(self.store.run_sync(pending_logs), [])

    def test_order_is_kept(self):
        """Logs are filed in the order they were written."""
        self.manager.failures = 1
        self.successResultOf(started(self.outbox, "device"))
        self.successResultOf(started(self.outbox, "terminal"))
        self.successResultOf(ended(self.outbox, "terminal"))
        self.clock.advance(0.5)
        self.assertEqual(list(self.manager.filed), [key("device", "started"), key("terminal", "started"),
                                                    key("terminal", "ended")])

    def test_ended_log_closes_the_connection_record(self):
        """The end log carries normality, reason and bytes, and closes the record."""
        self.successResultOf(started(self.outbox))
        self.successResultOf(ended(self.outbox, normal=False))
        entry = self.manager.filed[key("device", "ended")]
        self.assertEqual((entry.normal, entry.reason, entry.bytes_to_side),
                         (False, "dropped-device", 7))
        self.assertEqual(self.store.run_sync(open_connections), [])

    def test_duplicate_writes_are_one_log(self):
        """Writing the same end log twice queues it once."""
        self.successResultOf(started(self.outbox))
        self.successResultOf(ended(self.outbox))
        self.successResultOf(ended(self.outbox))
        self.assertEqual(self.manager.calls.count(key("device", "ended")), 1)

    def test_restart_resends_and_closes_what_was_open(self):
        """A new outbox over the same store resends pending logs and ends open connections."""
        self.manager.failures = 100
        self.successResultOf(started(self.outbox))
        self.manager.failures = 0
        self.outbox = self.make_outbox()
        count = self.successResultOf(Deferred.fromCoroutine(self.outbox.close_left_open()))
        self.assertEqual(count, 1)
        self.assertEqual(list(self.manager.filed), [key("device", "started"), key("device", "ended")])
        self.assertEqual(self.manager.filed[key("device", "ended")].reason, "relay-restart")
        self.assertFalse(self.manager.filed[key("device", "ended")].normal)


class DeadLetterTests(OutboxTests):
    """A log the manager rejects for good is kept aside; it never blocks later logs."""

    def test_a_rejected_log_goes_to_the_dead_letters_and_later_logs_go_on(self):
        self.manager.rejected.add(key("device", "started", 1))
        self.successResultOf(started(self.outbox, "device", sid(1)))
        self.successResultOf(started(self.outbox, "device", sid(2)))
        self.successResultOf(ended(self.outbox, "device", sid(2)))
        self.assertEqual(list(self.manager.filed), [key("device", "started", 2),
                                                    key("device", "ended", 2)])
        self.assertEqual(self.manager.calls.count(key("device", "started", 1)), 1)
        [dead] = self.store.run_sync(
            lambda c: [dict(r._mapping) for r in c.execute(dead_letters.select())])
        self.assertEqual((dead["log_key"], dead["reason"], dead["attempts"]),
                         (key("device", "started", 1),
                          f"log {key('device', 'started', 1)} names no known session", 1))
        self.assertEqual((self.outbox.dead, self.outbox.pending), (1, 0))
        self.assertEqual(self.store.run_sync(pending_logs), [])

    def test_the_count_survives_a_restart(self):
        self.manager.rejected.add(key("device", "started", 1))
        self.successResultOf(started(self.outbox, "device", sid(1)))
        self.outbox = self.make_outbox()
        self.successResultOf(Deferred.fromCoroutine(self.outbox.close_left_open()))
        self.assertEqual(self.outbox.dead, 1)


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
        self.successResultOf(started(self.outbox))
        self.store.busy = 3
        written = ended(self.outbox)
        self.assertNoResult(written)
        self.clock.pump([0.05, 0.1, 0.2])
        self.successResultOf(written)
        self.assertIn(key("device", "ended"), self.manager.filed)
        self.assertEqual(self.outbox.written, {"started": 1, "ended": 1})

    def test_logs_arriving_during_a_write_share_the_next_commit(self):
        self.store.hold = True
        first = started(self.outbox, "device", sid(0))
        later = [started(self.outbox, "device", sid(i)) for i in range(1, 50)]
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
