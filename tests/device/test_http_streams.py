"""Tests for remotecomm.device.http_streams: re-framing requests for the device's local apps."""

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import server
from twisted.web.resource import Resource

from remotecomm.device import http_streams as hs
from remotecomm.relay import envelope as env
from remotecomm.testing.processes import free_port

SESSION = "S" * 32


class HeadTests(SynchronousTestCase):
    """Parsing and rewriting the request head."""

    def test_parse(self):
        method, target, headers = hs.parse_request_head(
            b"POST /a?b=1 HTTP/1.1\r\nHost: x.localhost:9000\r\nContent-Length: 3\r\n\r\n")
        self.assertEqual((method, target, headers),
                         (b"POST", b"/a?b=1", [(b"host", b"x.localhost:9000"),
                                               (b"content-length", b"3")]))

    def test_malformed_heads(self):
        """Anything but a clean origin-form HTTP/1.1 head is refused."""
        for head in (b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.0\r\n\r\n",
                     b"GET http://evil/ HTTP/1.1\r\n\r\n", b"BREW / HTTP/1.1\r\n\r\n",
                     b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
                     b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
                     b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n"):
            with self.assertRaises(hs.BadRequest, msg=head[:30]):
                hs.parse_request_head(head)

    def test_rewrite(self):
        """Hop-by-hop headers go, Host/Origin/Referer point at the local app."""
        headers, length = hs.rewrite_request_headers([
            (b"host", b"s1.localhost:9000"), (b"connection", b"keep-alive, x-private"),
            (b"x-private", b"1"), (b"keep-alive", b"5"), (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"h2c"), (b"origin", b"http://s1.localhost:9000"),
            (b"referer", b"http://s1.localhost:9000/status?x=1"), (b"content-length", b"12"),
            (b"cookie", b"a=b")], "http://127.0.0.1:8080")
        self.assertEqual(length, 12)
        self.assertEqual(headers.getRawHeaders(b"host"), [b"127.0.0.1:8080"])
        self.assertEqual(headers.getRawHeaders(b"origin"), [b"http://127.0.0.1:8080"])
        self.assertEqual(headers.getRawHeaders(b"referer"), [b"http://127.0.0.1:8080/status?x=1"])
        self.assertEqual(headers.getRawHeaders(b"cookie"), [b"a=b"])
        for gone in (b"connection", b"x-private", b"keep-alive", b"transfer-encoding",
                     b"upgrade", b"content-length"):
            self.assertIsNone(headers.getRawHeaders(gone), gone)

    def test_conflicting_lengths_are_refused(self):
        """Two different Content-Lengths smell of smuggling."""
        with self.assertRaises(hs.BadRequest):
            hs.rewrite_request_headers([(b"content-length", b"1"), (b"content-length", b"2")],
                                       "http://127.0.0.1:1")

    def test_set_cookie_domain_is_stripped(self):
        """Cookies stay host-only on the terminal's side."""
        self.assertEqual(hs.strip_cookie_domain(b"sid=1; Domain=.mfp.local; Path=/; HttpOnly"),
                         b"sid=1; Path=/; HttpOnly")


class LocalApp(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.requests = []
        self.big = b""

    def render(self, request):
        request.content.seek(0)
        self.requests.append((request.method, request.uri, request.requestHeaders,
                              request.content.read()))
        if request.path == b"/slow":
            return server.NOT_DONE_YET
        if request.path == b"/big":
            return self.big
        request.addCookie(b"sid", b"42", domain=b"mfp.local", path=b"/")
        request.setHeader(b"connection", b"close")
        return b"status: ready\n"


class StreamTests(TestCase):
    """Streams through a real local app on loopback."""

    timeout = 20

    async def setUp(self):
        self.app = LocalApp()
        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            server.Site(self.app))
        self.addCleanup(lambda: self.port.stopListening() if self.port.connected else None)
        self.sent = []
        self.frames_arrived = Deferred()
        apps = {"web-server": f"http://127.0.0.1:{self.port.getHost().port}",
                "remote-panel": f"http://127.0.0.1:{free_port()}"}
        self.streams = hs.HttpStreams(reactor, reactor, SESSION, "web-server", apps,
                                      self.sent.append)
        self.addCleanup(self.streams.close)

    def frames(self, stream_id=1):
        return [f for f in map(env.decode, self.sent) if f.stream_id == stream_id]

    async def until(self, done, timeout=5):
        for _ in range(int(timeout / 0.02)):
            if done():
                return
            await deferLater(reactor, 0.02, lambda: None)
        self.fail(f"not done within {timeout} s: {[ (f.kind, f.data[:40]) for f in map(env.decode, self.sent)]}")

    def open(self, head, app="web-server", stream_id=1, body=b"", end=True):
        self.streams.frame(env.decode(env.encode_open(stream_id, app, SESSION, head)))
        if body:
            self.streams.frame(env.decode(env.encode_data(stream_id, body)))
        if end:
            self.streams.frame(env.decode(env.encode_end(stream_id)))

    def ended(self, stream_id=1):
        return any(f.kind in (env.END, env.RESET) for f in self.frames(stream_id))

    async def test_get_is_reframed_and_answered(self):
        """The local app sees a clean request; the answer comes back head first."""
        self.open(b"GET /status HTTP/1.1\r\nHost: s1.localhost:9000\r\n"
                  b"Connection: keep-alive\r\n\r\n")
        await self.until(self.ended)
        method, uri, headers, _ = self.app.requests[0]
        self.assertEqual((method, uri), (b"GET", b"/status"))
        self.assertEqual(headers.getRawHeaders(b"host"),
                         [f"127.0.0.1:{self.port.getHost().port}".encode()])
        head, body, end = self.frames()
        self.assertTrue(head.data.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertIn(b"set-cookie: sid=42; Path=/", head.data)
        self.assertNotIn(b"Domain", head.data)
        self.assertNotIn(b"Connection:", head.data)
        self.assertEqual((body.data, end.kind), (b"status: ready\n", env.END))

    async def test_post_body_reaches_the_app_and_credit_is_returned(self):
        """Body frames are streamed to the app; the terminal gets its credit back in
        batches of at least 64 KiB (a small body needs none back)."""
        body = b"name=olga&" + b"x" * (256 * 1024 - 10)
        self.open(b"POST /address-book HTTP/1.1\r\nHost: s1.localhost:9000\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body), end=False)
        for offset in range(0, len(body), 16 * 1024):
            self.streams.frame(env.decode(env.encode_data(1, body[offset:offset + 16 * 1024])))
            await deferLater(reactor, 0.005, lambda: None)
        self.streams.frame(env.decode(env.encode_end(1)))
        await self.until(self.ended)
        self.assertEqual(self.app.requests[0][3], body)
        windows = [f.increment for f in self.frames() if f.kind == env.WINDOW]
        self.assertTrue(windows)
        self.assertTrue(all(increment >= 64 * 1024 for increment in windows), windows)
        self.assertLessEqual(sum(windows), len(body))
        self.assertGreater(sum(windows), len(body) - 64 * 1024)

    async def test_a_terminal_that_overruns_its_credit_is_reset(self):
        """More request bytes than the credit given: the stream is reset (protocol error)."""
        self.open(b"POST /address-book HTTP/1.1\r\nHost: s1.localhost:9000\r\n\r\n",
                  end=False)
        for _ in range(env.INITIAL_WINDOW // env.MAX_DATA + 1):
            self.streams.frame(env.decode(env.encode_data(1, b"x" * env.MAX_DATA)))
        [reset] = [f for f in self.frames() if f.kind == env.RESET]
        self.assertEqual(reset.code, env.RESET_PROTOCOL)

    async def test_unapproved_and_unknown_apps_are_reset(self):
        """Only the session's approved app, and only apps in the config, are served."""
        self.open(b"GET / HTTP/1.1\r\nHost: s1.localhost:9000\r\n\r\n", app="remote-panel", stream_id=1)
        self.open(b"GET / HTTP/1.1\r\nHost: s1.localhost:9000\r\n\r\n", app="fax", stream_id=3)
        [first], [second] = self.frames(1), self.frames(3)
        self.assertEqual((first.kind, first.code), (env.RESET, env.RESET_REFUSED))
        self.assertEqual((second.kind, second.code), (env.RESET, env.RESET_REFUSED))
        self.assertEqual(self.app.requests, [])

    async def test_an_open_frame_with_a_malformed_app_id_is_reset_at_once(self):
        """Hardening, issue 18 #6: an open frame the device cannot read (app ID
        ``127.0.0.1:22``) gets a reset with a code at once, never silence."""
        good = env.encode_open(5, "web-server", SESSION, b"GET / HTTP/1.1\r\n\r\n")
        app = b"web-server"
        malformed = good.replace(bytes([len(app)]) + app,
                                 bytes([len(b"127.0.0.1:22")]) + b"127.0.0.1:22", 1)
        with self.assertRaises(env.EnvelopeError) as e:
            env.decode(malformed)
        self.assertEqual(e.exception.stream_id, 5)
        self.streams.bad_frame(e.exception)
        [reset] = self.frames(5)
        self.assertEqual((reset.kind, reset.code), (env.RESET, env.RESET_PROTOCOL))
        self.assertEqual((self.streams.errors, self.app.requests), (1, []))

    async def test_malformed_request_gets_400(self):
        """A head that cannot be forwarded is answered 400 on that stream."""
        self.open(b"GET http://elsewhere/ HTTP/1.1\r\nHost: s1.localhost:9000\r\n\r\n")
        head, body, end = self.frames()
        self.assertTrue(head.data.startswith(b"HTTP/1.1 400 Bad Request"))
        self.assertEqual(end.kind, env.END)
        self.assertEqual(self.app.requests, [])

    async def test_app_down_gives_502_and_the_session_stays_usable(self):
        """A refused connection is a 502 on that stream; the next stream still works."""
        number = self.port.getHost().port
        await self.port.stopListening()
        self.open(b"GET / HTTP/1.1\r\nHost: s1.localhost:9000\r\n\r\n")
        await self.until(self.ended)
        self.assertTrue(self.frames()[0].data.startswith(b"HTTP/1.1 502 Bad Gateway"))
        self.port = await TCP4ServerEndpoint(reactor, number,
                                             interface="127.0.0.1").listen(server.Site(self.app))
        self.open(b"GET /status HTTP/1.1\r\nHost: s1.localhost:9000\r\n\r\n", stream_id=3)
        await self.until(lambda: self.ended(3))
        self.assertTrue(self.frames(3)[0].data.startswith(b"HTTP/1.1 200"))
        await self.port.stopListening()

    async def test_silent_app_gives_504(self):
        """An app that never answers: 504 after the response timeout."""
        self.patch(hs, "RESPONSE_TIMEOUT", 0.3)
        self.open(b"GET /slow HTTP/1.1\r\nHost: s1.localhost:9000\r\n\r\n")
        await self.until(self.ended)
        self.assertTrue(self.frames()[0].data.startswith(b"HTTP/1.1 504"))

    async def test_response_respects_the_credit_window(self):
        """Past the window the agent waits for window frames, then finishes."""
        self.app.big = b"z" * (env.INITIAL_WINDOW + 3 * 1024 * 1024)
        self.open(b"GET /big HTTP/1.1\r\nHost: s1.localhost:9000\r\n\r\n")
        await self.until(lambda: sum(len(f.data) for f in self.frames()
                                     if f.kind == env.DATA) >= env.INITIAL_WINDOW)
        await deferLater(reactor, 0.2, lambda: None)
        sent = sum(len(f.data) for f in self.frames() if f.kind == env.DATA)
        self.assertEqual(sent, env.INITIAL_WINDOW)
        self.assertFalse(self.ended())
        self.streams.frame(env.decode(env.encode_window(1, 8 * 1024 * 1024)))
        await self.until(self.ended)
        body = b"".join(f.data for f in self.frames()[1:] if f.kind == env.DATA)
        self.assertEqual(body, self.app.big)

    async def test_terminal_reset_abandons_the_stream(self):
        """A reset from the terminal cancels the local request."""
        self.open(b"GET /slow HTTP/1.1\r\nHost: s1.localhost:9000\r\n\r\n")
        await self.until(lambda: self.app.requests)
        self.streams.frame(env.decode(env.encode_reset(1, env.RESET_CANCELLED)))
        self.assertEqual(self.streams.streams, {})
        await deferLater(reactor, 0.5, lambda: None)  # the aborted connection closes
