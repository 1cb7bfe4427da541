"""End to end: running the service through the admin API with the real CLI -- a provider admin
creates a unit and a technician (who sets their password with a one-time token), the
technician logs in and sees only that unit, is refused the admin commands, and the unit's
audit log shows it all."""

import json
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm.admin import commands as local_admin
from remotecomm.testing.processes import sleep
from remotecomm.testing.servers import PASSWORD, ServerSetup

NEW_PASSWORD = "ivan's own long passphrase"


class AdministrationTests(TestCase):
    timeout = 30

    async def setUp(self):
        self.setup = ServerSetup(reactor, Path(self.mktemp()))
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["alice"], "devices": ["mfp-1"]}})
        local_admin.add_user(self.setup.server_config(), reactor, "pat", "Pat", PASSWORD, None,
                             "technician", provider_admin=True)
        await self.setup.start()

    async def test_a_unit_and_a_technician_made_through_the_api(self):
        await self.setup.login("pat")
        code, output = await self.setup.cli("admin", "unit-add", "initech", "--name",
                                            "Initech", "--time-zone", "America/Chicago")
        self.assertEqual((code, output.strip()), (0, "Unit initech created."))
        code, output = await self.setup.cli("unit", "initech")
        self.assertIn("Acting in unit initech", output)
        code, output = await self.setup.cli("admin", "user-add", "ivan", "--role",
                                            "technician", "--name", "Ivan")
        self.assertEqual(code, 0, output)
        token = output.split("shown only now): ")[1].split()[0]
        ivan = self.setup.folder / "ivan-terminal"
        code, output = await self.setup.cli(
            "passwd", "--user", "ivan", "--token", token, "--password-stdin",
            stdin=NEW_PASSWORD.encode() + b"\n", home=ivan)
        self.assertEqual(code, 0, output)
        code, output = await self.setup.cli("login", "--user", "ivan", "--password-stdin",
                                            stdin=NEW_PASSWORD.encode() + b"\n", home=ivan)
        self.assertIn("Logged in as ivan (unit initech)", output)
        code, output = await self.setup.cli("devices", "--json", home=ivan)
        self.assertEqual(json.loads(output)["unit_id"], "initech")
        self.assertEqual(json.loads(output)["devices"], [])
        code, output = await self.setup.cli("admin", "users", home=ivan)
        self.assertEqual(code, 1)
        self.assertIn("forbidden", output)
        # The token worked once; the unit's audit log has the story.
        code, output = await self.setup.cli(
            "passwd", "--user", "ivan", "--token", token, "--password-stdin",
            stdin=b"another long passphrase\n", home=ivan)
        self.assertEqual(code, 1)
        self.assertIn("invalid-password-token", output)
        code, output = await self.setup.cli("admin", "audit", "--json")
        kinds = [r["kind"] for r in json.loads(output)["records"]]
        self.assertEqual(kinds, ["password-token-refused", "permission-denied", "password-set",
                                 "user-created", "unit-created"])
        csv_path = self.setup.folder / "audit.csv"
        code, output = await self.setup.cli("admin", "audit", "--csv", str(csv_path))
        self.assertEqual(code, 0, output)
        self.assertIn(",user-created,pat,", csv_path.read_text())

        # A device registered through the API while Prosody is down (prosodyctl writes its
        # store): its agent connects with the config it got once Prosody is back.
        await self.setup.stop_prosody()
        folder = self.setup.agent_dir("mfp-7")
        code, output = await self.setup.cli("admin", "device-add", "mfp-7", "--name", "Lobby",
                                            "--agent-dir", str(folder))
        self.assertEqual(code, 0, output)
        await self.setup.start_prosody()
        self.assertEqual(oct((folder / "device-agent.toml").stat().st_mode & 0o777), "0o600")
        agent = self.setup.start_agent("mfp-7")
        await self.setup.wait_device("mfp-7", online=True)
        # Its credentials rotated: the agent saves them, is kicked, and logs in with them.
        code, output = await self.setup.cli("admin", "device-rotate", "mfp-7")
        self.assertEqual(code, 0, output)
        saved = json.loads((folder / "data" / "credentials.json").read_text())
        self.assertEqual(saved["version"], 1)
        for _ in range(100):
            if agent.output.count("connected to XMPP as") >= 2:
                break
            await sleep(reactor, 0.1)
        self.assertEqual(agent.output.count("connected to XMPP as"), 2, agent.output[-2000:])
        self.assertNotIn(saved["password"], agent.output)
        await self.setup.wait_device("mfp-7", online=True)
        code, output = await self.setup.cli("admin", "device-revoke", "mfp-7")
        self.assertIn("its XMPP account: removed", output)
        await self.setup.wait_device("mfp-7", online=None)
