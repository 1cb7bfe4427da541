"""Tests for remotecomm.simulator.config."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.config import ConfigError
from remotecomm.simulator.config import load_simulator_config, render_simulator_config

REPO = Path(__file__).parents[2]


class SimulatorConfigTests(SynchronousTestCase):
    """The simulated panel runs only from a config it understands."""

    def write(self, text: str) -> Path:
        path = Path(self.mktemp() + ".toml")
        path.write_text(text)
        return path

    def test_sample_config_is_valid(self):
        """etc/mfp-simulator.toml as shipped loads."""
        config = load_simulator_config(REPO / "etc" / "mfp-simulator.toml")
        self.assertEqual(list(config.operators), ["operator"])

    def test_rendered_config_is_valid(self):
        """What the tests and the demo write loads back."""
        config = load_simulator_config(self.write(render_simulator_config(
            "Front desk", "MFP 9000", 8181, Path("/tmp/p.sock"), "s" * 32,
            {"olga": "$argon2id$v=19$m=8,t=1,p=1$abc$def"}, 8182, 8183)))
        self.assertEqual((config.panel_listen, config.agent_secret),
                         ("tcp:8181:interface=127.0.0.1", "s" * 32))

    def test_panel_must_bind_loopback(self):
        """The panel is the device's own screen, never a network service."""
        text = render_simulator_config("x", "y", 8181, Path("/tmp/p.sock"), "s" * 32,
                                       {"olga": "$argon2id$x"}, 8182, 8183)
        with self.assertRaises(ConfigError) as e:
            load_simulator_config(self.write(text.replace("interface=127.0.0.1",
                                                          "interface=0.0.0.0")))
        self.assertIn("127.0.0.1", str(e.exception))

    def test_operators_need_argon2id_hashes(self):
        """Plain-text passwords are refused."""
        text = render_simulator_config("x", "y", 8181, Path("/tmp/p.sock"), "s" * 32,
                                       {"olga": "plaintext"}, 8182, 8183)
        with self.assertRaises(ConfigError):
            load_simulator_config(self.write(text))
