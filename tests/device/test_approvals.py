"""Tests for remotecomm.device.approvals and the panel channel: the device's part of S142–S149."""

import json
from pathlib import Path

from treq.testing import StubTreq
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import client, error
from twisted.words.protocols.jabber.jid import JID

from remotecomm.device.approvals import ApprovalError, Approvals, ManagerRequests
from remotecomm.device.history import History
from remotecomm.device.manager_link import ManagerLink
from remotecomm.device.panel_channel import PanelChannel
from remotecomm.sessions.messages import (ApprovalCancelled, ApprovalRequest, Hello, KeptReports,
                                          MessageRefused, ReportRequest, SessionReady,
                                          SessionReport)
from remotecomm.testing.xmpp import PipeConnection
from remotecomm.xmpp.payloads import decode_kept_reports, encode
from remotecomm.xmpp.stream import UnknownIqHandler, XmppStream

T0 = 1_800_000_000
S = 1_000_000
SECRET = "s" * 32


def approval(request_id="r" * 22, app="web-server", expires=T0 + 120):
    return ApprovalRequest(request_id, app, "alice", "Alice", "acme", "ACME", expires * S)


class ApprovalsTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.history = History(Path(self.mktemp()) / "history.jsonl")
        self.sent = []
        self.approvals = Approvals(self.clock, self.history, {"web-server"},
                                   lambda component, d: self.sent.append((component, d)) or
                                   succeed(None))


class ApprovalsTests(ApprovalsTestCase):
    """Requests wait for the panel; answers are recorded, then sent."""

    def test_request_waits_for_the_operator(self):
        """A request is listed for the panel and written to the device's history."""
        self.approvals.on_request("rms.test", approval())
        self.assertEqual(self.approvals.pending(), [approval()])
        [event] = self.history.events()
        self.assertEqual((event["event"], event["user_name"], event["app_id"]),
                         ("approval-requested", "Alice", "web-server"))

    def test_answer_is_recorded_then_sent(self):
        """The operator's answer lands in the history and goes to the component."""
        self.approvals.on_request("rms.test", approval())
        self.approvals.decide("r" * 22, True, "olga")
        [(component, decision)] = self.sent
        self.assertEqual((component, decision.approve, decision.operator,
                          decision.by_test_approver), ("rms.test", True, "olga", False))
        decided = self.history.events()[-1]
        self.assertEqual((decided["event"], decided["operator"], decided["answer"]),
                         ("approval-decided", "olga", "yes"))
        self.assertEqual(self.approvals.pending(), [])

    def test_repeated_request_is_not_asked_twice(self):
        """The same request ID again (manager fail-over) changes nothing."""
        self.approvals.on_request("rms.test", approval())
        self.approvals.on_request("rms.test", approval())
        self.assertEqual(len(self.approvals.pending()), 1)
        self.assertEqual(len(self.history.events()), 1)

    def test_unknown_app_is_refused(self):
        """The device serves only apps in its config."""
        with self.assertRaises(MessageRefused) as e:
            self.approvals.on_request("rms.test", approval(app="fax"))
        self.assertEqual(e.exception.code, "not-found")

    def test_answers_that_cannot_be_taken(self):
        """Unknown, already answered and expired requests are refused with a code."""
        with self.assertRaises(ApprovalError) as e:
            self.approvals.decide("x" * 22, True, "olga")
        self.assertEqual(e.exception.code, "unknown-request")
        self.approvals.on_request("rms.test", approval())
        self.approvals.decide("r" * 22, False, "olga")
        with self.assertRaises(ApprovalError) as e:
            self.approvals.decide("r" * 22, True, "olga")
        self.assertEqual(e.exception.code, "already-decided")
        self.approvals.on_request("rms.test", approval("q" * 22, expires=T0 + 5))
        self.clock.advance(5)
        with self.assertRaises(ApprovalError) as e:
            self.approvals.decide("q" * 22, True, "olga")
        self.assertEqual(e.exception.code, "expired")

    def test_test_approver_answers_yes_at_once_marked(self):
        """With a test approver, every request is answered YES, marked as a test."""
        approvals = Approvals(self.clock, self.history, {"web-server"},
                              lambda c, d: self.sent.append(d) or succeed(None),
                              test_approver="bench")
        approvals.on_request("rms.test", approval())
        self.clock.advance(0)
        [decision] = self.sent
        self.assertEqual((decision.approve, decision.operator, decision.by_test_approver),
                         (True, "bench", True))

    def test_session_ready_only_for_approved_requests(self):
        """S149 for a request the operator did not approve is refused."""
        ready = SessionReady("r" * 22, "s" * 32, "t" * 43, "wss://relay.test/relay",
                             "web-server", (T0 + 60) * S)
        self.approvals.on_request("rms.test", approval())
        with self.assertRaises(MessageRefused):
            self.approvals.on_session_ready("rms.test", ready)
        self.approvals.decide("r" * 22, True, "olga")
        self.approvals.on_session_ready("rms.test", ready)
        event = self.history.events()[-1]
        self.assertEqual((event["event"], event["session_id"]), ("session-ready", "s" * 32))
        self.assertNotIn("t" * 43, json.dumps(self.history.events()))

    def test_pending_requests_are_bounded(self):
        """At most 32 requests wait at once."""
        for n in range(32):
            self.approvals.on_request("rms.test", approval(f"{n:022d}"))
        with self.assertRaises(MessageRefused) as e:
            self.approvals.on_request("rms.test", approval("z" * 22))
        self.assertEqual(e.exception.code, "busy")


class CancelTests(ApprovalsTestCase):
    """The requester withdrew: the card leaves the panel and a YES is refused."""

    def test_cancelled_request_leaves_the_panel_and_refuses_a_yes(self):
        self.approvals.on_request("rms.test", approval())
        self.approvals.on_cancel(ApprovalCancelled("r" * 22))
        self.assertEqual(self.approvals.pending(), [])
        with self.assertRaises(ApprovalError) as e:
            self.approvals.decide("r" * 22, True, "olga")
        self.assertEqual(e.exception.code, "cancelled")
        self.assertEqual(self.sent, [])
        self.assertEqual(self.history.events()[-1]["event"], "approval-cancelled")
        self.approvals.on_cancel(ApprovalCancelled("r" * 22))  # the same message again

    def test_cancel_of_an_unknown_request_is_refused(self):
        with self.assertRaises(MessageRefused):
            self.approvals.on_cancel(ApprovalCancelled("x" * 22))


class ManagerRequestTests(ApprovalsTestCase):
    """Requests over XMPP are accepted only from the configured components."""

    def setUp(self):
        super().setUp()
        stream = XmppStream(client.XMPPClientFactory(JID("mfp-1@d.test/agent"), "pw"),
                            self.clock)
        link = ManagerLink(self.clock, ("rms.test",), Hello("0.1.0", 1, ()))
        ManagerRequests(self.approvals, link.is_component).setHandlerParent(stream)
        UnknownIqHandler().setHandlerParent(stream)
        self.connection = PipeConnection(stream).connect()

    def send(self, sender, payload):
        self.connection.receive(f"<iq type='set' id='m1' from='{sender}' to='mfp-1@d.test/agent'>"
                                f"{payload.toXml()}</iq>")
        [reply] = self.connection.take()
        return reply

    def test_request_is_acknowledged_at_once(self):
        """S142 is answered with a result right away; the operator answers later."""
        reply = self.send("rms.test", encode(approval()))
        self.assertEqual((reply["type"], reply["id"]), ("result", "m1"))
        self.assertEqual(len(self.approvals.pending()), 1)

    def test_requests_from_others_are_forbidden(self):
        """Another device cannot ask this device's operator anything."""
        reply = self.send("mfp-2@d.test/agent", encode(approval()))
        self.assertEqual(error.exceptionFromStanza(reply).condition, "forbidden")
        self.assertEqual(self.approvals.pending(), [])

    def test_malformed_requests_change_nothing(self):
        """A broken approval request gets bad-request."""
        element = encode(approval())
        del element.attributes["user"]
        reply = self.send("rms.test", element)
        self.assertEqual(error.exceptionFromStanza(reply).condition, "bad-request")
        self.assertEqual(self.approvals.pending(), [])

    def test_report_request_is_answered_with_what_the_device_kept(self):
        """S312 over XMPP: the answer carries the kept reports; asking twice answers twice."""
        self.approvals.on_request("rms.test", approval())
        self.approvals.decide("r" * 22, True, "olga")
        self.connection.take()
        self.approvals.on_session_ready("rms.test", READY)
        self.history.append("relay-joined", (T0 + 1) * S, request_id="r" * 22,
                            session_id="s" * 32, agent_version="0.9")
        asked = ReportRequest(request_ids=("r" * 22,))
        for _ in range(2):
            reply = self.send("rms.test", encode(asked))
            self.assertEqual(reply["type"], "result")
            [report] = decode_kept_reports(reply, asked).reports
            self.assertEqual((report.session_id, report.operator), ("s" * 32, "olga"))

    def test_session_ready_for_unknown_request(self):
        """S149 for nothing we approved: item-not-found."""
        reply = self.send("rms.test", encode(SessionReady(
            "r" * 22, "s" * 32, "t" * 43, "wss://relay.test/r", "web-server", 1)))
        self.assertEqual(error.exceptionFromStanza(reply).condition, "item-not-found")


READY = SessionReady("r" * 22, "s" * 32, "t" * 43, "wss://relay.test/relay", "web-server",
                     (T0 + 60) * S)


class KeptReportTests(ApprovalsTestCase):
    """S312/S313 on request: the device answers from its history, as often as asked."""

    def run_session(self, request_id="r" * 22):
        self.approvals.on_request("rms.test", approval(request_id))
        self.approvals.decide(request_id, True, "olga")
        self.approvals.on_session_ready("rms.test", READY.__class__(
            request_id, "s" * 32, "t" * 43, READY.relay_url, READY.app_id,
            READY.join_deadline_us))
        self.history.append("relay-joined", (T0 + 1) * S, request_id=request_id,
                            session_id="s" * 32, agent_version="0.9", firmware_version="4.2.1")

    def test_a_pushed_report_is_sent_again_as_it_was(self):
        """What the device pushed at the end is what it answers later (times: its own)."""
        self.approvals.firmware_version = "4.2.1"
        self.run_session()
        self.clock.advance(5)
        self.approvals.session_ended("r" * 22, started_us=(T0 + 1) * S, ended_us=(T0 + 5) * S,
                                     end_code=1000, end_reason="normal", bytes_to_device=10,
                                     bytes_from_device=20, app_version="httpd/2", errors=1)
        pushed = self.sent[-1][1]
        self.assertIsInstance(pushed, SessionReport)
        self.assertEqual((pushed.firmware_version, pushed.errors), ("4.2.1", 1))
        self.clock.advance(100)
        asked = ReportRequest(request_ids=("r" * 22, "x" * 22))
        [again] = self.approvals.kept_reports(asked).reports
        self.assertEqual(again.__class__(**dict(vars(again), reported_us=pushed.reported_us)),
                         pushed)
        self.assertEqual(again.reported_us, (T0 + 105) * S)
        self.assertEqual(self.approvals.kept_reports(asked).reports[0].started_us,
                         again.started_us)

    def test_a_session_the_agent_stopped_in_has_no_end_and_no_bytes(self):
        """The agent stopped while the session ran: the device says what it knew, no more."""
        self.run_session()
        restarted = Approvals(self.clock, self.history, {"web-server"},
                              lambda component, d: succeed(None))
        [report] = restarted.kept_reports(ReportRequest(request_ids=("r" * 22,))).reports
        self.assertEqual((report.operator, report.started_us, report.ended_us, report.end_code,
                          report.end_reason, report.bytes_to_device, report.agent_version,
                          report.firmware_version),
                         ("olga", (T0 + 1) * S, None, None, "agent-stopped", None, "0.9",
                          "4.2.1"))

    def test_sessions_it_never_joined_are_left_out(self):
        """A refused or never-joined request is not something the device can report."""
        self.approvals.on_request("rms.test", approval())
        self.approvals.decide("r" * 22, False, "olga")
        self.assertEqual(self.approvals.kept_reports(
            ReportRequest(request_ids=("r" * 22,))), KeptReports(reports=()))


class FakeLinks:
    """The agent's relay links: one running session."""

    def __init__(self):
        self.joined_us = {"r" * 22: T0 * S}
        self.ended = []

    def end_by_operator(self, request_id, operator):
        if request_id not in self.joined_us:
            return False
        self.ended.append((request_id, operator))
        return True


class PanelChannelTests(ApprovalsTestCase):
    """The local channel: only the panel, with the secret, can answer."""

    def setUp(self):
        super().setUp()
        self.links = FakeLinks()
        self.http = StubTreq(PanelChannel(self.approvals, SECRET, self.links).resource())
        self.approvals.on_request("rms.test", approval())

    def test_running_sessions_are_listed_and_can_be_ended(self):
        """S291: the panel sees who uses which app since when, and its operator ends it."""
        code, body = self.call("GET", "/v1/sessions")
        self.assertEqual(code, 200)
        [running] = body["sessions"]
        self.assertEqual((running["request_id"], running["user_name"], running["app_id"],
                          running["since_us"]), ("r" * 22, "Alice", "web-server", T0 * S))
        code, body = self.call("POST", f"/v1/sessions/{'r' * 22}/end", {"operator": "olga"})
        self.assertEqual((code, body["status"]), (200, "ending"))
        self.assertEqual(self.links.ended, [("r" * 22, "olga")])
        self.assertEqual(self.call("POST", f"/v1/sessions/{'x' * 22}/end",
                                   {"operator": "olga"})[0], 404)
        self.assertEqual(self.call("POST", f"/v1/sessions/{'r' * 22}/end",
                                   {"operator": "olga"}, secret=None)[0], 401)

    def call(self, method, path, body=None, secret=SECRET):
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Panel-Secret"] = secret
        response = self.successResultOf(self.http.request(
            method, "http://agent" + path, headers=headers,
            data=json.dumps(body).encode() if body is not None else None))
        return response.code, json.loads(self.successResultOf(response.content()))

    def test_the_panel_says_which_firmware_runs(self):
        """PUT /v1/device: the version goes to the agent; a bad one is refused."""
        said = []
        http = StubTreq(PanelChannel(self.approvals, SECRET, self.links,
                                     on_description=lambda *a: said.append(a)).resource())
        self.http = http
        self.assertEqual(self.call("PUT", "/v1/device", {"firmware_version": "4.2.1"}),
                         (200, {"status": "noted"}))
        self.assertEqual(self.call("PUT", "/v1/device", {"firmware_version": "4 2"})[0], 400)
        self.assertEqual(self.call("PUT", "/v1/device", {"firmware_version": "5"},
                                   secret=None)[0], 401)
        self.assertEqual(said, [("4.2.1", (), None)])
        settings = [{"name": "sleep_minutes", "kind": "int", "minimum": 1, "maximum": 240},
                    {"name": "language", "kind": "choice", "choices": ["en", "de"]}]
        self.assertEqual(self.call("PUT", "/v1/device", {"firmware_version": "4.2.1",
                                                         "settings": settings,
                                                         "settings_version": 2})[0], 200)
        self.assertEqual([s.name for s in said[-1][1]], ["sleep_minutes", "language"])
        for bad in ([{"name": "x", "kind": "int"}], [{"name": "x", "kind": "bool", "y": 1}],
                    [settings[0], settings[0]], "all", [{"name": "X Y", "kind": "bool"}]):
            code, body = self.call("PUT", "/v1/device", {"firmware_version": "4.2.1",
                                                         "settings": bad})
            self.assertEqual((code, body["field"]), (400, "settings"), bad)

    def test_lists_pending_requests(self):
        """The panel sees who asks, from which unit, for which app."""
        code, body = self.call("GET", "/v1/approvals")
        self.assertEqual(code, 200)
        self.assertEqual(body["approvals"][0]["user_name"], "Alice")

    def test_answer_goes_through(self):
        """An answer with the secret is taken and sent."""
        code, body = self.call("POST", f"/v1/approvals/{'r' * 22}",
                               {"answer": "yes", "operator": "olga"})
        self.assertEqual((code, body["status"]), (200, "sent"))
        self.assertEqual(self.sent[0][1].operator, "olga")

    def test_without_the_secret_nothing_happens(self):
        """No secret or a wrong one: 401, and the request is still pending."""
        for secret in (None, "wrong" * 8):
            code, body = self.call("POST", f"/v1/approvals/{'r' * 22}",
                                   {"answer": "yes", "operator": "mallory"}, secret=secret)
            self.assertEqual((code, body["code"]), (401, "unauthenticated"))
            code, _ = self.call("GET", "/v1/approvals", secret=secret)
            self.assertEqual(code, 401)
        self.assertEqual(self.sent, [])

    def test_answer_errors(self):
        """Unknown request 404, second answer 409, bad body 400."""
        self.assertEqual(self.call("POST", f"/v1/approvals/{'x' * 22}",
                                   {"answer": "yes", "operator": "o"})[0], 404)
        self.assertEqual(self.call("POST", "/v1/approvals/bad",
                                   {"answer": "yes", "operator": "o"})[0], 404)
        self.call("POST", f"/v1/approvals/{'r' * 22}", {"answer": "no", "operator": "o"})
        self.assertEqual(self.call("POST", f"/v1/approvals/{'r' * 22}",
                                   {"answer": "yes", "operator": "o"})[0], 409)
        self.assertEqual(self.call("POST", f"/v1/approvals/{'r' * 22}",
                                   {"answer": "maybe", "operator": "o"})[0], 400)
