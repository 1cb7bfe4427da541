"""Tests for remotecomm.server.config."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.config import ConfigError
from remotecomm.server.config import load_server_config

REPO = Path(__file__).parents[2]


def write(test, text: str) -> Path:
    path = Path(test.mktemp()) / "remotecomm.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


class ServerConfigTests(SynchronousTestCase):
    """The server starts only from a config it fully understands."""

    def test_sample_config_is_valid(self):
        """etc/remotecomm.toml as shipped loads, with TLS on and the modern profile."""
        config = load_server_config(REPO / "etc" / "remotecomm.toml")
        self.assertTrue(config.tls.enabled)
        self.assertEqual(config.tls.profile, "modern")
        self.assertEqual(config.data_dir, (REPO / "data").absolute())
        self.assertEqual(config.database, config.data_dir / "manager.sqlite3")
        self.assertEqual(config.tls.certificate, config.data_dir / "tls" / "server.pem")

    def test_empty_config_gets_safe_defaults(self):
        """Defaults are TLS on, loopback, 12 h tokens."""
        config = load_server_config(write(self, ""))
        self.assertTrue(config.tls.enabled)
        self.assertEqual(config.listen, "tcp:8443:interface=127.0.0.1")
        self.assertEqual(config.accounts.api_token_lifetime, 12 * 3600)

    def test_plain_http_only_on_loopback(self):
        """TLS may be switched off only for a loopback listener."""
        path = write(self, "[server]\nlisten = 'tcp:8080:interface=0.0.0.0'\n"
                           "public_url = 'http://example.test:8080'\n[tls]\nenabled = false\n")
        with self.assertRaises(ConfigError) as e:
            load_server_config(path)
        self.assertIn("loopback", str(e.exception))

    def test_plain_http_on_loopback_is_allowed(self):
        """Loopback tests may run without TLS when the config says so."""
        config = load_server_config(write(
            self, "[server]\nlisten = 'tcp:8080:interface=127.0.0.1'\n"
                  "public_url = 'http://127.0.0.1:8080'\n[tls]\nenabled = false\n"))
        self.assertFalse(config.tls.enabled)

    def test_public_url_scheme_must_match_tls(self):
        """An https server must not advertise an http URL (and the reverse)."""
        with self.assertRaises(ConfigError):
            load_server_config(write(self, "[server]\npublic_url = 'http://localhost:8443'\n"))

    def test_unknown_tls_profile_is_refused(self):
        """Only the documented TLS profiles exist."""
        with self.assertRaises(ConfigError) as e:
            load_server_config(write(self, "[tls]\nprofile = 'legacy'\n"))
        self.assertIn("modern, intermediate", str(e.exception))

    def test_token_lifetime_is_bounded(self):
        """API tokens cannot be configured to live for months."""
        with self.assertRaises(ConfigError):
            load_server_config(write(self, "[accounts]\napi_token_lifetime = '90d'\n"))

    def test_certificate_names_must_be_a_list(self):
        """[tls] names is a non-empty list of strings."""
        with self.assertRaises(ConfigError):
            load_server_config(write(self, "[tls]\nnames = 'localhost'\n"))

    def test_the_store_may_be_postgresql(self):
        """[store] url names a PostgreSQL database instead of the SQLite file."""
        url = "postgresql+psycopg://remotecomm:secret@db.example:5432/remotecomm"
        config = load_server_config(write(self, f"[store]\nurl = '{url}'\n"))
        self.assertEqual(config.database, url)
        for bad in ("mysql://x/y", "postgresql://x/y", "postgresql+psycopg://x /y"):
            with self.assertRaises(ConfigError) as refused:
                load_server_config(write(self, f"[store]\nurl = '{bad}'\n"))
            self.assertIn("[store] url", str(refused.exception))
