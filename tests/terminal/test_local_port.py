"""Tests for remotecomm.terminal.local_port and remotecomm.terminal.tunnel: the terminal's local port.

The rules are pure functions.  The exchanges run for real on loopback: an
HTTP client talks to the local port, whose frames go (in order, through the
reactor) to the device side's ``HttpStreams``, which serves the simulated
MFP's ``web-server`` app -- everything but the relay in between.
"""

import hashlib
import json
from collections import deque
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from remotecomm.device.http_streams import HttpStreams
from remotecomm.relay import envelope as env
from remotecomm.simulator.device_state import DeviceState
from remotecomm.simulator.web_server import web_server_site
from remotecomm.terminal import local_port as lp
from remotecomm.terminal.tunnel import TerminalStreams

SESSION = "S" * 32


def access(port: int = 4000) -> lp.LocalAccess:
    return lp.LocalAccess("mfp-1-abcd", port, secret="s3cret", bootstrap_code="c0de")


def headers(**extra) -> list:
    base = [(b"host", b"mfp-1-abcd.localhost:4000"), (b"x-remotecomm-local", b"s3cret")]
    return base + [(name.replace("_", "-").encode(), value.encode())
                   for name, value in extra.items()]


class RuleTests(SynchronousTestCase):
    """Who may use the local port."""

    def test_the_session_host_with_the_access_header_is_forwarded(self):
        self.assertIsNone(lp.check_request(access(), b"GET", b"/", headers()))

    def test_wrong_host_is_refused(self):
        """Other host names (127.0.0.1, another session's) get 421."""
        for host in (b"127.0.0.1:4000", b"mfp-1-zzzz.localhost:4000", b"mfp-1-abcd.localhost"):
            refusal = lp.check_request(access(), b"GET", b"/", [(b"host", host),
                                                                  (b"x-remotecomm-local",
                                                                   b"s3cret")])
            self.assertEqual(refusal.status, 421, host)

    def test_cross_site_requests_are_refused(self):
        """A foreign Origin, or Sec-Fetch-Site cross-site/same-site, gets 403."""
        for extra in ({"origin": "http://evil.example"}, {"origin": "null"},
                      {"origin": "http://mfp-1-zzzz.localhost:4000"},
                      {"sec_fetch_site": "cross-site"}, {"sec_fetch_site": "same-site"}):
            refusal = lp.check_request(access(), b"POST", b"/", headers(**extra))
            self.assertEqual(refusal.status, 403, extra)
        for extra in ({"origin": "http://mfp-1-abcd.localhost:4000"},
                      {"sec_fetch_site": "same-origin"}, {"sec_fetch_site": "none"}):
            self.assertIsNone(lp.check_request(access(), b"POST", b"/", headers(**extra)))

    def test_requests_without_cookie_or_header_are_refused(self):
        host = [(b"host", b"mfp-1-abcd.localhost:4000")]
        for extra in ([], [(b"x-remotecomm-local", b"wrong")],
                      [(b"cookie", b"remotecomm-local=wrong")], [(b"cookie", b"other=s3cret")]):
            self.assertEqual(lp.check_request(access(), b"GET", b"/", host + extra).status, 403)
        self.assertIsNone(lp.check_request(access(), b"GET", b"/", host + [
            (b"cookie", b"a=1; remotecomm-local=s3cret")]))

    def test_bootstrap_url_sets_the_cookie_once(self):
        rules = access()
        host = [(b"host", b"mfp-1-abcd.localhost:4000")]
        first = lp.check_request(rules, b"GET", b"/.remotecomm/bootstrap/c0de", host)
        self.assertEqual(first.status, 303)
        cookie = dict(first.headers)[b"set-cookie"]
        self.assertTrue(cookie.startswith(b"remotecomm-local=s3cret;"))
        self.assertIn(b"HttpOnly", cookie)
        self.assertIn(b"SameSite=Strict", cookie)
        again = lp.check_request(rules, b"GET", b"/.remotecomm/bootstrap/c0de", host)
        self.assertEqual(again.status, 403)

    def test_wrong_bootstrap_code_uses_it_up(self):
        """Guessing is pointless: a wrong code spends the link."""
        rules = access()
        host = [(b"host", b"mfp-1-abcd.localhost:4000")]
        self.assertEqual(lp.check_request(rules, b"GET", b"/.remotecomm/bootstrap/nope",
                                          host).status, 403)
        self.assertEqual(lp.check_request(rules, b"GET", b"/.remotecomm/bootstrap/c0de",
                                          host).status, 303)

    def test_our_secret_never_reaches_the_device(self):
        head = lp.forwarded_head(b"GET", b"/x", [
            (b"host", b"h"), (b"cookie", b"a=1; remotecomm-local=s3cret; b=2"),
            (b"x-remotecomm-local", b"s3cret"), (b"connection", b"keep-alive"),
            (b"expect", b"100-continue")])
        self.assertEqual(head, b"GET /x HTTP/1.1\r\nhost: h\r\ncookie: a=1; b=2\r\n\r\n")

    def test_location_pointing_at_the_app_is_rewritten(self):
        status, reason, fields = lp.parse_response_head(
            b"HTTP/1.1 303 See Other\r\nLocation: http://127.0.0.1:8080/address-book\r\n"
            b"Transfer-Encoding: chunked\r\nX-Other: http://127.0.0.1:8080/\r\n\r\n",
            "http://127.0.0.1:8080", b"http://mfp-1-abcd.localhost:4000")
        self.assertEqual((status, reason), (303, b"See Other"))
        self.assertEqual(fields, [(b"location", b"http://mfp-1-abcd.localhost:4000/address-book"),
                                  (b"x-other", b"http://127.0.0.1:8080/")])

    def test_location_elsewhere_is_left_alone(self):
        _, _, fields = lp.parse_response_head(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:80801/x\r\n\r\n",
            "http://127.0.0.1:8080", b"http://l.localhost:1")
        self.assertEqual(fields, [(b"location", b"http://127.0.0.1:80801/x")])

    def test_session_labels_are_fresh_dns_labels(self):
        first, second = lp.session_label("MFP_0001.Lobby"), lp.session_label("MFP_0001.Lobby")
        self.assertNotEqual(first, second)
        self.assertRegex(first, r"^mfp-0001-lobby-[0-9a-f]{8}$")


class OrderedPipe:
    """Delivers messages one reactor turn later, in order (like a connection)."""

    def __init__(self):
        self.target = None
        self._queue: deque = deque()
        self._scheduled = False
        self.count = 0

    def send(self, message: bytes) -> None:
        self.count += 1
        self._queue.append(message)
        if not self._scheduled:
            self._scheduled = True
            reactor.callLater(0, self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue:
            self.target(self._queue.popleft())


class RawClient(Protocol):
    """A raw HTTP client: send bytes, collect the answer, optionally stop reading."""

    def __init__(self):
        self.received = bytearray()
        self.closed: Deferred = Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.closed.callback(bytes(self.received))


class ExchangeTests(TestCase):
    """Requests through the local port to the device's web-server app."""

    timeout = 30

    async def setUp(self):
        self.state = DeviceState("Lobby MFP", "MFP 9000")
        self.app_port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            web_server_site(self.state, Path(self.mktemp())))
        app_url = f"http://127.0.0.1:{self.app_port.getHost().port}"
        to_device, to_terminal = OrderedPipe(), OrderedPipe()
        self.terminal = TerminalStreams(to_device.send, SESSION, "web-server")
        self.device = HttpStreams(reactor, reactor, SESSION, "web-server",
                                  {"web-server": app_url}, to_terminal.send)
        to_device.target = lambda message: self.device.frame(env.decode(message))
        to_terminal.target = self.terminal.message
        self.to_device = to_device
        self.terminal.message(env.encode_hello({"from": "device", "app": "web-server",
                                                "app_origin": app_url}))
        self.access = lp.LocalAccess("lobby-1234")
        self.factory = lp.LocalPortFactory(reactor, self.access, self.terminal)
        self.local = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            self.factory)
        self.access.port = self.local.getHost().port

    async def tearDown(self):
        self.factory.close_all()
        await self.device.close()
        await self.local.stopListening()
        await self.app_port.stopListening()
        await deferLater(reactor, 0.05, lambda: None)

    async def connect(self) -> RawClient:
        client = RawClient()
        await TCP4ClientEndpoint(reactor, "127.0.0.1", self.access.port).connect(
            Factory.forProtocol(lambda: client))
        return client

    def request(self, method: str, path: str, body: bytes = b"", extra: str = "",
                auth: bool = True) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.access.host.decode()}",
                 "Connection: close"]
        if auth:
            lines.append(f"X-Remotecomm-Local: {self.access.secret}")
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        if extra:
            lines.append(extra)
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def fetch(self, method: str, path: str, body: bytes = b"", **kwargs) -> bytes:
        client = await self.connect()
        client.transport.write(self.request(method, path, body, **kwargs))
        return await client.closed

    @staticmethod
    def split(answer: bytes) -> tuple[bytes, bytes]:
        head, _, body = answer.partition(b"\r\n\r\n")
        return head, body

    async def test_status_page_through_the_local_port(self):
        head, body = self.split(await self.fetch("GET", "/"))
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertIn(b"Lobby MFP", body)
        self.assertIn(b"Toner", body)

    async def test_refusals_are_answered_locally(self):
        """No access header: 403, and nothing was sent to the device."""
        before = self.to_device.count
        head, body = self.split(await self.fetch("GET", "/", auth=False))
        self.assertTrue(head.startswith(b"HTTP/1.1 403"), head)
        self.assertEqual(self.to_device.count, before)

    async def test_bootstrap_then_cookie(self):
        code = self.access.bootstrap_code
        head, _ = self.split(await self.fetch("GET", f"/.remotecomm/bootstrap/{code}",
                                              auth=False))
        self.assertTrue(head.startswith(b"HTTP/1.1 303"), head)
        cookie = [line.split(b":", 1)[1].split(b";")[0].strip()
                  for line in head.split(b"\r\n") if line.lower().startswith(b"set-cookie")][0]
        head, _ = self.split(await self.fetch("GET", "/api/status", auth=False,
                                              extra=f"Cookie: {cookie.decode()}"))
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)

    async def test_redirect_location_points_back_at_the_local_port(self):
        form = b"name=Service&email=service%40example.com"
        head, _ = self.split(await self.fetch(
            "POST", "/address-book", form,
            extra="Content-Type: application/x-www-form-urlencoded"))
        self.assertTrue(head.startswith(b"HTTP/1.1 303"), head)
        self.assertIn(b"location: " + self.access.origin + b"/address-book", head.lower())
        self.assertIn("Service", [c.name for c in self.state.contacts.values()])

    async def test_upload_and_download_stream_byte_for_byte(self):
        """An 8 MiB image (twice the credit window) goes up and comes back intact."""
        image = bytes(range(256)) * (8 * 4096)
        head, body = self.split(await self.fetch("PUT", "/firmware", image,
                                                 extra="Content-Type: application/octet-stream"))
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertEqual(json.loads(body)["sha256"], hashlib.sha256(image).hexdigest())
        head, body = self.split(await self.fetch("GET", "/firmware/image"))
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(image).hexdigest())

    async def test_a_stalled_stream_does_not_stop_another(self):
        """A client that stops reading a large download holds only its own stream."""
        self.app_port.factory.firmware_folder.mkdir(parents=True)
        (self.app_port.factory.firmware_folder / "firmware.bin").write_bytes(
            b"x" * (24 * 1024 * 1024))
        stalled = await self.connect()
        stalled.transport.pauseProducing()
        stalled.transport.write(self.request("GET", "/firmware/image"))
        await deferLater(reactor, 0.5, lambda: None)
        (stream,) = self.terminal.streams.values()
        self.assertLess(stream.response_window.credit, lp.env.INITIAL_WINDOW // 2)
        head, body = self.split(await self.fetch("GET", "/api/status"))
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertFalse(stalled.closed.called)
        stalled.transport.resumeProducing()
        answer = await stalled.closed
        self.assertEqual(len(self.split(answer)[1]), 24 * 1024 * 1024)

    async def test_ten_concurrent_requests(self):
        results = await gatherResults([ensureDeferred(self.fetch("GET", "/api/status"))
                                       for _ in range(10)])
        self.assertEqual([r.split(b"\r\n")[0] for r in results], [b"HTTP/1.1 200 OK"] * 10)

    async def test_client_disconnecting_mid_body_abandons_the_upload(self):
        """The device's app sees the upload broken off; the session stays usable."""
        client = await self.connect()
        client.transport.write(self.request("PUT", "/firmware", b"")
                               .replace(b"Content-Length: 0", b"Content-Length: 10000000")
                               + b"y" * 300_000)
        uploads = self.app_port.factory.uploads
        for _ in range(100):
            if uploads and next(iter(uploads)).received:
                break
            await deferLater(reactor, 0.02, lambda: None)
        self.assertTrue(uploads, "the upload never reached the app")
        client.transport.abortConnection()
        for _ in range(100):
            if not uploads:
                break
            await deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(uploads, set())
        folder = self.app_port.factory.firmware_folder
        self.assertEqual([p.name for p in folder.iterdir()], [])
        head, _ = self.split(await self.fetch("GET", "/api/status"))
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)

    async def test_keep_alive_serves_several_requests_on_one_connection(self):
        client = await self.connect()
        one = self.request("GET", "/api/status").replace(b"Connection: close\r\n", b"")
        client.transport.write(one + one + self.request("GET", "/api/status"))
        answer = await client.closed
        self.assertEqual(answer.count(b"HTTP/1.1 200 OK"), 3)

    async def test_malformed_request_gets_400(self):
        client = await self.connect()
        client.transport.write(b"GET / HTTP/1.1\r\nHost: x\r\nBad header\r\n\r\n")
        answer = await client.closed
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer[:60])

    async def test_session_end_answers_waiting_requests(self):
        """When the session ends, a request in flight gets 502, not a hang."""
        self.to_device.target = lambda message: None  # the device never answers
        client = await self.connect()
        client.transport.write(self.request("GET", "/api/status"))
        await deferLater(reactor, 0.1, lambda: None)
        self.terminal.close()
        answer = await client.closed
        self.assertTrue(answer.startswith(b"HTTP/1.1 502"), answer[:60])
