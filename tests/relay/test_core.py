"""Tests for remotecomm.relay.core with the real manager gateway on in-memory stores."""

from pathlib import Path

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay import core as rc, envelope as env
from remotecomm.relay.logs import RELAY_MIGRATIONS, LogOutbox
from remotecomm.sessions.relay_api import ManagerForRelay
from remotecomm.store.audit import audit_records
from remotecomm.store.engine import migrate, open_sqlite
from remotecomm.store.schema import session_connections, sessions
from remotecomm.testing.fakes import InlineStore, migrated_inline_store
from remotecomm.testing.relay import FakeConnection
from remotecomm.tokens import new_token, token_hash

S = 1_000_000
T0 = 1_800_000_000
SESSION_ID = "S" * 32


class FakeDevices:
    def __init__(self):
        self.sent = []

    def send(self, device_id, message):
        self.sent.append((device_id, type(message).__name__))
        return succeed(None)


class _FailingEnd:
    """The manager gateway, except that asking it to end a session fails (it is down)."""

    def __init__(self, manager):
        self._manager = manager

    def __getattr__(self, name):
        return getattr(self._manager, name)

    async def end_session(self, request):
        raise ConnectionRefusedError("the manager is down")


class CoreTestCase(SynchronousTestCase):
    """An approved session in the manager's store, a relay core, fake connections."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.manager_store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.manager_store.engine.dispose)
        self.tokens = {"device": new_token(), "terminal": new_token()}
        self.manager_store.run_sync(lambda c: c.execute(sessions.insert().values(
            request_id="R" * 22, state="approved", unit_id="acme", user_id="alice",
            terminal_id="t-1", device_id="mfp-1", app_id="web-server", relay_node="relay-1",
            session_id=SESSION_ID, device_token_hash=token_hash(self.tokens["device"]),
            terminal_token_hash=token_hash(self.tokens["terminal"]),
            terminal_token_delivered=True, approver="olga", approved_by_test_approver=False,
            requested_us=T0 * S, join_deadline_us=(T0 + 60) * S,
            lifetime_deadline_us=(T0 + 3600) * S, idle_timeout_us=300 * S)))
        self.devices = FakeDevices()
        self.manager = ManagerForRelay(self.manager_store, self.clock, self.devices)
        relay_engine = open_sqlite(Path(self.mktemp()) / "relay.sqlite3")
        self.addCleanup(relay_engine.dispose)
        migrate(relay_engine, location=RELAY_MIGRATIONS)
        self.outbox = LogOutbox(InlineStore(relay_engine, None), self.manager, self.clock,
                                "relay-1")
        self.core = rc.RelayCore(self.clock, self.manager, self.outbox)

    def join(self, side, token=None, session_id=SESSION_ID):
        connection = FakeConnection(side)
        self.successResultOf(self.core.join(connection, session_id, side,
                                            token or self.tokens[side], "127.0.0.9"))
        return connection

    def pair(self):
        return self.join("device"), self.join("terminal")

    def records(self):
        return {r.side: r for r in self.manager_store.run_sync(
            lambda c: c.execute(session_connections.select()).all())}

    def session(self):
        return self.manager_store.run_sync(lambda c: c.execute(sessions.select()).first())


class AdmissionTests(CoreTestCase):
    """Nothing is forwarded to or from a side the manager did not confirm."""

    def assertRefused(self, connection, code=rc.CLOSE_TOKEN_REFUSED):
        self.assertEqual(connection.closed_with[0], code)
        if code == rc.CLOSE_TOKEN_REFUSED:
            # One code and one reason for every refusal a client cannot fix.
            self.assertEqual(connection.closed_with[1], rc.ADMISSION_REFUSED)
        self.assertFalse(connection.is_established)
        self.core.received(connection, env.encode_hello({}))
        self.assertEqual(connection.sent, [])

    def test_unknown_session(self):
        """An unknown session ID: refused like a wrong token (4401, the same words), audited
        with the real reason and the source address."""
        connection = self.join("device", session_id="X" * 32)
        self.assertRefused(connection)
        [record] = self.manager_store.run_sync(audit_records, "relay-admission-refused")
        self.assertEqual((record["source_address"], record["detail"]["reason"]),
                         ("127.0.0.9", "unknown-session"))
        self.assertNotIn(self.tokens["device"], str(record))

    def test_wrong_token(self):
        """A token that is not this session's: 4401."""
        self.assertRefused(self.join("device", token=new_token()), rc.CLOSE_TOKEN_REFUSED)
        self.assertRefused(self.join("device", token="not a token"), rc.CLOSE_TOKEN_REFUSED)

    def test_other_sides_token(self):
        """The terminal's token on the device endpoint: refused, 4401."""
        self.assertRefused(self.join("device", token=self.tokens["terminal"]))

    def test_reused_token(self):
        """Each side's token joins once: the second use is refused, 4401."""
        first = self.join("device")
        self.assertTrue(first.is_established)
        self.assertRefused(self.join("device"))

    def test_join_after_the_window(self):
        """After the join window: refused, 4401."""
        self.clock.advance(60)
        self.assertRefused(self.join("device"))

    def test_manager_not_answering(self):
        """No answer from the manager within 5 s: 4412, nothing admitted."""
        self.manager.authenticate = lambda request: Deferred()
        connection = FakeConnection()
        self.core.join(connection, SESSION_ID, "device", self.tokens["device"], "127.0.0.9")
        self.clock.advance(5)
        self.assertRefused(connection, rc.CLOSE_ADMISSION_TIMEOUT)

    def test_side_leaving_during_admission_is_not_admitted(self):
        """A side that disconnects while its token is checked gets no started log."""
        answer = Deferred()
        self.manager.authenticate = lambda request: answer
        connection = FakeConnection()
        self.core.join(connection, SESSION_ID, "device", self.tokens["device"], "127.0.0.9")
        self.core.closed(connection, normal_request=False)
        answer.callback({"request_id": "R" * 22, "party_id": "mfp-1", "app_id": "web-server",
                         "pairing_deadline_us": (T0 + 60) * S,
                         "lifetime_deadline_us": (T0 + 3600) * S})
        self.assertFalse(connection.is_established)
        self.assertEqual(self.core.sessions, {})
        self.assertEqual(self.core.connection_count(), 0)

    def test_admission_files_started_logs_and_activates(self):
        """S176–S179 for both sides; both started logs make the session active."""
        device, terminal = self.pair()
        self.assertTrue(device.is_established and terminal.is_established)
        records = self.records()
        self.assertEqual({side: r.started_log_key for side, r in records.items()},
                         {"device": f"{SESSION_ID}:device:started",
                          "terminal": f"{SESSION_ID}:terminal:started"})
        self.assertEqual((records["device"].party_id, records["terminal"].party_id),
                         ("mfp-1", "t-1"))
        self.assertEqual(self.session().state, "active")


class ForwardingTests(CoreTestCase):
    """Frames go to the partner as they are, counted, held until pairing."""

    def test_frames_forwarded_both_ways_unparsed(self):
        """Whatever the body, a valid frame header is enough to be forwarded."""
        device, terminal = self.pair()
        request = env.encode_open(1, "web-server", SESSION_ID, b"GET / HTTP/1.1\r\n\r\n")
        self.core.received(terminal, request)
        self.core.received(device, env.encode_reset(1, env.RESET_REFUSED, "no"))
        self.assertEqual(device.sent, [request])
        self.assertEqual(env.decode(terminal.sent[0]).kind, env.RESET)

    def test_pairing_links_backpressure(self):
        """Each side's outgoing buffer controls reading from the other."""
        device, terminal = self.pair()
        self.assertIs(device.partner, terminal)
        self.assertIs(terminal.partner, device)

    def test_frames_before_pairing_are_held(self):
        """The device's hello waits for the terminal, then arrives first."""
        device = self.join("device")
        hello = env.encode_hello({"agent_version": "0.1.0"})
        self.core.received(device, hello)
        terminal = self.join("terminal")
        self.assertEqual(terminal.sent, [hello])

    def test_holding_is_bounded(self):
        """Past the hold limit the early side stops being read until pairing."""
        device = self.join("device")
        for n in range(rc.HOLD_FRAMES):
            self.core.received(device, env.encode_data(n + 1, b"x"))
        self.assertTrue(device.paused)
        self.join("terminal")
        self.assertFalse(device.paused)

    def test_bad_frame_ends_the_session(self):
        """A frame the relay cannot accept closes that side (4002) and the partner (4410)."""
        device, terminal = self.pair()
        self.core.received(terminal, b"\x09\x09garbage")
        self.assertEqual(terminal.closed_with[0], rc.CLOSE_BAD_FRAME)
        self.core.closed(terminal, normal_request=False)
        self.assertEqual(device.closed_with[0], rc.CLOSE_PARTNER_DROPPED)

    def test_a_refused_frame_is_counted_and_described_in_the_record(self):
        """S316's errors: the side that sent a bad frame has it counted, with the words it was
        closed with; the session's detail names that side."""
        device, terminal = self.pair()
        self.core.received(terminal, b"\x09\x09garbage")
        self.core.closed(terminal, normal_request=False)
        self.core.closed(device, normal_request=False)
        records = self.records()
        self.assertEqual(records["terminal"].refused_frames, 1)
        self.assertTrue(records["terminal"].end_detail.startswith("bad frame: "))
        self.assertEqual((records["device"].refused_frames, records["device"].end_detail),
                         (0, "the terminal side dropped"))
        session = self.session()
        self.assertEqual(session.end_reason, "error")
        self.assertTrue(session.end_detail.startswith("terminal side: bad frame: "),
                        session.end_detail)

    def test_bytes_are_counted_per_direction(self):
        """End logs carry bytes from and to each side."""
        device, terminal = self.pair()
        self.core.received(terminal, env.encode_data(1, b"a" * 100))
        self.core.received(device, env.encode_data(1, b"b" * 10))
        self.core.closed(terminal, normal_request=True)
        self.core.closed(device, normal_request=True)
        records = self.records()
        self.assertEqual((records["terminal"].bytes_from_side, records["terminal"].bytes_to_side),
                         (106, 16))
        self.assertEqual((records["device"].bytes_from_side, records["device"].bytes_to_side),
                         (16, 106))

    def test_the_session_row_carries_what_reports_add_up(self):
        """Filed logs copy the first start, the duration and the device side's bytes onto the
        session, which from then on counts at its start (not its request)."""
        device, terminal = self.pair()
        started = min(r.started_us for r in self.records().values())
        self.assertEqual((self.session().started_us, self.session().counted_at_us,
                          self.session().duration_us), (started, started, None))
        self.core.received(terminal, env.encode_data(1, b"a" * 100))
        self.clock.advance(7)
        self.core.closed(terminal, normal_request=True)
        self.core.closed(device, normal_request=True)
        session = self.session()
        self.assertEqual((session.duration_us, session.bytes_to_device,
                          session.bytes_from_device), (7_000_000, 106, 0))


class StateTests(CoreTestCase):
    """The core's states (waiting, paired, ending; joining, open, closing, ended) are explicit."""

    def states(self):
        [session] = self.core.sessions.values()
        return session.state, {name: side.state for name, side in session.sides.items()}

    def test_states_from_join_to_end(self):
        """One side waits; two are paired; a normal terminal end leaves the session ending."""
        device = self.join("device")
        self.assertEqual(self.states(), (rc.WAITING, {"device": rc.OPEN}))
        terminal = self.join("terminal")
        self.assertEqual(self.states(), (rc.PAIRED, {"device": rc.OPEN, "terminal": rc.OPEN}))
        self.core.closed(terminal, normal_request=True)
        self.assertEqual(self.states(), (rc.ENDING, {"device": rc.OPEN, "terminal": rc.ENDED}))
        self.clock.advance(rc.END_GRACE)
        self.assertEqual(self.states(), (rc.ENDING, {"device": rc.CLOSING,
                                                     "terminal": rc.ENDED}))
        self.core.closed(device, normal_request=False)
        self.assertEqual(self.core.sessions, {})

    def test_frames_after_the_end_began_go_nowhere(self):
        """Once a session is ending, frames from the side left are neither forwarded nor held."""
        device, terminal = self.pair()
        self.core.closed(terminal, normal_request=True)
        for n in range(rc.HOLD_FRAMES + 5):
            self.core.received(device, env.encode_data(1, b"late"))
        [session] = self.core.sessions.values()
        self.assertEqual((session.held, device.paused, terminal.sent), ([], False, []))

    def test_a_manager_end_fixes_the_reason_once(self):
        """The first end decides the session's reason; later ones do not overwrite it."""
        device, terminal = self.pair()
        self.assertTrue(self.core.end_session(SESSION_ID, "revoked"))
        self.core.closed(terminal, normal_request=True)
        self.core.closed(device, normal_request=False)
        self.assertEqual({s: (r.ended_normally, r.end_reason)
                          for s, r in self.records().items()},
                         {"device": (False, "revoked"), "terminal": (False, "revoked")})
        self.assertFalse(self.core.end_session(SESSION_ID, "revoked"))


class EndTests(CoreTestCase):
    """Normal ends, drops, deadlines and shutdown, with their logs."""

    def test_terminal_ends_normally(self):
        """S261–S273/S291–S299: the manager asks the device; both end logs normal."""
        device, terminal = self.pair()
        self.core.closed(terminal, normal_request=True)
        self.assertEqual(self.devices.sent, [("mfp-1", "EndSession")])
        self.assertIsNone(device.closed_with)
        self.core.closed(device, normal_request=True)
        records = self.records()
        self.assertEqual({s: (r.ended_normally, r.end_reason) for s, r in records.items()},
                         {"device": (True, "normal"), "terminal": (True, "normal")})
        session = self.session()
        self.assertEqual((session.state, session.end_reason), ("ended", "normal"))
        self.assertEqual(self.core.sessions, {})

    def test_device_that_does_not_close_is_closed(self):
        """After the grace period the relay closes the device; its log is abnormal."""
        device, terminal = self.pair()
        self.core.closed(terminal, normal_request=True)
        self.clock.advance(rc.END_GRACE)
        self.assertEqual(device.closed_with[0], rc.CLOSE_SESSION_ENDED)
        self.core.closed(device, normal_request=False)
        self.assertEqual(self.records()["device"].end_reason, "error")

    def test_manager_unreachable_at_the_end_the_relay_ends_the_device_side(self):
        """The manager cannot pass the end on: the relay closes the device, still normal."""
        device, terminal = self.pair()
        self.core._gateway = _FailingEnd(self.manager)
        self.core.closed(terminal, normal_request=True)
        self.assertEqual(device.closed_with[0], rc.CLOSE_SESSION_ENDED)
        self.core.closed(device, normal_request=False)
        self.assertEqual({s: (r.ended_normally, r.end_reason)
                          for s, r in self.records().items()},
                         {"device": (True, "normal"), "terminal": (True, "normal")})

    def test_heartbeat_timeout_is_the_end_reason(self):
        """A side that stopped answering pings: both logs say heartbeat-timeout."""
        device, terminal = self.pair()
        self.core.closed(device, normal_request=False, lost_reason="heartbeat-timeout")
        self.assertEqual(terminal.closed_with[0], rc.CLOSE_PARTNER_DROPPED)
        self.core.closed(terminal, normal_request=False)
        self.assertEqual({s: (r.ended_normally, r.end_reason)
                          for s, r in self.records().items()},
                         {"device": (False, "heartbeat-timeout"),
                          "terminal": (False, "heartbeat-timeout")})
        self.assertEqual(self.session().end_reason, "heartbeat-timeout")

    def test_device_ends_first(self):
        """S291: the device ending first (its operator pressed End) closes the terminal with
        a notice that says so; both logs normal, reason ended-by-device."""
        device, terminal = self.pair()
        self.core.closed(device, normal_request=True)
        code, reason = terminal.closed_with
        self.assertEqual(code, rc.CLOSE_SESSION_ENDED)
        self.assertTrue(reason.startswith("ended-by-device"))
        self.core.closed(terminal, normal_request=False)
        self.assertEqual({(r.ended_normally, r.end_reason) for r in self.records().values()},
                         {(True, "ended-by-device")})
        self.assertEqual(self.session().end_reason, "ended-by-device")

    def test_device_ending_after_the_terminal_is_a_normal_end(self):
        """S265→S291: the device closes because the terminal ended: both normal."""
        device, terminal = self.pair()
        self.core.closed(terminal, normal_request=True)
        self.core.closed(device, normal_request=True)
        self.assertEqual({r.end_reason for r in self.records().values()}, {"normal"})

    def test_dropped_terminal(self):
        """A terminal that drops ends the session; the device is closed; both abnormal."""
        device, terminal = self.pair()
        self.core.closed(terminal, normal_request=False)
        self.assertEqual(device.closed_with[0], rc.CLOSE_PARTNER_DROPPED)
        self.core.closed(device, normal_request=False)
        records = self.records()
        self.assertEqual({s: (r.ended_normally, r.end_reason) for s, r in records.items()},
                         {"device": (False, "dropped-terminal"),
                          "terminal": (False, "dropped-terminal")})
        self.assertEqual(self.session().end_reason, "dropped-terminal")

    def test_partner_never_joins(self):
        """At the pairing deadline the lone side is closed (4408), its log says expired."""
        device = self.join("device")
        self.clock.advance(60)
        self.assertEqual(device.closed_with[0], rc.CLOSE_PAIRING_TIMEOUT)
        self.core.closed(device, normal_request=False)
        self.assertEqual(self.records()["device"].end_reason, "expired")
        self.assertEqual(self.session().state, "ended")

    def test_maximum_lifetime(self):
        """At the lifetime deadline both sides are closed (4411)."""
        self.manager_store.run_sync(lambda c: c.execute(
            sessions.update().values(idle_timeout_us=None)))  # only the lifetime applies here
        device, terminal = self.pair()
        self.clock.advance(3600)
        self.assertEqual((device.closed_with[0], terminal.closed_with[0]),
                         (rc.CLOSE_MAX_LIFETIME, rc.CLOSE_MAX_LIFETIME))
        self.core.closed(device, normal_request=False)
        self.core.closed(terminal, normal_request=False)
        self.assertEqual(self.session().end_reason, "max-lifetime")

    def test_idle_session_ends(self):
        """No frame for a whole idle period (here 300 s): both closed (4413), idle-timeout."""
        device, terminal = self.pair()
        self.clock.advance(250)
        self.core.received(terminal, env.encode_data(1, b"x"))
        self.clock.advance(300)
        self.assertIsNone(device.closed_with)
        self.clock.advance(300)
        self.assertEqual((device.closed_with[0], terminal.closed_with[0]),
                         (rc.CLOSE_IDLE, rc.CLOSE_IDLE))
        self.core.closed(device, normal_request=False)
        self.core.closed(terminal, normal_request=False)
        self.assertEqual(self.session().end_reason, "idle-timeout")

    def test_shutdown(self):
        """SIGTERM: both sides closed (4503), end logs written at once as shutdown."""
        device, terminal = self.pair()
        self.core.shutdown()
        self.assertEqual((device.closed_with[0], terminal.closed_with[0]),
                         (rc.CLOSE_SHUTDOWN, rc.CLOSE_SHUTDOWN))
        self.assertEqual({r.end_reason for r in self.records().values()}, {"shutdown"})
        late = self.join("device")
        self.assertEqual(late.closed_with[0], rc.CLOSE_SHUTDOWN)


class SourceLimitTests(CoreTestCase):
    """Hardening, issue 18 (resource limits): per source address, refused joins within a
    minute and WebSockets open at once are bounded; past either, connections are shed."""

    def test_open_connections_per_address_at_the_bound(self):
        """The bound is ``[relay] max_connections_per_address`` (500 by default)."""
        self.assertEqual(rc.RelayCore(self.clock, None, None)._connections_per_source, 500)
        self.core = rc.RelayCore(self.clock, self.manager, self.outbox, connections_per_source=2)
        for _ in range(2):
            self.assertFalse(self.core.shed("203.0.113.5"))
            self.core.source_opened("203.0.113.5")
        self.assertTrue(self.core.shed("203.0.113.5"))
        self.assertFalse(self.core.shed("203.0.113.6"))
        self.core.source_closed("203.0.113.5")
        self.assertFalse(self.core.shed("203.0.113.5"))

    def test_refused_joins_per_address_within_a_minute(self):
        counter = rc.RefusalCounter(self.clock, limit=3, window=60, max_sources=2)
        for _ in range(3):
            self.assertFalse(counter.over("198.51.100.1"))
            counter.note("198.51.100.1")
        self.assertTrue(counter.over("198.51.100.1"))
        self.clock.advance(61)
        self.assertFalse(counter.over("198.51.100.1"))
        for n in range(5):  # memory stays bounded
            counter.note(f"198.51.100.{10 + n}")
        self.assertLessEqual(len(counter._times), 2)
