"""Tests for remotecomm.xmpp.prosody: the generated Prosody config."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.unix_sockets import remove_private_socket_folder
from remotecomm.xmpp.prosody import ProsodySettings, admin_socket_path, write_prosody_config


class ProsodyConfigTests(SynchronousTestCase):
    """Prosody runs on our ports, our folder and our certificate, and nothing more."""

    def settings(self, **changes):
        folder = Path(self.mktemp()).absolute()
        values = dict(data_dir=folder, interface="127.0.0.1", c2s_port=15222,
                      component_port=15347, devices_domain="devices.test",
                      component_domain="rms.test", component_secret="s3cret",
                      certificate=folder / "x.pem", key=folder / "x.key")
        values.update(changes)
        # trial's folders are deep: the admin socket lands in a private temp folder
        self.addCleanup(remove_private_socket_folder, admin_socket_path(values["data_dir"]))
        return ProsodySettings(**values)

    def test_config_names_our_ports_hosts_and_secret(self):
        """Ports, interface, virtual host, component and its secret are in the config."""
        settings = self.settings()
        text = write_prosody_config(settings).read_text()
        for expected in ('c2s_ports = { 15222 }', 'component_ports = { 15347 }',
                         'interfaces = { "127.0.0.1" }', 'component_interfaces = { "127.0.0.1" }',
                         'VirtualHost "devices.test"', 'Component "rms.test"',
                         'component_secret = "s3cret"', 'c2s_require_encryption = true',
                         f'data_path = "{settings.data_dir / "data"}"', 'run_as_root = true'):
            self.assertIn(expected, text)

    def test_no_s2s_http_or_registration(self):
        """Nothing listens that we do not use; nobody registers accounts over XMPP."""
        text = write_prosody_config(self.settings()).read_text()
        for expected in ('s2s_ports = { }', 'http_ports = { }', 'https_ports = { }',
                         'allow_registration = false', '"s2s"'):
            self.assertIn(expected, text)

    def test_config_is_private(self):
        """The config holds the component secret: mode 0600."""
        path = write_prosody_config(self.settings())
        self.assertEqual(path.stat().st_mode & 0o777, 0o600)

    def test_unsafe_values_are_refused(self):
        """A value that could break out of a Lua string is refused."""
        with self.assertRaises(ValueError):
            write_prosody_config(self.settings(component_secret='x"; os.execute("id") --'))


class AdminSocketTests(SynchronousTestCase):
    """The admin shell socket path always fits the Unix socket limit."""

    def test_short_data_dir_keeps_socket_inside(self):
        """A short data folder holds its own socket."""
        from remotecomm.xmpp.prosody import admin_socket_path
        self.assertEqual(admin_socket_path(Path("/srv/rc/prosody")),
                         Path("/srv/rc/prosody/data/prosody.sock"))

    def test_long_data_dir_gets_a_short_private_socket_path(self):
        """A deep data folder gets a short, stable path of its own."""
        from remotecomm.xmpp.prosody import admin_socket_path
        deep = Path("/srv/" + "x" * 120)
        path = admin_socket_path(deep)
        self.assertLessEqual(len(str(path)), 100)
        self.assertEqual(path, admin_socket_path(deep))
        self.assertNotEqual(path, admin_socket_path(Path("/srv/" + "y" * 120)))
