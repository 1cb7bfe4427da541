"""Tests for remotecomm.server.nvx: the server needs autobahn's native helpers."""

from autobahn import websocket
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.server.nvx import NativeHelpersMissing, check_native_helpers


class NativeHelperTests(SynchronousTestCase):
    """Without NVX the relay would be ~50x slower, so the server refuses to start."""

    def test_installed_autobahn_uses_nvx(self):
        """The pinned autobahn has its native helpers active here."""
        self.assertTrue(websocket.USES_NVX)
        check_native_helpers()

    def test_refuses_when_turned_off(self):
        """NVX present but disabled: the message says how it was turned off."""
        self.patch(websocket, "USES_NVX", False)
        with self.assertRaises(NativeHelpersMissing) as e:
            check_native_helpers()
        self.assertIn("AUTOBAHN_USE_NVX", str(e.exception))
        self.assertIn("refusing to start", str(e.exception))

    def test_refuses_when_missing(self):
        """NVX not built at all: the message says to reinstall."""
        self.patch(websocket, "USES_NVX", False)
        self.patch(websocket, "HAS_NVX", False)
        with self.assertRaises(NativeHelpersMissing) as e:
            check_native_helpers()
        self.assertIn("reinstall", str(e.exception))
