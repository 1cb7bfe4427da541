"""Tests for remotecomm.sessions.broker: S141–S150 and S201–S202 on the manager."""

from pathlib import Path

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.accounts.login import Caller
from remotecomm.sessions import lifecycle as lc
from remotecomm.sessions.broker import SessionBroker, SessionError
from remotecomm.sessions.lifecycle import SessionPolicy
from remotecomm.sessions.messages import (ApprovalCancelled, ApprovalDecision, EndSession,
                                          MessageRefused, SessionReport)
from remotecomm.store.accounts import insert_unit, insert_user, set_user_disabled
from remotecomm.store.audit import audit_records
from remotecomm.store.devices import insert_device, record_hello, revoke_device, set_device_presence
from remotecomm.store.schema import sessions
from remotecomm.store.sessions import (UNSTARTED_DETAIL, connection_records,
                                       insert_connection_record, load_session)
from remotecomm.testing.fakes import migrated_inline_store
from remotecomm.testing.relay import local_directory, standalone_node
from remotecomm.testing.xmpp import parse
from remotecomm.tokens import token_hash
from remotecomm.xmpp.payloads import decode, encode

S = 1_000_000
POLICY = SessionPolicy(approval_timeout_us=120 * S, join_window_us=60 * S,
                       max_lifetime_us=8 * 3600 * S, idle_timeout_us=900 * S)
ALICE = Caller(user_id="alice", unit_id="acme", role="technician",
               terminal_id="t-0123456789abcdef0123456789abcdef")
T0 = 1_800_000_000


class FakeDevices:
    """Records what the broker sends to devices; answers as the test says."""

    def __init__(self):
        self.reachable = {"mfp-1", "mfp-2"}
        self.sent = []
        self.answer = lambda: succeed(None)

    def is_reachable(self, device_id):
        return device_id in self.reachable

    def send(self, device_id, message):
        # Through the XMPP codec and back: what the broker sends must travel as it is.
        self.sent.append((device_id, decode(parse(f"<iq type='set'>{encode(message).toXml()}"
                                                  f"</iq>"))))
        return self.answer()


class BrokerTestCase(SynchronousTestCase):
    """A broker on a real SQLite file, with inline store, Clock and fake devices."""

    allow_test_approver = False

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.store.run_sync(insert_unit, "acme", "ACME Corp", "UTC", 0)
        self.store.run_sync(insert_unit, "globex", "Globex", "UTC", 0)
        self.store.run_sync(insert_user, "alice", "Alice Smith", "x", "acme", "technician", 0)
        for device_id, unit in (("mfp-1", "acme"), ("mfp-2", "acme"), ("gx-1", "globex")):
            self.store.run_sync(insert_device, device_id, unit, device_id, "M", 0)
            self.store.run_sync(set_device_presence, device_id, True, 0)
            self.store.run_sync(record_hello, device_id, "0.1.0", 1, ["web-server"], 0)
        self.devices = FakeDevices()
        self.relay = standalone_node(self.clock)
        self.broker = self.make_broker()

    def make_broker(self):
        return SessionBroker(self.store, self.clock, POLICY, self.allow_test_approver,
                             local_directory(self.store, self.clock, self.relay), self.devices)

    def request(self, device_id="mfp-1", app_id="web-server", caller=ALICE):
        return self.successResultOf(Deferred.fromCoroutine(
            self.broker.request_session(caller, device_id, app_id)))

    def refused(self, device_id="mfp-1", app_id="web-server", caller=ALICE) -> SessionError:
        return self.failureResultOf(Deferred.fromCoroutine(
            self.broker.request_session(caller, device_id, app_id)), SessionError).value

    def decide(self, request_id, approve=True, operator="olga", device_id="mfp-1", test=False):
        return Deferred.fromCoroutine(self.broker.on_decision(
            device_id, ApprovalDecision(request_id, approve, operator, test), "mfp-1@d/agent"))

    def poll(self, request_id, caller=ALICE):
        return Deferred.fromCoroutine(self.broker.poll(caller, request_id))

    def row(self, request_id):
        return self.store.run_sync(load_session, request_id)


class RequestTests(BrokerTestCase):
    """S141/S142: a request reaches the device, or gets a clear refusal."""

    def test_request_ids_never_look_like_options(self):
        """A request ID that would start with "-" (1 in 64 did) is drawn again: `remotecomm
        session REQUEST_ID` must not take it for an option."""
        from remotecomm.sessions import broker as broker_module
        drawn = iter(["-" + "a" * 21, "b" * 22])
        self.patch(broker_module.secrets, "token_urlsafe", lambda n: next(drawn))
        self.assertEqual(broker_module.new_request_id(), "b" * 22)

    def test_request_asks_the_device(self):
        """The device gets an approval request naming who, which unit and which app."""
        accepted = self.request()
        self.assertEqual(accepted.approval_deadline_us, (T0 + 120) * S)
        [(device_id, request)] = self.devices.sent
        self.assertEqual((device_id, request.request_id, request.app_id, request.user_name,
                          request.unit_name), ("mfp-1", accepted.request_id, "web-server",
                                               "Alice Smith", "ACME Corp"))
        row = self.row(accepted.request_id)
        self.assertEqual((row.state, row.unit_id, row.user_id, row.terminal_id, row.device_id),
                         ("pending", "acme", "alice", ALICE.terminal_id, "mfp-1"))

    def test_device_of_another_unit_is_not_found(self):
        """Another unit's device and a missing one get the same answer."""
        for device_id in ("gx-1", "nope"):
            error = self.refused(device_id)
            self.assertEqual((error.status, error.code), (404, "device-not-found"))

    def test_offline_device(self):
        """A device shown offline, or without a known connection, is offline."""
        self.store.run_sync(set_device_presence, "mfp-1", False, 1)
        self.assertEqual(self.refused().code, "device-offline")
        self.devices.reachable = set()
        self.assertEqual(self.refused("mfp-2").code, "device-offline")

    def test_unknown_app(self):
        """An app the device did not announce is refused with the device's apps."""
        error = self.refused(app_id="fax")
        self.assertEqual((error.status, error.code, error.extra["apps"]),
                         (422, "unknown-app", ["web-server"]))

    def test_one_open_session_per_device_and_terminal(self):
        """A second request while the first is open is refused, naming the first."""
        first = self.request()
        error = self.refused()
        self.assertEqual((error.status, error.code, error.extra["request_id"]),
                         (409, "session-exists", first.request_id))
        self.request("mfp-2")  # another device is fine

    def test_device_not_taking_the_request(self):
        """If the device does not acknowledge, the session ends device-offline."""
        self.devices.answer = lambda: fail(RuntimeError("service-unavailable"))
        error = self.refused()
        self.assertEqual(error.code, "device-offline")
        rows = self.store.run_sync(lambda c: c.exec_driver_sql(
            "SELECT state, end_reason FROM sessions").all())
        self.assertEqual(rows, [("ended", "device-offline")])


class DecisionTests(BrokerTestCase):
    """S144–S149 and S201–S202."""

    def test_yes_allocates_and_tells_the_device(self):
        """YES: session ID from the relay, device token to the device, its hash stored."""
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.assertEqual(self.successResultOf(self.poll(accepted.request_id))["state"],
                         "allocating")
        self.clock.advance(0)
        _, ready = self.devices.sent[-1]
        row = self.row(accepted.request_id)
        self.assertEqual((row.state, row.approver, row.session_id, row.relay_node),
                         ("approved", "olga", ready.session_id, "relay-1"))
        self.assertEqual(row.device_token_hash, token_hash(ready.token))
        self.assertEqual(row.join_deadline_us, (T0 + 60) * S)
        self.assertEqual(ready.join_deadline_us, row.join_deadline_us)
        self.assertIsNotNone(row.device_notified_us)
        self.assertIn(ready.session_id, self.relay.allocated)

    def test_yes_with_no_relay_to_take_it_ends_as_an_error_saying_why(self):
        self.relay.drain()
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        row = self.row(accepted.request_id)
        self.assertEqual((row.state, row.end_reason), ("ended", "error"))
        self.assertEqual(row.end_detail, "no relay took the session: of 1 live relay nodes, 1 "
                                         "refused or did not answer and 0 were full")

    def test_terminal_token_is_returned_exactly_once(self):
        """The first poll after approval gets the terminal token; later polls do not."""
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        answer = self.successResultOf(self.poll(accepted.request_id))
        self.assertEqual((answer["state"], answer["operator"]), ("approved", "olga"))
        row = self.row(accepted.request_id)
        self.assertEqual(row.terminal_token_hash, token_hash(answer["terminal_token"]))
        self.assertNotEqual(row.terminal_token_hash, row.device_token_hash)
        self.assertEqual(answer["session_id"], row.session_id)
        again = self.failureResultOf(self.poll(accepted.request_id), SessionError).value
        self.assertEqual((again.status, again.code), (409, "already-delivered"))

    def test_no_refuses_and_is_audited(self):
        """NO: refused with the operator; no token, no session ID; audit record."""
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id, approve=False))
        answer = self.successResultOf(self.poll(accepted.request_id))
        self.assertEqual((answer["state"], answer["operator"], answer["end_reason"]),
                         ("ended", "olga", "refused"))
        row = self.row(accepted.request_id)
        self.assertIsNone(row.session_id)
        self.assertIsNone(row.device_token_hash)
        [record] = self.store.run_sync(audit_records, "approval-refused")
        self.assertEqual((record["actor"], record["detail"]["request_id"]),
                         ("olga", accepted.request_id))

    def test_answer_from_another_device_is_ignored(self):
        """Only the device the request went to can answer it."""
        accepted = self.request()
        failure = self.failureResultOf(self.decide(accepted.request_id, device_id="mfp-2"),
                                       MessageRefused)
        self.assertEqual(failure.value.code, "not-found")
        self.assertEqual(self.row(accepted.request_id).state, "pending")

    def test_repeated_answer_is_acknowledged_not_repeated(self):
        """The same answer again is fine and changes nothing; a different one is refused."""
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        sent = len(self.devices.sent)
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        self.assertEqual(len(self.devices.sent), sent)
        failure = self.failureResultOf(self.decide(accepted.request_id, approve=False,
                                                   operator="other"), MessageRefused)
        self.assertEqual(failure.value.code, "not-allowed")

    def test_test_approver_refused_unless_allowed(self):
        """An answer marked as the test approver's is refused by default."""
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id, operator="bench", test=True))
        answer = self.successResultOf(self.poll(accepted.request_id))
        self.assertEqual((answer["state"], answer["end_reason"], answer["end_detail"]),
                         ("ended", "refused", "test-approver-not-allowed"))
        self.assertTrue(self.row(accepted.request_id).approved_by_test_approver)

    def test_another_terminal_reads_the_record_but_never_the_token(self):
        """The unit may read a session's record; only the terminal that asked gets the
        token, and another unit gets "not found"."""
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        other = Caller("alice", "acme", "technician", "t-fedcba9876543210fedcba9876543210")
        record = self.successResultOf(self.poll(accepted.request_id, caller=other))
        self.assertEqual((record["state"], record["device_id"], record["operator"]),
                         ("approved", "mfp-1", "olga"))
        self.assertNotIn("terminal_token", record)
        self.assertIn("terminal_token", self.successResultOf(self.poll(accepted.request_id)))
        error = self.failureResultOf(self.poll(accepted.request_id, caller=GINA),
                                     SessionError).value
        self.assertEqual((error.status, error.code), (404, "session-not-found"))

    def test_device_never_taking_its_token_ends_the_session(self):
        """Three failed attempts to deliver S149: device-offline."""
        accepted = self.request()
        self.devices.answer = lambda: fail(RuntimeError("gone"))
        self.successResultOf(self.decide(accepted.request_id))
        for _ in range(4):
            self.clock.advance(2)
        row = self.row(accepted.request_id)
        self.assertEqual((row.state, row.end_reason), ("ended", "device-offline"))
        self.assertEqual(len(self.flushLoggedErrors()), 0)


class DeadlineTests(BrokerTestCase):
    """Timers end sessions; a restarted manager re-arms them from the store."""

    def test_no_answer_times_out(self):
        """After 120 s without an answer the request ends approval-timeout."""
        accepted = self.request()
        self.clock.advance(119)
        self.assertEqual(self.row(accepted.request_id).state, "pending")
        self.clock.advance(1)
        row = self.row(accepted.request_id)
        self.assertEqual((row.state, row.end_reason), ("ended", "approval-timeout"))
        answer = self.successResultOf(self.poll(accepted.request_id))
        self.assertEqual((answer["state"], answer["end_reason"]), ("ended", "approval-timeout"))
        self.request()  # the device and terminal are free again

    def test_unjoined_session_expires(self):
        """Approved but never joined: expired after the join window."""
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        self.clock.advance(60)
        row = self.row(accepted.request_id)
        self.assertEqual((row.state, row.end_reason), ("ended", "expired"))

    def test_a_side_admitted_but_never_started_is_closed_with_the_session(self):
        """The relay died between admitting a side and its started log: when the session
        ends, that side's record ends too (no log keys: there were no logs)."""
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        self.store.run_sync(insert_connection_record, accepted.request_id, "device", "mfp-1")
        self.clock.advance(60)
        record = self.store.run_sync(connection_records, accepted.request_id)["device"]
        self.assertEqual((record.ended_us, record.ended_normally, record.end_reason,
                          record.end_detail, record.started_log_key, record.ended_log_key),
                         ((T0 + 60) * S, False, "expired", UNSTARTED_DETAIL, None, None))

    def test_restart_rearms_stored_deadlines(self):
        """A new broker over the same store ends the old request at its stored deadline."""
        accepted = self.request()
        self.broker.stop()
        self.clock.advance(100)
        self.broker = self.make_broker()
        self.successResultOf(Deferred.fromCoroutine(self.broker.start()))
        self.assertEqual(self.row(accepted.request_id).state, "pending")
        self.clock.advance(20)
        self.assertEqual(self.row(accepted.request_id).end_reason, "approval-timeout")

    def test_restart_after_deadline_ends_at_once(self):
        """Deadlines that passed while the manager was down end the session at start."""
        accepted = self.request()
        self.broker.stop()
        self.clock.advance(500)
        self.broker = self.make_broker()
        self.successResultOf(Deferred.fromCoroutine(self.broker.start()))
        self.assertEqual(self.row(accepted.request_id).end_reason, "approval-timeout")

    def test_restart_during_allocation_is_an_error(self):
        """An allocation interrupted by a restart cannot be resumed: error."""
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))  # allocation not yet run
        self.broker.stop()
        self.broker = self.make_broker()
        self.successResultOf(Deferred.fromCoroutine(self.broker.start()))
        row = self.row(accepted.request_id)
        self.assertEqual((row.state, row.end_reason), ("ended", "error"))
        self.assertEqual(row.end_detail, "the manager restarted while asking the relay")


class CancelTests(BrokerTestCase):
    """Ctrl-C on `open` (DELETE): the request ends cancelled, the device drops its card."""

    def cancel(self, request_id, caller=ALICE):
        return Deferred.fromCoroutine(self.broker.cancel(caller, request_id))

    def test_a_pending_request_is_cancelled_and_a_late_yes_refused(self):
        accepted = self.request()
        answer = self.successResultOf(self.cancel(accepted.request_id))
        self.assertEqual((answer["state"], answer["end_reason"]), ("ended", "cancelled"))
        self.clock.advance(0)
        self.assertEqual(self.devices.sent[-1][1], ApprovalCancelled(accepted.request_id))
        failure = self.failureResultOf(self.decide(accepted.request_id), MessageRefused)
        self.assertEqual(failure.value.code, "not-allowed")
        # The pair is free again at once.
        self.assertNotEqual(self.request().request_id, accepted.request_id)

    def test_an_approved_session_is_ended_on_the_relay_and_the_device(self):
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        session_id = self.row(accepted.request_id).session_id
        ends = []
        self.relay.core.end_session = lambda sid, reason: ends.append((sid, reason)) or True
        self.successResultOf(self.cancel(accepted.request_id))
        self.clock.advance(0)
        self.assertEqual(ends, [(session_id, "cancelled")])
        self.assertEqual(self.devices.sent[-1][1], EndSession(accepted.request_id, session_id))

    def test_a_running_session_is_not_cancelled(self):
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        self.store.run_sync(lambda c: c.execute(sessions.update().values(state="active")))
        error = self.failureResultOf(self.cancel(accepted.request_id), SessionError).value
        self.assertEqual((error.status, error.code), (409, "session-active"))

    def test_someone_else_cannot_cancel(self):
        accepted = self.request()
        other = Caller(user_id="bob", unit_id="acme", role="technician",
                       terminal_id=ALICE.terminal_id)
        error = self.failureResultOf(self.cancel(accepted.request_id, other), SessionError).value
        self.assertEqual(error.status, 404)
        self.assertEqual(self.row(accepted.request_id).state, "pending")


class ActiveDeadlineTests(BrokerTestCase):
    """The manager ends an active session its relay never ended (Clock-driven)."""

    def test_an_active_session_ends_relay_lost_once_after_lifetime_and_grace(self):
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        self.store.run_sync(lambda c: c.execute(sessions.update().values(state="active")))
        row = self.row(accepted.request_id)
        self.clock.advance(60)  # the join deadline passes: still active, re-armed
        self.assertEqual(self.row(accepted.request_id).state, "active")
        sent = len(self.devices.sent)
        until_lost = (row.lifetime_deadline_us + lc.LIFETIME_GRACE_US) / S - self.clock.seconds()
        self.clock.advance(until_lost - 1)
        self.assertEqual(self.row(accepted.request_id).state, "active")
        self.clock.advance(1)
        ended = self.row(accepted.request_id)
        self.assertEqual((ended.state, ended.end_reason), ("ended", "relay-lost"))
        self.assertEqual(self.devices.sent[sent:], [
            ("mfp-1", EndSession(accepted.request_id, row.session_id))])
        self.clock.advance(10 * 3600)  # nothing fires twice
        self.assertEqual(len(self.devices.sent), sent + 1)

    def test_a_restarted_manager_rearms_active_sessions(self):
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        self.store.run_sync(lambda c: c.execute(sessions.update().values(state="active")))
        self.broker.stop()
        self.broker = self.make_broker()
        self.successResultOf(Deferred.fromCoroutine(self.broker.start()))
        self.clock.advance(9 * 3600)
        self.assertEqual(self.row(accepted.request_id).end_reason, "relay-lost")


ADAM = Caller(user_id="adam", unit_id="acme", role="unit-admin",
              terminal_id="t-1123456789abcdef0123456789abcdef")
BOB = Caller(user_id="bob", unit_id="acme", role="technician",
             terminal_id="t-2123456789abcdef0123456789abcdef")
GINA = Caller(user_id="gina", unit_id="globex", role="technician",
              terminal_id="t-3123456789abcdef0123456789abcdef")


class ForceEndTests(BrokerTestCase):
    """POST /sessions/{id}/end: the session's own user or a unit admin of its unit."""

    def force_end(self, request_id, caller):
        return Deferred.fromCoroutine(self.broker.force_end(caller, request_id, "127.0.0.5"))

    def approved(self):
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        return accepted.request_id

    def test_a_refused_join_of_a_known_session_is_audited_under_its_unit(self):
        """Hardening, issue 18 #2: the audit files a refusal where the unit's admins look."""
        from remotecomm.relay.gateway import AdmissionRefused, JoinRequest
        from remotecomm.sessions.relay_api import ManagerForRelay
        request_id = self.approved()
        session_id = self.row(request_id).session_id
        manager = ManagerForRelay(self.store, self.clock, self.devices)
        self.failureResultOf(Deferred.fromCoroutine(manager.authenticate(JoinRequest(
            session_id=session_id, side="device", token_hash="0" * 64,
            source_address="198.51.100.7"))), AdmissionRefused)
        [record] = self.store.run_sync(audit_records, "relay-admission-refused")
        self.assertEqual((record["unit_id"], record["detail"]["reason"]), ("acme", "wrong-token"))

    def test_a_unit_admin_ends_a_running_session_through_its_relay(self):
        request_id = self.approved()
        self.store.run_sync(lambda c: c.execute(sessions.update().values(state="active")))
        ends = []
        self.relay.core.end_session = lambda sid, reason: ends.append(reason) or True
        answer = self.successResultOf(self.force_end(request_id, ADAM))
        self.assertEqual((answer["state"], answer["ending"]), ("active", "revoked"))
        self.assertEqual(ends, ["revoked"])
        [record] = self.store.run_sync(audit_records, "session-force-ended")
        self.assertEqual((record["actor"], record["source_address"]), ("adam", "127.0.0.5"))

    def test_the_own_user_ends_it_normally_from_any_terminal(self):
        request_id = self.approved()
        self.store.run_sync(lambda c: c.execute(sessions.update().values(state="active")))
        ends = []
        self.relay.core.end_session = lambda sid, reason: ends.append(reason) or True
        elsewhere = Caller(user_id="alice", unit_id="acme", role="technician",
                           terminal_id="t-9123456789abcdef0123456789abcdef")
        self.assertEqual(self.successResultOf(self.force_end(request_id, elsewhere))["ending"],
                         "normal")
        self.assertEqual(ends, ["normal"])

    def test_not_yet_running_sessions_end_at_once(self):
        request_id = self.approved()
        answer = self.successResultOf(self.force_end(request_id, ADAM))
        self.assertEqual((answer["state"], answer["end_reason"]), ("ended", "revoked"))
        self.assertEqual(self.row(request_id).end_detail, "ended by unit admin adam")

    def test_refused_for_another_technician_and_another_unit(self):
        request_id = self.approved()
        error = self.failureResultOf(self.force_end(request_id, BOB), SessionError).value
        self.assertEqual((error.status, error.code), (403, "forbidden"))
        error = self.failureResultOf(self.force_end(request_id, GINA), SessionError).value
        self.assertEqual((error.status, error.code), (404, "session-not-found"))
        self.assertEqual(self.row(request_id).state, "approved")

    def test_the_unit_lists_its_records_with_filters(self):
        request_id = self.approved()
        self.request("mfp-2")
        listed = self.successResultOf(Deferred.fromCoroutine(
            self.broker.list_records(ALICE, device_id="mfp-1")))
        self.assertEqual([entry["request_id"] for entry in listed], [request_id])
        self.assertEqual(len(self.successResultOf(Deferred.fromCoroutine(
            self.broker.list_records(BOB)))), 2)  # the same unit sees its sessions
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(
            self.broker.list_records(GINA))), [])  # another unit sees none


class RevocationTests(BrokerTestCase):
    """Revoked devices and disabled users: their sessions end within the sweep interval."""

    def test_disabling_a_user_ends_their_sessions_as_revoked(self):
        pending_one = self.request("mfp-2")
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        ends = []
        self.relay.core.end_session = lambda sid, reason: ends.append(reason) or True
        self.broker.start_sweep(interval=1.0)
        self.addCleanup(self.broker.stop)
        self.store.run_sync(set_user_disabled, "alice", True)
        self.clock.advance(1)
        for request_id in (accepted.request_id, pending_one.request_id):
            row = self.row(request_id)
            self.assertEqual((row.state, row.end_reason, row.end_detail),
                             ("ended", "revoked", "user disabled"))
        self.assertEqual(ends, ["revoked"])
        sent = [message for _, message in self.devices.sent]
        self.assertIn(ApprovalCancelled(pending_one.request_id), sent)
        self.assertIn(EndSession(accepted.request_id, self.row(accepted.request_id).session_id),
                      sent)
        self.clock.advance(5)  # nothing is ended twice
        self.assertEqual(ends, ["revoked"])

    def test_a_revoked_device_ends_its_sessions(self):
        accepted = self.request()
        self.store.run_sync(revoke_device, "mfp-1", 5)
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(
            self.broker.end_revoked())), 1)
        self.assertEqual(self.row(accepted.request_id).end_detail, "device revoked")


class SessionReportTests(BrokerTestCase):
    """S313: what a device pushes when its side ends is kept once, for its own sessions."""

    def report(self, request_id, session_id, device_id="mfp-1", **changes):
        values = dict(request_id=request_id, session_id=session_id, app_id="web-server",
                      agent_version="0.1.0", operator="olga", started_us=1, ended_us=2,
                      end_code=1000, end_reason="normal", bytes_to_device=10,
                      bytes_from_device=20, reported_us=3, app_version="TwistedWeb/26")
        values.update(changes)
        return Deferred.fromCoroutine(self.broker.on_session_report(
            device_id, SessionReport(**values), f"{device_id}@d/agent"))

    def test_kept_once_and_shown_in_the_record(self):
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        session_id = self.row(accepted.request_id).session_id
        self.successResultOf(self.report(accepted.request_id, session_id))
        self.successResultOf(self.report(accepted.request_id, session_id, bytes_to_device=999))
        record = self.successResultOf(self.poll(accepted.request_id, caller=BOB))
        self.assertEqual((record["device"]["bytes_to_device"], record["device"]["app_version"],
                          record["device"]["reported_at_us"], record["device"]["received_at_us"]),
                         (10, "TwistedWeb/26", 3, T0 * S))

    def test_refused_for_another_devices_session(self):
        accepted = self.request()
        self.successResultOf(self.decide(accepted.request_id))
        self.clock.advance(0)
        session_id = self.row(accepted.request_id).session_id
        failure = self.failureResultOf(self.report(accepted.request_id, session_id, "mfp-2"),
                                       MessageRefused)
        self.assertEqual(failure.value.code, "not-found")


class OpenSessionLimitTests(BrokerTestCase):
    """Hardening, issue 18 (resource limits): open sessions per user and per device are
    bounded, each with its own answer, tested at the bound."""

    def test_per_user_and_per_device_bounds(self):
        from dataclasses import replace
        self.broker._policy = replace(POLICY, max_open_per_user=2, max_open_per_device=1)
        terminals = [Caller("alice", "acme", "technician", f"t-{n:032x}") for n in range(3)]
        self.request("mfp-1", caller=terminals[0])
        error = self.refused("mfp-1", caller=terminals[1])  # another terminal, same device
        self.assertEqual((error.status, error.code), (429, "device-busy"))
        self.request("mfp-2", caller=terminals[1])
        self.store.run_sync(insert_device, "mfp-3", "acme", "mfp-3", "M", 0)
        self.store.run_sync(set_device_presence, "mfp-3", True, 0)
        self.store.run_sync(record_hello, "mfp-3", "0.1.0", 1, ["web-server"], 0)
        self.devices.reachable.add("mfp-3")
        error = self.refused("mfp-3", caller=terminals[2])
        self.assertEqual((error.status, error.code), (429, "too-many-sessions"))
