"""Tests for remotecomm.config: strict TOML reading."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.config import ConfigError, ConfigFile, endpoint_interface, is_loopback_endpoint


def write(test, text: str) -> Path:
    path = Path(test.mktemp() + ".toml")
    path.write_text(text)
    return path


class ConfigFileTests(SynchronousTestCase):
    """Every mistake in a config file is an error that names the file, section and key."""

    def test_missing_file_is_a_clear_error(self):
        """A wrong --config path says so instead of starting with defaults."""
        with self.assertRaises(ConfigError) as e:
            ConfigFile.load("/nonexistent/remotecomm.toml")
        self.assertIn("no such config file", str(e.exception))

    def test_invalid_toml_names_the_file(self):
        """A syntax error points at the file."""
        path = write(self, "[server\n")
        with self.assertRaises(ConfigError) as e:
            ConfigFile.load(path)
        self.assertIn(str(path), str(e.exception))
        self.assertIn("not valid TOML", str(e.exception))

    def test_unknown_key_is_refused(self):
        """A misspelt key must not silently fall back to the default."""
        config = ConfigFile.load(write(self, "[server]\nlisten = 'tcp:1'\nlisen = 'x'\n"))
        section = config.section("server")
        section.get_str("listen")
        with self.assertRaises(ConfigError) as e:
            section.finish()
        self.assertIn("[server] unknown key(s): lisen", str(e.exception))

    def test_unknown_section_is_refused(self):
        """A misspelt section is an error too."""
        config = ConfigFile.load(write(self, "[srever]\nx = 1\n"))
        config.section("server").finish()
        with self.assertRaises(ConfigError) as e:
            config.finish()
        self.assertIn("unknown section(s): srever", str(e.exception))

    def test_wrong_types_are_refused(self):
        """Strings, booleans and integers are not interchangeable."""
        config = ConfigFile.load(write(self, "[s]\na = 1\nb = 'yes'\nc = true\n"))
        section = config.section("s")
        with self.assertRaises(ConfigError):
            section.get_str("a")
        with self.assertRaises(ConfigError):
            section.get_bool("b", False)
        with self.assertRaises(ConfigError):
            section.get_int("c", 0)

    def test_integer_bounds(self):
        """Integers outside their range are refused with the bound."""
        section = ConfigFile.load(write(self, "[s]\nn = 0\n")).section("s")
        with self.assertRaises(ConfigError) as e:
            section.get_int("n", 5, minimum=1)
        self.assertIn("at least 1", str(e.exception))

    def test_durations_accept_units(self):
        """Durations read as seconds from numbers and from strings with a unit."""
        section = ConfigFile.load(write(
            self, "[s]\na = 90\nb = '15m'\nc = '12h'\nd = '250ms'\ne = '2d'\n")).section("s")
        self.assertEqual(section.get_duration("a", 0), 90)
        self.assertEqual(section.get_duration("b", 0), 900)
        self.assertEqual(section.get_duration("c", 0), 43200)
        self.assertEqual(section.get_duration("d", 0), 0.25)
        self.assertEqual(section.get_duration("e", 0), 172800)

    def test_bad_durations_are_refused(self):
        """Nonsense durations and durations out of range are errors."""
        section = ConfigFile.load(write(self, "[s]\na = 'soon'\nb = '1h'\nc = true\n")).section("s")
        with self.assertRaises(ConfigError):
            section.get_duration("a", 0)
        with self.assertRaises(ConfigError):
            section.get_duration("b", 0, maximum=60)
        with self.assertRaises(ConfigError):
            section.get_duration("c", 0)

    def test_relative_paths_resolve_against_the_file(self):
        """Paths in a config file do not depend on the current directory."""
        path = write(self, "[s]\np = 'sub/file'\nq = '/abs/file'\n")
        section = ConfigFile.load(path).section("s")
        self.assertEqual(section.get_path("p"), path.parent.absolute() / "sub/file")
        self.assertEqual(section.get_path("q"), Path("/abs/file"))

    def test_endpoint_syntax_is_checked(self):
        """A listen address is a valid Twisted endpoint string of a supported kind."""
        section = ConfigFile.load(write(
            self, "[s]\na = 'tcp:notaport'\nb = 'ssl:443'\nc = 'tcp:8443:interface=127.0.0.1'\n"
        )).section("s")
        with self.assertRaises(ConfigError):
            section.get_server_endpoint("a", "")
        with self.assertRaises(ConfigError):
            section.get_server_endpoint("b", "")
        self.assertEqual(section.get_server_endpoint("c", ""), "tcp:8443:interface=127.0.0.1")

    def test_loopback_endpoints(self):
        """Only loopback interfaces (and Unix sockets) count as loopback."""
        self.assertTrue(is_loopback_endpoint("tcp:8443:interface=127.0.0.1"))
        self.assertTrue(is_loopback_endpoint(r"tcp6:8443:interface=\:\:1"))
        self.assertTrue(is_loopback_endpoint("unix:/tmp/x.sock"))
        self.assertFalse(is_loopback_endpoint("tcp:8443"))
        self.assertFalse(is_loopback_endpoint("tcp:8443:interface=0.0.0.0"))
        self.assertEqual(endpoint_interface(r"tcp6:1:interface=\:\:1"), "::1")
