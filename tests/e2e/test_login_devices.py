"""End to end: a real ``twistd remotecomm`` over TLS, provisioned and used by the CLI."""

import json
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm.testing.processes import ServerProcess
from remotecomm.testing.servers import PASSWORD, ServerSetup


class LoginAndDevicesTests(TestCase):
    """S101–S103 and the device list, through the real processes."""

    timeout = 30

    async def setUp(self):
        self.setup = ServerSetup(reactor, Path(self.mktemp()))
        self.addCleanup(self.setup.stop)
        self.setup.provision({
            "acme": {"users": ["alice"], "devices": ["mfp-1", "mfp-2"]},
            "globex": {"users": ["gina"], "devices": ["gx-1"]},
        })
        await self.setup.start()

    async def test_login_then_devices(self):
        """Login stores a token; `devices` lists the own unit's devices as a table."""
        code, output = await self.setup.cli("login", "--user", "alice", "--password-stdin",
                                            stdin=PASSWORD.encode() + b"\n")
        self.assertEqual(code, 0, output)
        self.assertIn("Logged in as alice (unit acme)", output)
        state = json.loads((self.setup.terminal_home / "state.json").read_text())

        code, output = await self.setup.cli("devices")
        self.assertEqual(code, 0, output)
        self.assertIn("Devices of unit acme:", output)
        self.assertRegex(output, r"mfp-1 +mfp-1 +MFP 9000 +offline +never")
        self.assertIn("mfp-2", output)
        self.assertNotIn("gx-1", output)

        code, output = await self.setup.cli("devices", "--json")
        self.assertEqual([d["device_id"] for d in json.loads(output)["devices"]],
                         ["mfp-1", "mfp-2"])

        # A second login on the same terminal keeps its terminal ID.
        await self.setup.cli("login", "--user", "alice", "--password-stdin",
                             stdin=PASSWORD.encode() + b"\n")
        again = json.loads((self.setup.terminal_home / "state.json").read_text())
        self.assertEqual(again["terminal_id"], state["terminal_id"])
        self.assertNotEqual(again["token"], state["token"])

    async def test_wrong_password_is_one_line_and_exit_1(self):
        """A refused login prints one clear line and exits 1; no token is stored."""
        code, output = await self.setup.cli("login", "--user", "alice", "--password-stdin",
                                            stdin=b"wrong horse battery\n")
        self.assertEqual(code, 1)
        self.assertEqual(output, "remotecomm: user ID or password is wrong "
                                 "(invalid-credentials)\n")
        self.assertFalse((self.setup.terminal_home / "state.json").exists())

    async def test_devices_before_login_exits_3(self):
        """Without a token the CLI says to log in."""
        code, output = await self.setup.cli("devices")
        self.assertEqual((code, output.strip()),
                         (3, "remotecomm: not logged in: run `remotecomm login` first"))

    async def test_token_refused_after_logout(self):
        """After logout the CLI reports it is not logged in."""
        await self.setup.cli("login", "--user", "gina", "--password-stdin",
                             stdin=PASSWORD.encode() + b"\n")
        code, output = await self.setup.cli("logout")
        self.assertEqual(code, 0, output)
        code, output = await self.setup.cli("devices")
        self.assertEqual(code, 3, output)

    async def test_untrusted_server_certificate(self):
        """A CLI that does not trust the server's CA refuses to talk to it."""
        other_ca = Path(self.mktemp() + "-ca.pem")
        from remotecomm.testing.pki import write_other_ca
        write_other_ca(other_ca)
        code, output = await self.setup.cli("--ca", str(other_ca), "login", "--user", "alice",
                                            "--password-stdin", stdin=PASSWORD.encode() + b"\n")
        self.assertEqual(code, 4, output)
        self.assertIn("cannot reach", output)

    async def test_server_stops_cleanly_on_sigterm(self):
        """SIGTERM shuts the server down in order (twistd then re-raises the signal)."""
        code = await self.setup.server.stop()
        self.assertEqual(code, -15)
        self.assertIn("Main loop terminated.", self.setup.server.output)
        self.assertIn("Server Shut Down.", self.setup.server.output)
        self.assertNotIn("Traceback", self.setup.server.output)


class ProvisioningCommandTests(TestCase):
    """`remotecomm admin` as a person runs it, then a login with what it created."""

    timeout = 30

    async def test_provision_with_the_admin_command(self):
        """init, add-unit, add-user, add-device; duplicates and unknown units are refused."""
        setup = ServerSetup(reactor, Path(self.mktemp()))
        self.addCleanup(setup.stop)
        steps = [
            (["init"], None, 0, "Created the CA"),
            (["add-unit", "acme", "--name", "ACME", "--time-zone", "Asia/Tokyo"], None, 0,
             "Unit acme created (Asia/Tokyo)."),
            (["add-user", "alice", "--unit", "acme", "--password-stdin"],
             PASSWORD.encode() + b"\n", 0, "User alice created in unit acme as technician."),
            (["add-user", "bob", "--unit", "acme", "--password-stdin"], b"short\n", 2,
             "at least 12 characters"),
            (["add-user", "carol", "--unit", "nowhere", "--password-stdin"],
             PASSWORD.encode() + b"\n", 1, "no unit nowhere"),
            (["add-device", "mfp-1", "--unit", "acme", "--name", "Front desk"], None, 0,
             "Device mfp-1 registered in unit acme."),
            (["add-device", "mfp-1", "--unit", "acme"], None, 1, "exists already"),
            (["init"], None, 0, "Kept the existing CA"),
        ]
        for args, stdin, want_code, want_text in steps:
            code, output = await setup.admin(*args, stdin=stdin)
            self.assertEqual(code, want_code, (args, output))
            self.assertIn(want_text, output, args)
        await setup.start()
        code, output = await setup.cli("login", "--user", "alice", "--password-stdin",
                                       stdin=PASSWORD.encode() + b"\n")
        self.assertEqual(code, 0, output)
        code, output = await setup.cli("devices")
        self.assertRegex(output, r"mfp-1 +Front desk")


class StartRefusalTests(TestCase):
    """The server refuses to start, with a clear message, when it cannot run properly."""

    timeout = 30

    async def test_refuses_without_autobahn_native_helpers(self):
        """With NVX turned off the server exits non-zero and says why."""
        setup = ServerSetup(reactor, Path(self.mktemp()))
        self.addCleanup(setup.stop)
        setup.provision({})
        server = ServerProcess(reactor, "remotecomm", ["--config", str(setup.config)],
                               cwd=setup.folder, env={"AUTOBAHN_USE_NVX": "0"})
        code = await server.ended()
        self.assertNotEqual(code, 0)
        self.assertIn("autobahn's native helpers (NVX) are not active", server.output)
        self.assertNotIn("Traceback", server.output)

    async def test_refuses_invalid_config(self):
        """A config error is reported with file, section and key."""
        folder = Path(self.mktemp()).absolute()
        folder.mkdir()
        config = folder / "bad.toml"
        config.write_text("[server]\nlisen = 'tcp:1'\n")
        server = ServerProcess(reactor, "remotecomm", ["--config", str(config)], cwd=folder)
        code = await server.ended()
        self.assertNotEqual(code, 0)
        self.assertIn("[server] unknown key(s): lisen", server.output)
        self.assertNotIn("Traceback", server.output)

    async def test_refuses_without_certificates(self):
        """Without `remotecomm admin init` the server says to run it."""
        setup = ServerSetup(reactor, Path(self.mktemp()))
        server = ServerProcess(reactor, "remotecomm", ["--config", str(setup.config)],
                               cwd=setup.folder)
        code = await server.ended()
        self.assertNotEqual(code, 0)
        self.assertIn("remotecomm admin init", server.output)
        self.assertNotIn("Traceback", server.output)
