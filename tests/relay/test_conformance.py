"""WebSocket conformance of the relay's protocol options, driven by kosoku (the Autobahn
TestSuite's cases in a modern runner; a pinned test dependency).

The relay's admission needs our headers, which a conformance client does not send, so the
cases run against autobahn's server protocol with the relay's production options
(``relay_protocol_options``) and its frame reading (``EnvelopeFrameReading``) behind a test
echo factory -- what every relay connection is after admission.  Excluded, as intended:
the compression cases (12.*, 13.*: the relay refuses permessage-deflate) and the 9.x
cases whose messages exceed the relay's cap (``MAX_MESSAGE``, one envelope frame: 4 MiB and
up; they are closed with 1009, see ``tests/relay/test_websocket.py``).  The other 9.x cases run: their messages fit.
"""

import shutil
from pathlib import Path

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase

from remotecomm.relay.frames import EnvelopeFrameReading
from remotecomm.relay.websocket import MAX_MESSAGE, relay_protocol_options
from remotecomm.testing.processes import VENV_BIN, run_command, sleep

OVER_THE_CAP = ("9.1.4", "9.1.5", "9.1.6", "9.2.4", "9.2.5", "9.2.6", "9.3.*", "9.4.*")


class _Echo(EnvelopeFrameReading, WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        self.sendMessage(payload, isBinary)


class ConformanceTests(TestCase):
    timeout = 30

    async def test_the_autobahn_cases_pass_with_the_relays_options(self):
        self.assertGreaterEqual(MAX_MESSAGE, 1024 * 1024)  # 9.1.3's 1 MiB message fits
        factory = WebSocketServerFactory()
        factory.protocol = _Echo
        factory.setProtocolOptions(**relay_protocol_options())
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        reports = Path(self.mktemp())
        excluded = [argument for case in ("12.*", "13.*", *OVER_THE_CAP)
                    for argument in ("-x", case)]
        code, output = await run_command(reactor, [
            str(VENV_BIN / "kosoku"), f"127.0.0.1:{port.getHost().port}", *excluded,
            "-p", "4", "-o", str(reports)], timeout=27)
        self.assertEqual(code, 0, output[-3000:])
        self.assertRegex(output, r"\n(2[0-9]{2}) cases passed")
        shutil.rmtree(reports, ignore_errors=True)
        # autobahn's batched timers (handshake timeouts, pings) of the closed connections
        # fire within their bucket's second; let them, so the reactor is left clean.
        for _ in range(30):
            if not any("_notify_bucket" in repr(call) for call in reactor.getDelayedCalls()):
                break
            await sleep(reactor, 0.1)
