"""Tests for remotecomm.device.config."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.config import ConfigError
from remotecomm.device.config import load_device_config, render_agent_config

REPO = Path(__file__).parents[2]

XMPP = """
[xmpp]
server = "tcp:127.0.0.1:5222"
domain = "devices.localhost"
password = "a-long-password"
ca_certificate = "ca.pem"
components = ["rms.localhost"]
"""


class DeviceConfigTests(SynchronousTestCase):
    """The agent refuses configs it cannot run with."""

    def write(self, text: str) -> Path:
        path = Path(self.mktemp() + ".toml")
        path.write_text(text)
        return path

    def test_sample_config_is_valid(self):
        """etc/device-agent.toml as shipped loads."""
        config = load_device_config(REPO / "etc" / "device-agent.toml")
        self.assertEqual(config.device_id, "mfp-0001")
        self.assertEqual(config.jid, "mfp-0001@devices.localhost/agent")

    def test_generated_config_is_valid(self):
        """What `remotecomm admin add-device` writes loads, with an empty app list."""
        path = self.write(render_agent_config("mfp-7", "tcp:xmpp.example.com:5222",
                                              "devices.example.com", "p" * 32, "ca.pem",
                                              ["rms.example.com"], "s" * 32))
        config = load_device_config(path)
        self.assertEqual((config.device_id, config.xmpp.server, config.xmpp.components,
                          config.apps),
                         ("mfp-7", "tcp:xmpp.example.com:5222", ("rms.example.com",), {}))
        self.assertEqual(config.xmpp.ca_certificate, path.parent.absolute() / "ca.pem")
        self.assertEqual(config.panel.secret, "s" * 32)
        self.assertEqual(config.panel.socket.name, "panel.sock")
        self.assertLessEqual(len(str(config.panel.socket)), 100)
        self.assertIsNone(config.test_approver)

    def test_device_id_is_required(self):
        """Without a device ID the agent cannot say who it is."""
        with self.assertRaises(ConfigError) as e:
            load_device_config(self.write("[device]\n" + XMPP))
        self.assertIn("device_id: missing", str(e.exception))

    def test_device_id_must_be_a_valid_xmpp_localpart(self):
        """Upper case, '@' and '/' cannot be part of an XMPP account name."""
        for bad in ("MFP-1", "mfp@x", "mfp/1", ""):
            with self.assertRaises(ConfigError):
                load_device_config(self.write(f"[device]\ndevice_id = '{bad}'\n" + XMPP))

    def test_xmpp_section_is_required(self):
        """The agent exists to keep its XMPP link."""
        with self.assertRaises(ConfigError) as e:
            load_device_config(self.write("[device]\ndevice_id = 'mfp-1'\n"))
        self.assertIn("[xmpp] server: missing", str(e.exception))

    def test_server_must_be_a_tcp_endpoint(self):
        """The XMPP server is a tcp: endpoint string."""
        with self.assertRaises(ConfigError):
            load_device_config(self.write("[device]\ndevice_id = 'mfp-1'\n" +
                                          XMPP.replace("tcp:127.0.0.1:5222", "ssl:1")))

    def test_apps_map_ids_to_local_urls(self):
        """[apps] maps app IDs to the base URLs of the device's server apps."""
        config = load_device_config(self.write(
            "[device]\ndevice_id = 'mfp-1'\n" + XMPP +
            "[apps]\nweb-server = 'http://127.0.0.1:8080'\nremote-panel = 'http://[::1]:81/p'\n"))
        self.assertEqual(config.apps, {"web-server": "http://127.0.0.1:8080",
                                       "remote-panel": "http://[::1]:81/p"})

    def test_test_approver_is_an_explicit_option(self):
        """The test approver exists only when the config names it."""
        config = load_device_config(self.write(
            "[device]\ndevice_id = 'mfp-1'\n" + XMPP + "[approval]\ntest_approver = 'bench'\n"))
        self.assertEqual(config.test_approver, "bench")

    def test_short_panel_secret_is_refused(self):
        """The panel secret must be long enough to mean something."""
        with self.assertRaises(ConfigError):
            load_device_config(self.write("[device]\ndevice_id = 'mfp-1'\n" + XMPP +
                                          "[panel]\nsecret = 'short'\n"))

    def test_bad_apps_are_refused(self):
        """Invalid app IDs and URLs are errors."""
        for apps in ("'Web Server' = 'http://127.0.0.1:1'\n", "web = 'ftp://x'\n",
                     "web = 8080\n"):
            with self.assertRaises(ConfigError):
                load_device_config(self.write("[device]\ndevice_id = 'mfp-1'\n" + XMPP +
                                              "[apps]\n" + apps))
