"""Tests for remotecomm.terminal.client: answers are bounded, failures become CLI errors."""

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from remotecomm.command_line import CliError
from remotecomm.terminal import client as client_module
from remotecomm.terminal.client import MAX_ANSWER_BYTES, ApiClient


class Big(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        if request.path == b"/big":
            return b'"' + b"x" * (MAX_ANSWER_BYTES + 10) + b'"'
        return b'{"ok": true}'


class ClientTests(TestCase):
    async def setUp(self):
        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            server.Site(Big()))
        self.addCleanup(self.port.stopListening)
        self.client = ApiClient(reactor, f"http://127.0.0.1:{self.port.getHost().port}", None,
                                "t-" + "0" * 32, timeout=5)

    async def test_an_answer_too_large_is_a_clear_error(self):
        self.assertEqual(await self.client.get("/small"), {"ok": True})
        with self.assertRaises(CliError) as e:
            await self.client.get("/big")
        self.assertIn("sent more than this command takes", str(e.exception))

    async def test_a_download_too_large_stops_with_a_clear_error(self):
        self.patch(client_module, "MAX_DOWNLOAD_BYTES", 1000)
        taken = []
        with self.assertRaises(CliError):
            await self.client.download("/big", taken.append)
        self.assertLessEqual(sum(map(len, taken)), 1000)
