"""The device agent's configuration (``etc/device-agent.toml``), validated as a whole.

``remotecomm admin add-device`` writes a ready one per device
(:func:`render_agent_config`); the operator then fills in ``[apps]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from remotecomm.config import ConfigError, ConfigFile
from remotecomm.identifiers import APP_ID, DEVICE_ID
from remotecomm.sessions.messages import MAX_APPS
from remotecomm.unix_sockets import MAX_SOCKET_PATH, fitting_socket_path

_DOMAIN = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+"
_APP_URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(/[^\s?#]*)?")


@dataclass(frozen=True)
class AgentXmppConfig:
    """How the agent reaches the manager over XMPP."""

    server: str
    domain: str
    password: str
    ca_certificate: Path
    components: tuple[str, ...]
    resource: str = "agent"


@dataclass(frozen=True)
class PanelConfig:
    """The local channel to the device's panel: a Unix socket and a shared secret."""

    socket: Path
    secret: str


@dataclass(frozen=True)
class DeviceAgentConfig:
    """What the device agent needs."""

    config_path: Path
    device_id: str
    data_dir: Path
    xmpp: AgentXmppConfig
    apps: dict[str, str]
    panel: PanelConfig | None = None
    test_approver: str | None = None

    @property
    def jid(self) -> str:
        """The agent's full JID."""
        return f"{self.device_id}@{self.xmpp.domain}/{self.xmpp.resource}"


def load_device_config(path: str | Path) -> DeviceAgentConfig:
    """Read and validate a device agent config; raise ``ConfigError`` on any problem."""
    config = ConfigFile.load(path)
    device = config.section("device")
    device_id = device.get_str("device_id", required=True, pattern=DEVICE_ID)
    data_dir = device.get_path("data_dir", config.path.parent / "device-data")
    device.finish()

    xmpp_section = config.section("xmpp")
    server = xmpp_section.get_str("server", required=True)
    if not re.fullmatch(r"tcp6?:[^\s]+", server):
        raise ConfigError(f"{config.path}: [xmpp] server must be a tcp: endpoint such as "
                          f"\"tcp:xmpp.example.com:5222\"")
    xmpp = AgentXmppConfig(
        server=server,
        domain=xmpp_section.get_str("domain", required=True, pattern=_DOMAIN),
        password=xmpp_section.get_str("password", required=True, pattern=r"\S{8,256}"),
        ca_certificate=xmpp_section.get_path("ca_certificate", required=True),
        components=tuple(xmpp_section.get_str_list("components", [])),
    )
    for component in xmpp.components:
        if not re.fullmatch(_DOMAIN, component):
            raise ConfigError(f"{config.path}: [xmpp] components: {component!r} is not a domain")
    xmpp_section.finish()

    apps_section = config.section("apps")
    apps = {}
    for app_id in apps_section.keys():
        if not re.fullmatch(APP_ID, app_id):
            raise ConfigError(f"{config.path}: [apps] {app_id!r} is not a valid app ID")
        apps[app_id] = apps_section.get_str(app_id, required=True)
        if not _APP_URL.fullmatch(apps[app_id]):
            raise ConfigError(f"{config.path}: [apps] {app_id}: expected an http(s) URL such "
                              f"as \"http://127.0.0.1:8080\"")
    if len(apps) > MAX_APPS:
        raise ConfigError(f"{config.path}: [apps] at most {MAX_APPS} apps")
    apps_section.finish()

    panel_section = config.section("panel")
    panel = None
    secret = panel_section.get_str("secret", pattern=r"\S{16,256}")
    if secret is not None:
        socket = panel_section.get_path("socket", None, base=data_dir)
        if socket is None:
            socket = fitting_socket_path(data_dir / "panel.sock", "panel")
        elif len(str(socket)) > MAX_SOCKET_PATH:
            raise ConfigError(f"{config.path}: [panel] socket path is too long for a Unix "
                              f"socket (at most {MAX_SOCKET_PATH} characters)")
        panel = PanelConfig(socket=socket, secret=secret)
    panel_section.finish()

    approval = config.section("approval")
    test_approver = approval.get_str("test_approver", pattern=r"[^\x00-\x1f\x7f]{1,200}")
    approval.finish()
    config.finish()
    return DeviceAgentConfig(config_path=config.path, device_id=device_id, data_dir=data_dir,
                             xmpp=xmpp, apps=apps, panel=panel, test_approver=test_approver)


def render_agent_config(device_id: str, server: str, domain: str, password: str,
                        ca_certificate: str, components: list[str], panel_secret: str) -> str:
    """A ready agent config (TOML) for a newly provisioned device."""
    quoted = ", ".join(f'"{c}"' for c in components)
    return f"""# twistd device-agent --config device-agent.toml
# Written by `remotecomm admin add-device` for {device_id}.  It holds the
# device's XMPP password: keep it readable by the agent only.

[device]
device_id = "{device_id}"
data_dir = "data"

[xmpp]
server = "{server}"
domain = "{domain}"
password = "{password}"
ca_certificate = "{ca_certificate}"
components = [{quoted}]

[apps]
# app ID = local base URL of one of the device's server apps, for example:
# web-server = "http://127.0.0.1:8080"
# remote-panel = "http://127.0.0.1:8081"

[panel]
# The local channel the device's panel uses to report the operator's answers:
# a Unix socket (default: panel.sock in data_dir) and a secret the panel's config
# must repeat.
secret = "{panel_secret}"

[approval]
# test_approver = "name"   # answers YES at once; for tests only, never on a real device
"""
