"""Tests for remotecomm.fleet.registry: devices registered, moved and revoked by admins, with
prosodyctl faked (it is run for real end to end)."""

import json
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StanzaError

from remotecomm.accounts.login import Caller
from remotecomm.device.config import load_device_config
from remotecomm.fleet.registry import DeviceRegistry, FleetError
from remotecomm.store.accounts import insert_unit
from remotecomm.store.audit import audit_records
from remotecomm.store.devices import devices_of_unit
from remotecomm.testing.fakes import migrated_inline_store
from remotecomm.xmpp.prosody import ProsodyError

UNA = Caller("una", "acme", "unit-admin", "t-1", (("acme", "unit-admin"),
                                                 ("globex", "technician")))
PAT = Caller("pat", "acme", "provider-admin", "t-2")


@dataclass
class Xmpp:
    devices_domain: str = "devices.test"
    component_domain: str = "rms.test"
    public_host: str = "xmpp.test"
    c2s_port: int = 5222


class FakeTools:
    def __init__(self):
        self.accounts: dict[str, str] = {}
        self.closed: list[str] = []
        self.failing = False

    def register(self, user, domain, password):
        if self.failing:
            raise ProsodyError("prosodyctl register failed (1): storage is read-only")
        self.accounts[f"{user}@{domain}"] = password

    def delete(self, user, domain):
        self.accounts.pop(f"{user}@{domain}", None)

    def close_sessions(self, user, domain):
        self.closed.append(user)
        return True


class RegistryTestCase(SynchronousTestCase):
    """A registry on a real SQLite store with prosodyctl faked."""

    def setUp(self):
        folder = Path(self.mktemp())
        self.store = migrated_inline_store(folder / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        for unit in ("acme", "globex", "initech"):
            self.store.run_sync(insert_unit, unit, unit, "UTC", 0)
        ca = folder / "ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n…\n")
        self.tools = FakeTools()
        self.registry = DeviceRegistry(self.store, Clock(), Xmpp(), ca, self.tools,
                                       run_in_thread=maybeDeferred)

    def wait(self, coroutine):
        return self.successResultOf(Deferred.fromCoroutine(coroutine))

    def refused(self, coroutine) -> FleetError:
        return self.failureResultOf(Deferred.fromCoroutine(coroutine), FleetError).value


class RegistryTests(RegistryTestCase):

    def test_registering_answers_a_config_the_agent_loads_once(self):
        answer = self.wait(self.registry.register(UNA, "mfp-9", "Lobby", "MFP 9000"))
        folder = Path(self.mktemp())
        folder.mkdir()
        (folder / "device-agent.toml").write_text(answer["agent_config"])
        (folder / "ca.pem").write_text(answer["ca_certificate"])
        config = load_device_config(folder / "device-agent.toml")
        self.assertEqual((config.device_id, config.xmpp.password),
                         ("mfp-9", self.tools.accounts["mfp-9@devices.test"]))
        self.assertEqual([d["device_id"] for d in self.store.run_sync(devices_of_unit, "acme")],
                         ["mfp-9"])
        self.assertEqual(self.refused(self.registry.register(UNA, "mfp-9", "x", "y")).code,
                         "already-exists")
        kinds = [r["kind"] for r in self.store.run_sync(audit_records, None)]
        self.assertEqual(kinds, ["device-registered", "admin-refused"])  # the second, refused

    def test_a_failed_account_leaves_nothing_behind(self):
        self.tools.failing = True
        error = self.refused(self.registry.register(UNA, "mfp-9", "Lobby", "MFP"))
        self.assertEqual((error.status, error.code), (503, "xmpp-account-failed"))
        self.assertIn("read-only", error.message)
        self.assertEqual(self.store.run_sync(devices_of_unit, "acme"), [])
        self.tools.failing = False
        self.wait(self.registry.register(UNA, "mfp-9", "Lobby", "MFP"))  # the ID is free

    def test_moving_needs_an_admin_of_both_units(self):
        self.wait(self.registry.register(UNA, "mfp-9", "Lobby", "MFP"))
        for target in ("globex", "initech"):  # a technician there; nothing there
            self.assertEqual(self.refused(self.registry.move(UNA, "mfp-9", target)).code,
                             "unit-not-found")
        self.assertEqual(self.wait(self.registry.move(PAT, "mfp-9", "initech"))["unit_id"],
                         "initech")
        self.assertEqual(self.refused(self.registry.move(PAT, "mfp-9", "globex")).code,
                         "device-not-found")  # it is no longer acme's

    def test_revoking_removes_the_account_and_closes_the_connection(self):
        self.wait(self.registry.register(UNA, "mfp-9", "Lobby", "MFP"))
        answer = self.wait(self.registry.revoke(UNA, "mfp-9"))
        self.assertEqual(answer["xmpp_account"], "removed")
        self.assertEqual((self.tools.accounts, self.tools.closed), ({}, ["mfp-9"]))
        self.assertEqual(self.store.run_sync(devices_of_unit, "acme"), [])
        self.assertEqual(self.refused(self.registry.revoke(UNA, "mfp-9")).code,
                         "device-not-found")

    def test_another_units_device_cannot_be_revoked(self):
        globex_admin = Caller("pat", "globex", "provider-admin", "t-2")
        self.wait(self.registry.register(globex_admin, "gx-9", "Globex lobby", "MFP"))
        self.assertEqual(self.refused(self.registry.revoke(UNA, "gx-9")).code,
                         "device-not-found")
        self.assertEqual([d["device_id"] for d in
                          self.store.run_sync(devices_of_unit, "globex")], ["gx-9"])
        self.assertIn("gx-9@devices.test", self.tools.accounts)
        self.assertEqual(self.tools.closed, [])


class FakeDevices:
    def __init__(self):
        self.online = {"mfp-9"}
        self.sent = []
        self.refusal = None

    def is_reachable(self, device_id):
        return device_id in self.online

    def send(self, device_id, message):
        self.sent.append(message)
        if self.refusal is not None:
            return fail(self.refusal)
        return succeed(None)


class RotationTests(RegistryTestCase):
    def setUp(self):
        super().setUp()
        self.devices = FakeDevices()
        self.registry._devices = self.devices
        self.wait(self.registry.register(UNA, "mfp-9", "Lobby", "MFP"))

    def test_the_agent_saves_first_then_the_password_changes_and_it_is_kicked(self):
        answer = self.wait(self.registry.rotate(UNA, "mfp-9"))
        self.assertEqual(answer["credentials_version"], 1)
        (sent,) = self.devices.sent
        self.assertEqual((sent.version, self.tools.accounts["mfp-9@devices.test"]),
                         (1, sent.password))
        self.assertEqual(self.tools.closed, ["mfp-9"])
        self.assertEqual(self.wait(self.registry.rotate(UNA, "mfp-9"))["credentials_version"], 2)
        audited = [r for r in self.store.run_sync(audit_records, "device-credentials-rotated")]
        self.assertEqual([r["detail"]["version"] for r in audited], [1, 2])
        self.assertNotIn(sent.password, json.dumps([r["detail"] for r in audited]))

    def test_an_offline_or_refusing_device_keeps_its_password(self):
        before = dict(self.tools.accounts)
        self.devices.online = set()
        self.assertEqual(self.refused(self.registry.rotate(UNA, "mfp-9")).code,
                         "device-offline")
        self.devices.online = {"mfp-9"}
        self.devices.refusal = StanzaError("not-allowed")
        self.assertEqual(self.refused(self.registry.rotate(UNA, "mfp-9")).code,
                         "device-refused")
        self.assertEqual((self.tools.accounts, self.tools.closed), (before, []))
        self.assertEqual(self.refused(self.registry.rotate(PAT, "gx-1")).code,
                         "device-not-found")
