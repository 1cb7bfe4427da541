"""Tests for remotecomm.device.credentials: rotated XMPP credentials, saved before the answer."""

import json
import stat
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.device.credentials import AgentCredentials
from remotecomm.sessions.messages import Credentials, MessageRefused


class AgentCredentialTests(SynchronousTestCase):
    def setUp(self):
        folder = Path(self.mktemp())
        folder.mkdir()
        self.path = folder / "credentials.json"
        self.changes = []

    def credentials(self) -> AgentCredentials:
        found = AgentCredentials(self.path, "configured-password")
        found.on_change = self.changes.append
        return found

    def test_a_rotation_is_saved_before_it_is_used_and_survives_a_restart(self):
        credentials = self.credentials()
        self.assertEqual((credentials.version, credentials.password), (0, "configured-password"))
        credentials.on_credentials(Credentials(1, "n" * 32))
        self.assertEqual(self.changes, ["n" * 32])
        self.assertEqual(json.loads(self.path.read_text()),
                         {"version": 1, "password": "n" * 32,
                          "previous": "configured-password"})
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        again = self.credentials()
        self.assertEqual((again.version, again.password), (1, "n" * 32))
        self.assertEqual(again.other_password("n" * 32), "configured-password")
        self.assertEqual(again.other_password("configured-password"), "n" * 32)

    def test_a_repeat_is_done_and_an_older_version_refused(self):
        credentials = self.credentials()
        credentials.on_credentials(Credentials(2, "n" * 32))
        credentials.on_credentials(Credentials(2, "n" * 32))  # the manager asked again
        self.assertEqual(self.changes, ["n" * 32])
        for stale in (Credentials(1, "o" * 32), Credentials(2, "x" * 32)):
            with self.assertRaises(MessageRefused):
                credentials.on_credentials(stale)
        self.assertEqual(credentials.password, "n" * 32)
        self.assertIsNone(AgentCredentials(Path(self.mktemp()), "p").other_password("p"))
