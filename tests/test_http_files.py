"""Tests for remotecomm.http_files: streamed, capped uploads and ranged downloads, over real
HTTP on loopback."""

import hashlib
from pathlib import Path

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from remotecomm.http_files import (StreamedUpload, UploadError, UploadRequest, requested_range,
                                   serve_file)
from remotecomm.json_http import ANSWERED, ApiError, Route, Router, make_site
from remotecomm.testing.http import raw_exchange
from remotecomm.web.jobs_api import firmware_uploads

DATA = bytes(range(256)) * 64  # 16 KiB


class RangeTests(SynchronousTestCase):
    def test_one_range_is_read_others_mean_the_whole_file(self):
        for header, wanted in ((b"bytes=0-99", (0, 99)), (b"bytes=100-", (100, 999)),
                               (b"bytes=-10", (990, 999)), (b"bytes=900-5000", (900, 999)),
                               (None, None), (b"bytes=1-2,5-6", None), (b"items=1-2", None),
                               (b"bytes=5-1", None), (b"bytes=-", None)):
            self.assertEqual(requested_range(header, 1000), wanted, header)
        with self.assertRaises(ApiError) as e:
            requested_range(b"bytes=1000-", 1000)
        self.assertEqual((e.exception.status, e.exception.headers["Content-Range"]),
                         (416, "bytes */1000"))

    def test_a_chunked_body_over_the_cap_stops_and_leaves_nothing(self):
        folder = Path(self.mktemp())
        upload = StreamedUpload(folder, 10)
        upload.write(b"x" * 8)
        self.assertFalse(upload.too_large)
        upload.write(b"x" * 8)
        self.assertTrue(upload.too_large)
        with self.assertRaises(UploadError) as e:
            upload.finish(folder / "kept")
        self.assertEqual(e.exception.status, 413)
        self.assertEqual(list(folder.iterdir()), [])


class FilesOverHttpTests(TestCase):
    """An upload route and a download route on a real site."""

    async def setUp(self):
        self.folder = Path(self.mktemp())
        self.folder.mkdir()
        self.file = self.folder / "image.bin"
        self.file.write_bytes(DATA)
        self.completed = []
        site = make_site(Router([Route("/api/v1/firmware", post=self.take),
                                 Route("/file", get=self.give)]))
        site.requestFactory = UploadRequest
        site.upload_for = firmware_uploads(self.folder / "incoming", max_size=32 * 1024,
                                           max_running=1)
        self.site = site
        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(self.port.stopListening)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"

    async def take(self, request):
        size, digest = request.upload.finish(self.folder / "kept.bin")
        return 201, {"size": size, "sha256": digest}

    async def give(self, request):
        serve_file(request, self.file, len(DATA), on_complete=lambda: self.completed.append(1))
        return 200, ANSWERED

    async def raw(self, data: bytes) -> bytes:
        """Send raw bytes; all that came back before the server closed."""
        return await raw_exchange(reactor, self.port.getHost().port, data)

    async def test_an_upload_is_hashed_on_its_way_to_disk(self):
        response = await self.http.post(self.url + "/api/v1/firmware", data=DATA,
                                        headers={"Authorization": "Bearer x"})
        self.assertEqual(response.code, 201)
        self.assertEqual((await response.json())["sha256"], hashlib.sha256(DATA).hexdigest())
        self.assertEqual((self.folder / "kept.bin").read_bytes(), DATA)
        self.assertEqual(list((self.folder / "incoming").iterdir()), [])

    async def test_refusals_from_the_head_come_before_the_body_is_read(self):
        head = b"POST /api/v1/firmware HTTP/1.1\r\nHost: m\r\nContent-Length: %d\r\n"
        answer = await self.raw(head % 10**9 + b"Authorization: Bearer x\r\n\r\n" + b"x" * 100)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:60])
        self.assertIn(b'"code": "too-large"', answer)
        answer = await self.raw(head % 10 + b"\r\n" + b"x" * 10)
        self.assertTrue(answer.startswith(b"HTTP/1.1 401 "), answer[:60])
        self.site.uploads.add(object())  # one upload running already
        answer = await self.raw(head % 10 + b"Authorization: Bearer x\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 503 "), answer[:60])
        self.site.uploads.clear()
        chunk = b"4000\r\n" + b"y" * 0x4000 + b"\r\n"
        answer = await self.raw(b"POST /api/v1/firmware HTTP/1.1\r\nHost: m\r\n"
                                b"Authorization: Bearer x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                + chunk * 3)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:60])
        self.assertEqual(list((self.folder / "incoming").iterdir()), [])

    async def test_a_truncated_upload_leaves_nothing(self):
        received, closed = [], Deferred()

        class BreaksOff(Protocol):
            def connectionMade(self):
                self.transport.write(b"POST /api/v1/firmware HTTP/1.1\r\nHost: m\r\n"
                                     b"Authorization: Bearer x\r\nContent-Length: 9000\r\n\r\n"
                                     + b"z" * 4000)
                reactor.callLater(0.1, self.transport.loseConnection)

            def dataReceived(self, data):
                received.append(data)

            def connectionLost(self, reason):
                closed.callback(None)

        await TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port).connect(
            Factory.forProtocol(BreaksOff))
        await closed
        for _ in range(20):
            if not self.site.uploads:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual((received, self.site.uploads), ([], set()))
        self.assertEqual(list((self.folder / "incoming").iterdir()), [])
        self.assertFalse((self.folder / "kept.bin").exists())

    async def test_a_download_resumes_with_range_and_completes_once(self):
        response = await self.http.get(self.url + "/file", headers={"Range": "bytes=1000-"})
        self.assertEqual(response.code, 206)
        self.assertEqual(response.headers.getRawHeaders("content-range"),
                         [f"bytes 1000-{len(DATA) - 1}/{len(DATA)}"])
        self.assertEqual(await response.content(), DATA[1000:])
        self.assertEqual(self.completed, [1])
        response = await self.http.get(self.url + "/file", headers={"Range": "bytes=0-9"})
        self.assertEqual(await response.content(), DATA[:10])
        self.assertEqual(self.completed, [1])  # that range did not reach the end
        response = await self.http.get(self.url + "/file", headers={"Range": "bytes=99999-"})
        self.assertEqual((response.code, (await response.json())["code"]),
                         (416, "range-not-satisfiable"))
        response = await self.http.get(self.url + "/file")
        self.assertEqual((response.code, len(await response.content())), (200, len(DATA)))
