"""End to end: devices on XMPP with a real Prosody, ``twistd remotecomm`` and ``twistd device-agent``."""

import json
import re
import sqlite3
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm.testing.processes import ServerProcess
from remotecomm.testing.servers import ServerSetup


class DevicePresenceTests(TestCase):
    """Presence drives the online state that `remotecomm devices` shows."""

    timeout = 30

    async def setUp(self):
        self.setup = ServerSetup(reactor, Path(self.mktemp()))
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["alice"], "devices": ["mfp-1"]}})
        await self.setup.start()
        await self.setup.login("alice")

    async def test_device_online_then_offline(self):
        """An agent that connects shows online; one that stops shows offline within 10 s."""
        code, output = await self.setup.cli("devices")
        self.assertRegex(output, r"mfp-1 .* offline +never")
        agent = self.setup.start_agent("mfp-1")
        await agent.wait_for_output("announced to rms.localhost")
        await self.setup.wait_device("mfp-1", online=True)
        code, output = await self.setup.cli("devices")
        self.assertEqual(code, 0, output)
        self.assertRegex(output, r"mfp-1 .* online +now")
        await agent.stop()
        took = await self.setup.wait_device("mfp-1", online=False, timeout=10)
        self.assertLess(took, 10)

    async def test_online_again_after_prosody_restart(self):
        """After the XMPP server restarts, device and component return; online within 10 s."""
        agent = self.setup.start_agent("mfp-1")
        await self.setup.wait_device("mfp-1", online=True)
        before = (await self.setup.device_list())["mfp-1"]["last_seen_us"]
        await self.setup.stop_prosody()
        # The manager lost its link: nobody's presence is known (not "online" from before).
        await self.setup.wait_device_state("mfp-1", "unknown", timeout=5)
        await self.setup.start_prosody()
        await self.setup.wait_device("mfp-1", online=True, timeout=10)
        self.assertGreater((await self.setup.device_list())["mfp-1"]["last_seen_us"], before)
        self.assertIn("connected to XMPP", agent.output)

    async def test_online_again_after_manager_restart(self):
        """A restarted manager probes its devices; they announce themselves again."""
        agent = self.setup.start_agent("mfp-1")
        await self.setup.wait_device("mfp-1", online=True)
        await self.setup.server.stop()
        await self.setup.start()
        await agent.wait_for_output("is (back) online: announcing", timeout=10)
        await self.setup.wait_device("mfp-1", online=True, timeout=10)
        self.assertIn("device mfp-1 says hello", self.setup.server.output)

    async def test_revoked_device_is_disconnected(self):
        """Revoking removes the account and closes the live connection; the device is gone."""
        agent = self.setup.start_agent("mfp-1")
        await self.setup.wait_device("mfp-1", online=True)
        code, output = await self.setup.admin("revoke-device", "mfp-1")
        self.assertEqual(code, 0, output)
        self.assertIn("connection closed", output)
        await agent.wait_for_output("XMPP connection of mfp-1@devices.localhost/agent lost",
                                    timeout=10)
        await agent.wait_for_output("refused the password", timeout=10)
        await self.setup.wait_device("mfp-1", online=None, timeout=5)
        # The revocation is audited (hardening, issue 18 #10).
        with sqlite3.connect(self.setup.folder / "data" / "manager.sqlite3") as db:
            rows = db.execute("SELECT actor, detail FROM audit WHERE kind = 'device-revoked'"
                              ).fetchall()
        self.assertEqual([(actor, json.loads(detail)) for actor, detail in rows],
                         [("remotecomm-admin", {"device_id": "mfp-1"})])

    async def test_wrong_device_password_backs_off_for_five_minutes(self):
        """A refused password is an error event and a 300 s pause, not a silent spin."""
        folder = self.setup.agent_dir("mfp-1")
        config = folder / "wrong.toml"
        config.write_text(re.sub(r'password = "[^"]*"', 'password = "not-the-password"',
                                 (folder / "device-agent.toml").read_text()))
        agent = self.setup.start_agent("mfp-1", config=config)
        await agent.wait_for_output("Scheduling retry 1", timeout=10)
        self.assertIn("refused the password of mfp-1@devices.localhost/agent; next attempt "
                      "in 300 s", agent.output)
        self.assertIn("in 300.0 seconds", agent.output)
        self.assertEqual(agent.output.count("refused the password"), 1)
        self.assertFalse((await self.setup.device_list())["mfp-1"]["online"])


class ComponentSecretTests(TestCase):
    """A wrong component secret stops the server, non-zero, within 10 s."""

    timeout = 30

    async def test_wrong_component_secret_exits_non_zero(self):
        """The server logs the refusal and exits with status 3."""
        setup = ServerSetup(reactor, Path(self.mktemp()))
        self.addCleanup(setup.stop)
        setup.provision({})
        await setup.start_prosody()
        setup.server_config().xmpp.secret_file.write_text("not-the-secret\n")
        server = ServerProcess(reactor, "remotecomm", ["--config", str(setup.config)],
                               cwd=setup.folder)
        start = reactor.seconds()
        code = await server.ended()
        self.assertLess(reactor.seconds() - start, 10)
        self.assertEqual(code, 3, server.output)
        self.assertIn("refused the component secret for rms.localhost", server.output)
        self.assertNotIn("Traceback", server.output)
