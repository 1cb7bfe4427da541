"""The relay ↔ manager seam's contract, run over both transports.

Each contract is a mixin of tests written against the interface alone
(:class:`~remotecomm.relay.gateway.IManagerForRelay` and
:class:`~remotecomm.relay.gateway.IRelayForManager`); each runs twice: on the
in-process implementation, and through the HTTPS client talking to the real
routes on a TLS listener on 127.0.0.1 (as the transit relay's tests run one
mixin over TCP and WebSocket).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from remotecomm.json_http import Router, make_site
from remotecomm.relay import core as rc
from remotecomm.relay.gateway import (Admission, AdmissionRefused, AllocationRequest, EndOrder,
                                      EndRequest, Heartbeat, IManagerForRelay, IRelayForManager,
                                      JoinRequest, LogRejected, NodeDraining, Refusal,
                                      SessionCounters, SessionLog, log_key)
from remotecomm.relay.gateway_http import MANAGER_PREFIX, RELAY_PREFIX
from remotecomm.relay.manager_api import ManagerClient, relay_node_routes
from remotecomm.relay.node import RelayNode
from remotecomm.sessions.messages import EndSession
from remotecomm.sessions.relay_api import ManagerForRelay
from remotecomm.sessions.relays import RelayDirectory
from remotecomm.store.accounts import insert_unit, insert_user, set_user_disabled
from remotecomm.store.audit import audit_records
from remotecomm.store.devices import insert_device, revoke_device
from remotecomm.store.schema import relay_nodes, session_connections, sessions
from remotecomm.testing.fakes import migrated_inline_store
from remotecomm.testing.relay import FakeConnection
from remotecomm.tls import create_ca, issue_certificate, server_tls_options
from remotecomm.tokens import new_token, token_hash
from remotecomm.web.relay_api import RelayNodeClient, manager_routes

S = 1_000_000
SECRET = "s" * 40
SESSION_ID = "S" * 32
REQUEST_ID = "R" * 22


class FakeDevices:
    """The XMPP side of the manager: records what would go to devices."""

    def __init__(self):
        self.sent = []

    def send(self, device_id, message):
        self.sent.append((device_id, message))
        return succeed(None)


class HttpsListener:
    """The given routes on a TLS listener on 127.0.0.1 with a CA of its own."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca = folder / "ca.pem"
        create_ca(self.ca, folder / "ca.key", "contract test CA", now)
        issue_certificate(self.ca, folder / "ca.key", folder / "server.pem",
                          folder / "server.key", ["127.0.0.1"], now)
        self._options = server_tls_options(folder / "server.pem", folder / "server.key",
                                           "modern")
        self._port = None

    async def serve(self, routes) -> str:
        endpoint = SSL4ServerEndpoint(reactor, 0, self._options, interface="127.0.0.1")
        self._port = await endpoint.listen(make_site(Router(routes)))
        return f"https://127.0.0.1:{self._port.getHost().port}"

    def stop(self):
        return self._port.stopListening() if self._port is not None else None


# -- relay → manager ------------------------------------------------------------------------


class ManagerForRelayContract:
    """What every IManagerForRelay must do; ``self.subject`` is the one under test."""

    subject: IManagerForRelay

    def build_manager(self) -> ManagerForRelay:
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.tokens = {"device": new_token(), "terminal": new_token()}
        now = int(reactor.seconds() * S)
        self.store.run_sync(lambda c: c.execute(sessions.insert().values(
            request_id=REQUEST_ID, state="approved", unit_id="acme", user_id="alice",
            terminal_id="t-" + "1" * 32, device_id="mfp-1", app_id="web-server",
            relay_node="relay-1", session_id=SESSION_ID,
            device_token_hash=token_hash(self.tokens["device"]),
            terminal_token_hash=token_hash(self.tokens["terminal"]),
            terminal_token_delivered=True, approver="olga", approved_by_test_approver=False,
            requested_us=now, join_deadline_us=now + 60 * S,
            lifetime_deadline_us=now + 3600 * S, idle_timeout_us=300 * S)))
        self.devices = FakeDevices()
        self.relays = RelayDirectory(self.store, reactor, lambda name, url: None)
        return ManagerForRelay(self.store, reactor, self.devices, self.relays)

    def join_request(self, side="device", token=None, session_id=SESSION_ID) -> JoinRequest:
        return JoinRequest(session_id=session_id, side=side,
                           token_hash=token_hash(token or self.tokens[side]),
                           source_address="127.0.0.9")

    def state(self) -> str:
        return self.store.run_sync(lambda c: c.execute(sessions.select()).first()).state

    def log(self, side: str, kind: str, **ended) -> SessionLog:
        return SessionLog(key=log_key(SESSION_ID, side, kind), kind=kind,
                          session_id=SESSION_ID, request_id=REQUEST_ID, side=side,
                          party_id="mfp-1" if side == "device" else "t-" + "1" * 32,
                          at_us=int(reactor.seconds() * S), relay_node="relay-1", **ended)

    async def test_a_side_with_its_token_is_admitted(self):
        """S173–S175: the admission names the session, the side and its deadlines."""
        admission = await self.subject.authenticate(self.join_request("terminal"))
        self.assertIsInstance(admission, Admission)
        self.assertEqual((admission.session_id, admission.side, admission.request_id,
                          admission.party_id, admission.app_id, admission.idle_timeout_us),
                         (SESSION_ID, "terminal", REQUEST_ID, "t-" + "1" * 32, "web-server",
                          300 * S))

    async def test_refusals_carry_a_stable_code_and_are_audited(self):
        """Unknown session, wrong token, the other side's token, a reused token."""
        await self.subject.authenticate(self.join_request("device"))
        cases = [(self.join_request("device", session_id="X" * 32), "unknown-session"),
                 (self.join_request("device", token=new_token()), "wrong-token"),
                 (self.join_request("device", token=self.tokens["terminal"]), "wrong-side"),
                 (self.join_request("device"), "token-used")]
        for request, code in cases:
            with self.assertRaises(AdmissionRefused) as refused:
                await self.subject.authenticate(request)
            self.assertEqual(refused.exception.code, code)
        audited = self.store.run_sync(audit_records, "relay-admission-refused")
        self.assertEqual([r["detail"]["reason"] for r in audited], [c for _, c in cases])
        self.assertEqual({r["source_address"] for r in audited}, {"127.0.0.9"})

    async def test_a_revoked_device_or_disabled_user_is_refused(self):
        """From the moment of revocation the relay admits neither side (code revoked)."""
        self.store.run_sync(insert_unit, "acme", "ACME", "UTC", 0)
        self.store.run_sync(insert_user, "alice", "Alice", "x", "acme", "technician", 0)
        self.store.run_sync(insert_device, "mfp-1", "acme", "mfp-1", "M", 0)
        self.store.run_sync(set_user_disabled, "alice", True)
        with self.assertRaises(AdmissionRefused) as refused:
            await self.subject.authenticate(self.join_request("device"))
        self.assertEqual(refused.exception.code, "revoked")
        self.store.run_sync(set_user_disabled, "alice", False)
        self.store.run_sync(revoke_device, "mfp-1", 1)
        with self.assertRaises(AdmissionRefused) as refused:
            await self.subject.authenticate(self.join_request("terminal"))
        self.assertEqual((refused.exception.code, refused.exception.reason),
                         ("revoked", "this session's device is revoked"))

    async def test_a_heartbeat_registers_the_node_and_its_live_counters(self):
        """The node table learns the node; connections that have not ended get the bytes."""
        await self.subject.authenticate(self.join_request("device"))
        await self.subject.heartbeat(Heartbeat(
            relay_node="relay-9", api_url="https://relay-9.test:8443",
            public_url="wss://relay-9.test:8443/relay", state="active", open_sessions=1,
            counters=(SessionCounters(session_id=SESSION_ID, side="device",
                                      bytes_from_side=1234, bytes_to_side=56),)))
        (node,) = self.store.run_sync(lambda c: c.execute(relay_nodes.select()).all())
        self.assertEqual((node.node, node.api_url, node.state, node.open_sessions),
                         ("relay-9", "https://relay-9.test:8443", "active", 1))
        record = self.store.run_sync(lambda c: c.execute(
            session_connections.select()).first())
        self.assertEqual((record.bytes_from_side, record.bytes_to_side), (1234, 56))

    async def test_a_refusal_the_relay_made_itself_is_audited(self):
        await self.subject.record_refusal(Refusal(code="origin-refused", side="device",
                                                  source_address="127.0.0.8"))
        [record] = self.store.run_sync(audit_records, "relay-admission-refused")
        self.assertEqual((record["source_address"], record["detail"]["reason"]),
                         ("127.0.0.8", "origin-refused"))

    async def test_logs_are_filed_once_and_move_the_session(self):
        """Both started logs make it active, both end logs end it; repeats change nothing."""
        for side in ("device", "terminal"):
            await self.subject.authenticate(self.join_request(side))
            await self.subject.file_log(self.log(side, "started"))
        await self.subject.file_log(self.log("device", "started"))
        self.assertEqual(self.state(), "active")
        for side in ("device", "terminal"):
            for _ in range(2):
                await self.subject.file_log(self.log(side, "ended", normal=True,
                                                     reason="normal", bytes_from_side=10,
                                                     bytes_to_side=20))
        row = self.store.run_sync(lambda c: c.execute(sessions.select()).first())
        self.assertEqual((row.state, row.end_reason), ("ended", "normal"))

    async def test_a_log_for_no_known_session_is_rejected(self):
        """The manager will never file it: LogRejected names its key."""
        entry = SessionLog(key=log_key("X" * 32, "device", "started"), kind="started",
                           session_id="X" * 32, request_id="Q" * 22, side="device",
                           party_id="mfp-1", at_us=1, relay_node="relay-1")
        with self.assertRaises(LogRejected) as rejected:
            await self.subject.file_log(entry)
        self.assertEqual(rejected.exception.key, entry.key)

    async def test_an_end_request_goes_to_the_device(self):
        """S264–S265: the manager asks the device to end its side."""
        await self.subject.end_session(EndRequest(session_id=SESSION_ID,
                                                  request_id=REQUEST_ID, side="terminal"))
        self.assertEqual(self.devices.sent, [("mfp-1", EndSession(request_id=REQUEST_ID,
                                                                  session_id=SESSION_ID))])


class ManagerForRelayInProcessTests(ManagerForRelayContract, TestCase):
    """The contract on the manager's own object (``--role both``)."""

    def setUp(self):
        self.subject = self.build_manager()


class ManagerForRelayOverHttpsTests(ManagerForRelayContract, TestCase):
    """The contract through the relay's HTTPS client and the manager's real routes."""

    async def setUp(self):
        listener = HttpsListener(Path(self.mktemp()))
        url = await listener.serve(manager_routes(self.build_manager(), SECRET))
        self.addCleanup(listener.stop)
        self.subject = ManagerClient(reactor, url, listener.ca, SECRET)
        self.addCleanup(self.subject.close)
        self.url, self.ca = url, listener.ca

    async def test_callers_without_the_secret_are_refused(self):
        """401 for no secret or a wrong one; nothing is filed or audited."""
        for headers in ({}, {"Authorization": "Bearer " + "x" * 40}):
            response = await treq.post(self.url + MANAGER_PREFIX + "/refusals",
                                       json={"code": "x"}, headers=headers,
                                       agent=self.subject._http._agent)
            self.assertEqual(response.code, 401)
            self.assertEqual((await response.json())["code"], "unauthenticated")
        self.assertEqual(self.store.run_sync(audit_records, "relay-admission-refused"), [])

    async def test_malformed_messages_are_answered_400_with_the_field(self):
        """A raw token instead of its hash, an unknown field, a bad side: 400, never a 500."""
        good = self.join_request().to_json()
        bad = [dict(good, token_hash=self.tokens["device"]),
               dict(good, token=self.tokens["device"]),
               dict(good, side="printer")]
        for body in bad:
            response = await treq.post(self.url + MANAGER_PREFIX + "/authenticate",
                                       json=body, headers={"Authorization": "Bearer " + SECRET},
                                       agent=self.subject._http._agent)
            answer = await response.json()
            self.assertEqual((response.code, answer["code"]), (400, "invalid-message"),
                             answer)
        self.assertEqual(self.store.run_sync(
            lambda c: c.execute(sessions.select()).first()).state, "approved")


# -- manager → relay ------------------------------------------------------------------------


@implementer(IManagerForRelay)
class AdmitAll:
    """A manager that admits every well-formed join (for the relay's side of the contract)."""

    def authenticate(self, request: JoinRequest):
        far = int((reactor.seconds() + 3600) * S)
        return succeed(Admission(session_id=request.session_id, side=request.side,
                                 request_id=REQUEST_ID, party_id=request.side,
                                 app_id="web-server", pairing_deadline_us=far,
                                 lifetime_deadline_us=far))

    def record_refusal(self, refusal):
        return succeed(None)

    def file_log(self, entry):
        return succeed(None)

    def end_session(self, request):
        return succeed(None)


class MemoryLogs:
    """The relay's outbox, in memory."""

    def __init__(self):
        self.ended_reasons = {}

    def started(self, admission, at_us):
        return succeed(None)

    def ended(self, admission, at_us, normal, reason, bytes_from_side, bytes_to_side,
              refused_frames=0, detail=None):
        self.ended_reasons[admission.side] = (normal, reason)
        return succeed(None)


class RelayForManagerContract:
    """What every IRelayForManager must do; ``self.subject`` is the one under test."""

    subject: IRelayForManager

    def build_node(self) -> RelayNode:
        self.logs = MemoryLogs()
        self.core = rc.RelayCore(reactor, AdmitAll(), self.logs)
        self.addCleanup(self.core.shutdown)
        self.node = RelayNode(self.core, "relay-7", "wss://relay-7.test/relay")
        return self.node

    def request(self, n=0) -> AllocationRequest:
        return AllocationRequest(request_id=f"request-{n:016d}", device_id="mfp-1",
                                 terminal_id="t-" + "1" * 32, app_id="web-server")

    async def test_the_relay_makes_a_fresh_session_id_for_every_allocation(self):
        """S146–S147: a new ID every time, with the node and its public URL."""
        answers = [await self.subject.allocate(self.request(n % 2)) for n in range(20)]
        self.assertEqual(len({a.session_id for a in answers}), 20)
        self.assertEqual({(a.relay_node, a.relay_url) for a in answers},
                         {("relay-7", "wss://relay-7.test/relay")})
        self.assertRegex(answers[0].session_id, r"^[A-Za-z0-9_-]{32}$")

    async def test_ending_a_session_closes_both_sides_with_the_reason(self):
        allocation = await self.subject.allocate(self.request())
        sides = {side: FakeConnection(side) for side in ("device", "terminal")}
        for side, connection in sides.items():
            await self.core.join(connection, allocation.session_id, side, new_token(),
                                 "127.0.0.9")
        result = await self.subject.end_session(EndOrder(session_id=allocation.session_id,
                                                         reason="revoked"))
        self.assertEqual((result.session_id, result.was_open), (allocation.session_id, True))
        for side, connection in sides.items():
            self.assertEqual(connection.closed_with[0], rc.CLOSE_SESSION_ENDED)
            self.core.closed(connection, normal_request=False)
        self.assertEqual(self.logs.ended_reasons, {"device": (False, "revoked"),
                                                   "terminal": (False, "revoked")})

    async def test_ending_a_session_it_does_not_have_says_so(self):
        result = await self.subject.end_session(EndOrder(session_id="Z" * 32, reason="revoked"))
        self.assertFalse(result.was_open)

    async def test_a_draining_node_takes_no_new_sessions(self):
        """After drain: NodeDraining for new allocations; the report counts what runs."""
        allocation = await self.subject.allocate(self.request())
        await self.core.join(FakeConnection(), allocation.session_id, "device", new_token(),
                             "127.0.0.9")
        report = await self.subject.drain()
        self.assertEqual((report.relay_node, report.open_sessions), ("relay-7", 1))
        with self.assertRaises(NodeDraining):
            await self.subject.allocate(self.request(1))

    async def test_a_resumed_node_takes_new_sessions_again(self):
        await self.subject.drain()
        report = await self.subject.resume()
        self.assertEqual(report.relay_node, "relay-7")
        allocation = await self.subject.allocate(self.request(2))
        self.assertEqual(allocation.relay_node, "relay-7")


class RelayForManagerInProcessTests(RelayForManagerContract, TestCase):
    """The contract on the relay node itself (``--role both``)."""

    def setUp(self):
        self.subject = self.build_node()


class RelayForManagerOverHttpsTests(RelayForManagerContract, TestCase):
    """The contract through the manager's HTTPS client and the relay's real routes."""

    async def setUp(self):
        listener = HttpsListener(Path(self.mktemp()))
        url = await listener.serve(relay_node_routes(self.build_node(), SECRET))
        self.addCleanup(listener.stop)
        self.subject = RelayNodeClient(reactor, url, listener.ca, SECRET)
        self.addCleanup(self.subject.close)
        self.url = url

    async def test_callers_without_the_secret_are_refused(self):
        """401, and nothing is allocated."""
        response = await treq.post(self.url + RELAY_PREFIX + "/allocate",
                                   json=self.request().to_json(),
                                   headers={"Authorization": "Bearer " + "x" * 40},
                                   agent=self.subject._http._agent)
        self.assertEqual(response.code, 401)
        await response.content()
        self.assertEqual(len(self.node.allocated), 0)

    async def test_malformed_allocation_requests_are_answered_400(self):
        body = dict(self.request().to_json(), device_id="../etc")
        response = await treq.post(self.url + RELAY_PREFIX + "/allocate", json=body,
                                   headers={"Authorization": "Bearer " + SECRET},
                                   agent=self.subject._http._agent)
        answer = await response.json()
        self.assertEqual((response.code, answer["code"], answer["field"]),
                         (400, "invalid-message", "device_id"))
        self.assertEqual(len(self.node.allocated), 0)
