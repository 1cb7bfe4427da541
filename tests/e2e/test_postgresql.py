"""End to end: ``twistd remotecomm`` with its store on PostgreSQL (``[store] url``),
provisioned by the admin commands and used by the CLI, as on SQLite."""

from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm.testing import databases
from remotecomm.testing.servers import PASSWORD, ServerSetup


class ServerOnPostgreSQLTests(TestCase):
    timeout = 30

    async def setUp(self):
        url = databases.create(databases.postgresql_server())
        self.addCleanup(databases.drop, url)
        self.setup = ServerSetup(reactor, Path(self.mktemp()),
                                 extra_config=f"[store]\nurl = '{url}'\n")
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["alice"], "devices": ["mfp-1"]}})
        await self.setup.start()
        self.url = url

    async def test_login_and_devices_with_the_store_on_postgresql(self):
        self.assertFalse((self.setup.folder / "data" / "manager.sqlite3").exists())
        log = (self.setup.folder / "server.log").read_text()
        self.assertIn("databases: manager postgresql+psycopg://", log)
        code, output = await self.setup.cli("login", "--user", "alice", "--password-stdin",
                                            stdin=PASSWORD.encode() + b"\n")
        self.assertEqual(code, 0, output)
        code, output = await self.setup.cli("devices")
        self.assertEqual(code, 0, output)
        self.assertRegex(output, r"mfp-1 +mfp-1 +MFP 9000 +offline")
