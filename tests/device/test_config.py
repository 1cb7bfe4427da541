"""Tests for remotecomm.device.config."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.config import ConfigError
from remotecomm.device.config import load_device_config

REPO = Path(__file__).parents[2]


class DeviceConfigTests(SynchronousTestCase):
    """The agent refuses configs without a valid device ID."""

    def write(self, text: str) -> Path:
        path = Path(self.mktemp() + ".toml")
        path.write_text(text)
        return path

    def test_sample_config_is_valid(self):
        """etc/device-agent.toml as shipped loads."""
        config = load_device_config(REPO / "etc" / "device-agent.toml")
        self.assertEqual(config.device_id, "mfp-0001")

    def test_device_id_is_required(self):
        """Without a device ID the agent cannot say who it is."""
        with self.assertRaises(ConfigError) as e:
            load_device_config(self.write("[device]\n"))
        self.assertIn("device_id: missing", str(e.exception))

    def test_device_id_must_be_a_valid_xmpp_localpart(self):
        """Upper case, '@' and '/' cannot be part of an XMPP account name."""
        for bad in ("MFP-1", "mfp@x", "mfp/1", ""):
            with self.assertRaises(ConfigError):
                load_device_config(self.write(f"[device]\ndevice_id = '{bad}'\n"))
