"""Tests for remotecomm.xmpp.compat: wokkel imports on this Twisted."""

import sys

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

IMPORTS = (
    "from remotecomm.xmpp import compat\n"
    "from wokkel import generic, subprotocols, xmppim\n"
    "import remotecomm.xmpp.component, remotecomm.xmpp.stream, remotecomm.device.manager_link\n"
    "print('ok')\n"
)


class CompatTests(TestCase):
    """A Twisted upgrade that breaks the wokkel modules we use must fail loudly here."""

    timeout = 30

    async def test_wokkel_modules_import_with_warnings_as_errors(self):
        """In a fresh interpreter with -W error, every wokkel module we use imports."""
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-W", "error", "-c", IMPORTS], reactor=reactor)
        self.assertEqual((code, out.strip()), (0, b"ok"), err.decode(errors="replace"))
