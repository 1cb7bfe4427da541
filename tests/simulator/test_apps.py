"""Tests for the simulated MFP's apps: device state, web-server, remote-panel, firmware."""

import hashlib
import json
from pathlib import Path

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from remotecomm.http_files import MultipartFile, StreamedUpload, UploadError
from remotecomm.simulator import firmware
from remotecomm.simulator.device_state import DeviceState, StateError
from remotecomm.simulator.remote_panel import remote_panel_site
from remotecomm.simulator.web_server import web_server_site
from remotecomm.testing.http import raw_exchange


class DeviceStateTests(SynchronousTestCase):
    """What the buttons and forms do to the simulated device."""

    def test_copy_job_counts_pages_and_uses_toner(self):
        state = DeviceState("d", "m")
        for button in ("copy", "plus", "plus", "start"):
            state.press(button)
        self.assertEqual(state.counters["copied"], 5213)
        self.assertEqual(state.toner["black"], 33)
        self.assertEqual(state.message, "Copied 3 pages")

    def test_an_error_blocks_jobs_until_reset(self):
        state = DeviceState("d", "m")
        state.set_error("paper-jam")
        state.press("copy")
        state.press("start")
        self.assertEqual(state.counters["copied"], 5210)
        state.press("reset")
        self.assertEqual(state.status, "ready")

    def test_bad_input_is_refused(self):
        state = DeviceState("d", "m")
        for change in (lambda: state.press("self-destruct"), lambda: state.set_error("fire"),
                       lambda: state.add_contact("", "a@b.cd"),
                       lambda: state.add_contact("x", "not-an-address"),
                       lambda: state.delete_contact(999)):
            self.assertRaises(StateError, change)


def multipart(boundary: bytes, content: bytes) -> bytes:
    return (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n"
            b"hello\r\n--" + boundary + b"\r\nContent-Disposition: form-data; name=\"firmware\"; "
            b"filename=\"fw.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n" + content +
            b"\r\n--" + boundary + b"--\r\n")


class MultipartTests(SynchronousTestCase):
    """The streaming multipart reader of firmware forms."""

    def test_file_part_is_extracted_whatever_the_chunking(self):
        content = b"\r\n--notquite" + bytes(range(256)) * 40 + b"\r\n-"
        body = multipart(b"----XyZ", content)
        for size in (1, 7, 64, 4096, len(body)):
            out = []
            reader = MultipartFile(b"----XyZ", b"firmware", out.append)
            for start in range(0, len(body), size):
                reader.feed(body[start:start + size])
            self.assertTrue(reader.complete, size)
            self.assertEqual(b"".join(out), content, size)

    def test_truncated_form_is_not_complete(self):
        reader = MultipartFile(b"b", b"firmware", lambda data: None)
        reader.feed(multipart(b"b", b"abc")[:-10])
        self.assertFalse(reader.complete)

    def test_upload_without_file_is_refused_and_leaves_nothing(self):
        folder = Path(self.mktemp())
        upload = StreamedUpload(folder, 1024, b"multipart/form-data; boundary=b", None,
                                form_field=b"firmware")
        upload.write(b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n")
        self.assertRaises(UploadError, upload.finish, folder / "firmware.bin")
        self.assertEqual(list(folder.iterdir()), [])

    def test_declared_size_over_the_limit_is_refused_at_once(self):
        self.assertRaises(UploadError, StreamedUpload, Path(self.mktemp()), 1024, None, 2**40)


class AppTests(TestCase):
    """The apps over real HTTP on loopback."""

    async def setUp(self):
        self.state = DeviceState("Lobby MFP", "MFP 9000")
        self.folder = Path(self.mktemp())
        self.web = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            web_server_site(self.state, self.folder))
        self.panel = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            remote_panel_site(self.state))
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=self.pool))
        self.web_url = f"http://127.0.0.1:{self.web.getHost().port}"
        self.panel_url = f"http://127.0.0.1:{self.panel.getHost().port}"

    async def tearDown(self):
        await self.pool.closeCachedConnections()
        await self.web.stopListening()
        await self.panel.stopListening()

    async def test_status_page_and_json(self):
        page = await (await self.http.get(self.web_url + "/")).text()
        self.assertIn("Lobby MFP", page)
        self.assertIn("Counters", page)
        status = await (await self.http.get(self.web_url + "/api/status")).json()
        self.assertEqual(status["status"], "ready")
        self.assertEqual(status["toner"]["black"], 34)

    async def test_error_form_changes_the_state_and_redirects_absolutely(self):
        response = await self.http.post(self.web_url + "/error", data={"error": "paper-jam"},
                                        allow_redirects=False)
        self.assertEqual(response.code, 303)
        self.assertEqual(response.headers.getRawHeaders("location"),
                         [self.web_url + "/"])
        self.assertEqual(self.state.error, "paper-jam")

    async def test_address_book_add_and_delete(self):
        await self.http.post(self.web_url + "/address-book",
                             data={"name": "Service", "email": "svc@example.com"},
                             allow_redirects=False)
        (added,) = [c for c in self.state.contacts.values() if c.name == "Service"]
        page = await (await self.http.get(self.web_url + "/address-book")).text()
        self.assertIn("svc@example.com", page)
        response = await self.http.post(self.web_url + "/address-book/delete",
                                        data={"id": str(added.contact_id)},
                                        allow_redirects=False)
        self.assertEqual(response.code, 303)
        self.assertNotIn(added.contact_id, self.state.contacts)
        bad = await self.http.post(self.web_url + "/address-book",
                                   data={"name": "x", "email": "nope"}, allow_redirects=False)
        self.assertEqual(bad.code, 400)

    async def test_firmware_form_upload_then_download(self):
        image = bytes(range(256)) * 4096
        body = multipart(b"----b0undary", image)
        response = await self.http.post(
            self.web_url + "/firmware", data=body,
            headers={"Content-Type": "multipart/form-data; boundary=----b0undary"})
        self.assertEqual(response.code, 200)
        self.assertIn(hashlib.sha256(image).hexdigest(), await response.text())
        self.assertEqual(self.state.firmware.size, len(image))
        download = await self.http.get(self.web_url + "/firmware/image")
        self.assertEqual(await download.content(), image)
        self.assertEqual(sorted(p.name for p in self.folder.iterdir()), ["firmware.bin"])

    async def test_firmware_put_of_an_empty_image_is_refused(self):
        response = await self.http.put(self.web_url + "/firmware", data=b"")
        self.assertEqual(response.code, 400)
        self.assertIn("empty", (await response.json())["error"])

    async def raw_exchange(self, head: bytes, body_chunks: list[bytes]) -> bytes:
        """Send a request head and some body, without ending it; what came back before the
        server closed (nothing more is sent after the first answer)."""
        return await raw_exchange(reactor, self.web.getHost().port,
                                  head + b"".join(body_chunks))

    async def test_an_oversized_image_is_refused_before_its_body_is_read(self):
        """Hardening, issue 18 #9: 413 from Content-Length alone (the 300 MB body is never
        sent), and a chunked upload is stopped at the cap."""
        answer = await self.raw_exchange(
            b"PUT /firmware HTTP/1.1\r\nHost: mfp\r\nContent-Length: 300000000\r\n\r\n",
            [b"x" * 1000])
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:80])
        self.assertIn(b"larger than 256 MiB", answer)
        self.patch(firmware, "MAX_FIRMWARE", 4096)
        chunk = b"%x\r\n%s\r\n" % (2048, b"y" * 2048)
        answer = await self.raw_exchange(
            b"PUT /firmware HTTP/1.1\r\nHost: mfp\r\nTransfer-Encoding: chunked\r\n\r\n",
            [chunk] * 4)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:80])
        self.assertEqual([p.name for p in self.folder.iterdir()
                          if p.name.startswith("upload.part")], [])

    async def test_forms_are_capped(self):
        response = await self.http.post(self.web_url + "/address-book",
                                        data=b"name=" + b"x" * 100_000,
                                        headers={"Content-Type":
                                                 "application/x-www-form-urlencoded"})
        self.assertEqual(response.code, 413)

    async def test_remote_panel_buttons_change_the_device(self):
        page = await (await self.http.get(self.panel_url + "/")).text()
        self.assertIn('data-screen="home"', page)
        response = await self.http.post(self.panel_url + "/press", data={"button": "copy"},
                                        allow_redirects=False)
        self.assertEqual(response.code, 303)
        page = await (await self.http.get(self.panel_url + "/")).text()
        self.assertIn('data-screen="copy"', page)
        self.assertIn('id="copies">1<', page)
        screen = json.loads(await (await self.http.get(self.panel_url + "/api/screen")).text())
        self.assertEqual(screen["screen"], "copy")
        bad = await self.http.post(self.panel_url + "/press", data={"button": "nuke"})
        self.assertEqual(bad.code, 400)
