"""Tests for remotecomm.json_http on a real loopback listener."""

import json

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from remotecomm.json_http import MAX_JSON_BODY, Route, Router, make_site, read_json
from remotecomm.testing.http import http_client


async def echo(request):
    return 200, {"fields": sorted(read_json(request))}


class BodyLimitTests(TestCase):
    """Request bodies are capped before they are stored."""

    async def setUp(self):
        site = make_site(Router([Route("/echo", post=echo)]))
        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(self.port.stopListening)
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/echo"

    async def post(self, data, **kwargs):
        response = await http_client(reactor).post(self.url, data=data, headers={
            "Content-Type": "application/json"}, timeout=5, **kwargs)
        return response.code, json.loads(await response.content())

    async def test_small_body_is_read(self):
        """A normal JSON body reaches the handler."""
        self.assertEqual(await self.post(b'{"a": 1}'), (200, {"fields": ["a"]}))

    async def test_deeply_nested_bodies_are_400_not_a_traceback(self):
        """60,000 brackets under the size cap (hardening, issue 18 #1): a stable 400, never a
        RecursionError; brackets inside strings do not count, a normal depth passes."""
        for body in (b"[" * 60000, b'{"a": ' * 33 + b"1" + b"}" * 33):
            status, answer = await self.post(body)
            self.assertEqual((status, answer["code"]), (400, "too-deep"))
        deep_text = b'{"a": "' + b"[" * 1000 + b'"}'
        self.assertEqual(await self.post(deep_text), (200, {"fields": ["a"]}))
        self.assertEqual(await self.post(b'{"a": ' * 31 + b"1" + b"}" * 31),
                         (200, {"fields": ["a"]}))

    async def test_declared_oversized_body_is_413(self):
        """A Content-Length above the cap is answered 413 body-too-large."""
        body = b'{"a": "' + b"x" * MAX_JSON_BODY + b'"}'
        status, answer = await self.post(body)
        self.assertEqual((status, answer["code"]), (413, "body-too-large"))

    async def test_chunked_oversized_body_is_413(self):
        """A chunked body (no length declared) is cut off at the cap too."""
        @implementer(IBodyProducer)
        class Unsized:
            """A body producer that declares no length, so the client sends it chunked."""

            length = UNKNOWN_LENGTH

            def startProducing(self, consumer):
                consumer.write(b'{"a": "')
                for _ in range(MAX_JSON_BODY // 4096 + 2):
                    consumer.write(b"x" * 4096)
                consumer.write(b'"}')
                return succeed(None)

            def pauseProducing(self):
                pass

            def stopProducing(self):
                pass

        status, answer = await self.post(Unsized())
        self.assertEqual((status, answer["code"]), (413, "body-too-large"))

    async def test_tracebacks_are_never_displayed(self):
        """The site is configured not to render tracebacks."""
        site = make_site(Router([]))
        self.assertFalse(site.displayTracebacks)


class SlowClientTests(TestCase):
    """A client that trickles its request headers is cut off at an absolute deadline."""

    timeout = 10

    async def test_trickling_headers_are_cut_off(self):
        """One byte every 0.1 s keeps an idle timer alive forever, but not this deadline."""
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
        from twisted.internet.protocol import Protocol
        from twisted.internet.task import LoopingCall

        site = make_site(Router([Route("/echo", post=echo)]), header_deadline=1.0)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        lost = Deferred()

        class Trickle(Protocol):
            def connectionLost(self, reason):
                lost.callback(reactor.seconds())

        client = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), Trickle())
        start = reactor.seconds()
        header = iter(b"GET /relay/device HTTP/1.1\r\nX-" + b"a" * 1000)
        trickle = LoopingCall(lambda: client.transport.write(bytes([next(header)])))
        trickle.start(0.1)
        end = await lost
        trickle.stop()
        self.assertLess(end - start, 2.0)
