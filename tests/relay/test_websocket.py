"""Tests for remotecomm.relay.websocket: the endpoints over real loopback sockets."""

from pathlib import Path

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from remotecomm.json_http import make_site
from remotecomm.relay import core as rc, envelope as env
from remotecomm.relay.client import RelayClient, RelayClosed
from remotecomm.relay.gateway import Admission, AdmissionRefused
from remotecomm.relay.logs import RELAY_MIGRATIONS, LogOutbox
from remotecomm.relay.websocket import (HANDSHAKE_ATTRIBUTES, RelayServerProtocol, SiteRoot,
                                        relay_resource)
from remotecomm.store.engine import Store, migrate, open_sqlite
from remotecomm.testing.http import http_client
from remotecomm.tokens import token_hash

SESSION_ID = "S" * 32
DEVICE_TOKEN = "d" * 43
TERMINAL_TOKEN = "t" * 43


class FakeManager:
    """Confirms the two tokens above once each; files logs in memory."""

    def __init__(self):
        self.used = set()
        self.logs = {}
        self.refusals = []
        self.ends = []

    def authenticate(self, request):
        token = {"device": DEVICE_TOKEN, "terminal": TERMINAL_TOKEN}[request.side]
        if request.session_id != SESSION_ID:
            raise AdmissionRefused("unknown-session", "no such session")
        if request.token_hash != token_hash(token):
            raise AdmissionRefused("wrong-token", "no")
        if request.side in self.used:
            raise AdmissionRefused("token-used", "used")
        self.used.add(request.side)
        far = int((reactor.seconds() + 3600) * 1e6)
        return succeed(Admission(session_id=request.session_id, side=request.side,
                                 request_id="R" * 22, party_id=request.side,
                                 app_id="web-server", pairing_deadline_us=far,
                                 lifetime_deadline_us=far))

    def file_log(self, entry):
        self.logs[entry.key] = entry
        return succeed(None)

    def record_refusal(self, request):
        self.refusals.append(request)
        return succeed(None)

    def end_session(self, request):
        self.ends.append(request)
        return succeed(None)


class EndpointTests(TestCase):
    """The endpoints admit, forward and refuse as the core decides."""

    timeout = 20

    async def setUp(self):
        engine = open_sqlite(Path(self.mktemp()) / "relay.sqlite3")
        migrate(engine, location=RELAY_MIGRATIONS)
        store = Store(engine, reactor)
        store.start()
        self.addCleanup(store.stop)
        self.manager = FakeManager()
        self.core = rc.RelayCore(reactor, self.manager, LogOutbox(store, self.manager, reactor,
                                                                  "relay-1"))
        site = make_site(SiteRoot(Resource(), relay_resource(self.core)))
        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(self.port.stopListening)
        self.url = f"ws://127.0.0.1:{self.port.getHost().port}/relay"

    def client(self, side, token, frames):
        return RelayClient(reactor, self.url, side, SESSION_ID, token, None, frames.append)

    async def test_paired_sides_exchange_frames(self):
        """Device and terminal join; frames go through unchanged both ways."""
        device_frames, terminal_frames = [], []
        device = self.client("device", DEVICE_TOKEN, device_frames)
        terminal = self.client("terminal", TERMINAL_TOKEN, terminal_frames)
        await device.connect()
        device.send(env.encode_hello({"from": "device"}))
        await terminal.connect()
        # Once open, the relay's protocols keep nothing of the handshake (memory per idle
        # session), and everything below still works.
        for protocol in self.core._by_connection:
            for name in HANDSHAKE_ATTRIBUTES:
                self.assertFalse(hasattr(protocol, name), name)
        request = env.encode_open(1, "web-server", SESSION_ID, b"GET / HTTP/1.1\r\n\r\n")
        terminal.send(request)
        big = env.encode_data(1, b"x" * 700_000)
        terminal.send(big)
        for _ in range(100):
            if len(device_frames) == 2 and terminal_frames:
                break
            await _sleep(0.05)
        self.assertEqual(device_frames, [request, big])
        self.assertEqual(env.decode(terminal_frames[0]).info, {"from": "device"})
        ended = await terminal.end()
        self.assertEqual(ended.code, 1000)
        self.assertEqual(self.manager.ends[0].side, "terminal")
        await device.end()
        await _sleep(0.2)
        self.assertEqual(sorted(self.manager.logs),
                         [f"{SESSION_ID}:device:ended", f"{SESSION_ID}:device:started",
                          f"{SESSION_ID}:terminal:ended", f"{SESSION_ID}:terminal:started"])
        self.assertEqual({b.reason for k, b in self.manager.logs.items() if "ended" in k},
                         {"normal"})

    async def test_slow_reader_pauses_the_sender(self):
        """A device that stops reading makes the relay stop reading from the terminal."""
        device = self.client("device", DEVICE_TOKEN, [])
        terminal = self.client("terminal", TERMINAL_TOKEN, [])
        await device.connect()
        await terminal.connect()
        device._protocol.transport.pauseProducing()
        chunk = env.encode_data(1, b"x" * env.MAX_DATA)
        relay_terminal = next(c for c, (s, side) in self.core._by_connection.items()
                              if side == "terminal")
        for _ in range(64):
            terminal.send(chunk)
            await _sleep(0.01)
            if relay_terminal.transport not in reactor.getReaders():
                break
        self.assertNotIn(relay_terminal.transport, reactor.getReaders())
        device._protocol.transport.resumeProducing()
        for _ in range(200):
            if relay_terminal.transport in reactor.getReaders():
                break
            await _sleep(0.02)
        self.assertIn(relay_terminal.transport, reactor.getReaders())
        await terminal.end()
        await device.end()

    async def assertClosedWith(self, client: RelayClient, code: int):
        with self.assertRaises(RelayClosed) as e:
            await client.connect()
        self.assertEqual(e.exception.code, code)

    async def test_wrong_token_is_closed_with_its_code(self):
        """A refused token closes with 4401 before anything is forwarded."""
        await self.assertClosedWith(self.client("device", TERMINAL_TOKEN, []),
                                    rc.CLOSE_TOKEN_REFUSED)

    async def test_every_browser_origin_is_refused_at_the_handshake(self):
        """Hardening, issue 18 #5: any Origin (a foreign one, ``null``) is answered 403 and
        never upgraded -- not 101 and a close -- and audited."""
        for origin in ("https://evil.example", "null"):
            response = await http_client(reactor).get(
                self.url.replace("ws://", "http://") + "/device", timeout=5, headers={
                    "Origin": origin, "Upgrade": "websocket", "Connection": "Upgrade",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Version": "13", "Sec-WebSocket-Protocol": env.SUBPROTOCOL,
                    "X-Remotecomm-Session": SESSION_ID, "X-Remotecomm-Token": DEVICE_TOKEN})
            self.assertEqual(response.code, 403, origin)
            self.assertEqual(await response.content(),
                             b"browsers may not connect to the relay\n")
        self.assertEqual([r.code for r in self.manager.refusals], ["origin-refused"] * 2)
        # Hardening, issue 18 #4: credentials in a second place (the query, a cookie): 400.
        for suffix, extra in (("?token=" + DEVICE_TOKEN, {}),
                              ("", {"Cookie": "token=" + DEVICE_TOKEN})):
            response = await http_client(reactor).get(
                self.url.replace("ws://", "http://") + "/device" + suffix, timeout=5,
                headers=dict(extra, **{"Upgrade": "websocket", "Connection": "Upgrade",
                                       "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                       "Sec-WebSocket-Version": "13",
                                       "X-Remotecomm-Session": SESSION_ID,
                                       "X-Remotecomm-Token": DEVICE_TOKEN}))
            self.assertEqual(response.code, 400, suffix)
            await response.content()
        self.assertEqual(self.manager.refusals[0].session_id, SESSION_ID)
        self.assertEqual(self.core.refusals, 2)

    async def test_a_guessing_address_is_shed_before_the_handshake(self):
        """Hardening, issue 18 #2: after 10 refused joins from one address within a minute,
        its next connections are answered 429 before anything is examined: nothing more
        reaches the manager or its audit."""
        for _ in range(rc.REFUSALS_PER_SOURCE):
            closed = await raw_connect(self.url + "/device", [env.SUBPROTOCOL],
                                       {"X-Remotecomm-Session": SESSION_ID,
                                        "X-Remotecomm-Token": "w" * 43})
            self.assertEqual(closed[0], rc.CLOSE_TOKEN_REFUSED)
        asked = len(self.manager.refusals)
        response = await http_client(reactor).get(
            self.url.replace("ws://", "http://") + "/device", timeout=5, headers={
                "Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Protocol": env.SUBPROTOCOL,
                "X-Remotecomm-Session": SESSION_ID, "X-Remotecomm-Token": DEVICE_TOKEN})
        self.assertEqual((response.code, response.headers.getRawHeaders("retry-after")),
                         (429, ["60"]))
        await response.content()
        self.assertEqual((len(self.manager.refusals), self.core.refusals_shed), (asked, 1))

    async def test_unknown_subprotocol_version_is_refused(self):
        """A client speaking envelope version 2 is closed with 4426."""
        closed = await raw_connect(self.url + "/device", ["remotecomm.envelope.2"],
                                   {"X-Remotecomm-Session": SESSION_ID,
                                    "X-Remotecomm-Token": DEVICE_TOKEN})
        self.assertIn(closed[0], (rc.CLOSE_VERSION, 1006))
        self.assertEqual(self.manager.refusals[0].code, "unsupported-version")

    async def test_missing_headers_are_refused(self):
        """Without session and token headers: 4400."""
        closed = await raw_connect(self.url + "/terminal", [env.SUBPROTOCOL], {})
        self.assertEqual(closed[0], rc.CLOSE_BAD_HANDSHAKE)

    async def test_oversized_message_is_refused(self):
        """A message above the limit closes the connection (1009) and forwards nothing."""
        device_frames = []
        device = self.client("device", DEVICE_TOKEN, device_frames)
        await device.connect()
        terminal = self.client("terminal", TERMINAL_TOKEN, [])
        await terminal.connect()
        terminal._protocol.maxMessagePayloadSize = 0  # let the client send what the relay refuses
        terminal._protocol.maxFramePayloadSize = 0
        terminal._protocol.sendMessage(b"\x01\x02\x00\x00\x00\x01" + b"x" * (env.MAX_FRAME +
                                                                          env.MAX_HEAD),
                                       isBinary=True)
        ended = await terminal.closed
        self.assertEqual(ended.code, 1009)
        self.assertEqual(device_frames, [])
        dropped = await device.closed
        self.assertEqual(dropped.code, rc.CLOSE_PARTNER_DROPPED)
        self.assertEqual(self.manager.ends, [])


async def _sleep(seconds):
    from twisted.internet.task import deferLater
    await deferLater(reactor, seconds, lambda: None)


async def raw_connect(url, protocols, headers):
    """Connect a bare autobahn client; the (code, reason) it was closed with."""
    closed = Deferred()

    class Probe(WebSocketClientProtocol):
        def onClose(self, wasClean, code, reason):
            if not closed.called:
                closed.callback((code, reason))

    factory = WebSocketClientFactory(url, protocols=protocols, headers=headers)
    factory.protocol = Probe
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    await TCP4ClientEndpoint(reactor, parts.hostname, parts.port).connect(factory)
    return await closed


class ForwardedFrameTests(SynchronousTestCase):
    """The relay writes forwarded frames itself: RFC 6455 headers at every length class."""

    def sent(self, length: int) -> bytes:
        protocol = RelayServerProtocol.__new__(RelayServerProtocol)
        protocol.state = RelayServerProtocol.STATE_OPEN
        protocol.transport = StringTransport()
        protocol.send(b"x" * length)
        return protocol.transport.value()

    def test_headers_by_payload_length(self):
        for length, header in ((0, b"\x82\x00"), (125, b"\x82\x7d"),
                               (126, b"\x82\x7e\x00\x7e"), (65535, b"\x82\x7e\xff\xff"),
                               (65536, b"\x82\x7f" + (65536).to_bytes(8, "big"))):
            self.assertEqual(self.sent(length), header + b"x" * length, length)

    def test_nothing_is_sent_once_closing(self):
        protocol = RelayServerProtocol.__new__(RelayServerProtocol)
        protocol.state = RelayServerProtocol.STATE_CLOSING
        protocol.transport = StringTransport()
        protocol.send(b"late")
        self.assertEqual(protocol.transport.value(), b"")
