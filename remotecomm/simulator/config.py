"""The simulated MFP's configuration (``etc/mfp-simulator.toml``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from remotecomm.config import ConfigError, ConfigFile, is_loopback_endpoint
from remotecomm.identifiers import OPERATOR, is_valid
from remotecomm.unix_sockets import MAX_SOCKET_PATH


@dataclass(frozen=True)
class SimulatorConfig:
    """What the simulated device runs with."""

    config_path: Path
    device_name: str
    model: str
    panel_listen: str
    agent_socket: Path
    agent_secret: str
    operators: dict[str, str]
    data_dir: Path
    web_server_listen: str
    remote_panel_listen: str


def load_simulator_config(path: str | Path) -> SimulatorConfig:
    """Read and validate a simulator config; raise ``ConfigError`` on any problem."""
    config = ConfigFile.load(path)
    device = config.section("device")
    name = device.get_str("name", "Simulated MFP", pattern=r"[^\x00-\x1f]{1,100}")
    model = device.get_str("model", "MFP 9000", pattern=r"[^\x00-\x1f]{1,100}")
    data_dir = device.get_path("data_dir", config.path.parent / "mfp-data")
    device.finish()

    apps = {}
    for app, default in (("web_server", "tcp:8080:interface=127.0.0.1"),
                         ("remote_panel", "tcp:8081:interface=127.0.0.1")):
        section = config.section(app)
        apps[app] = section.get_server_endpoint("listen", default)
        if not is_loopback_endpoint(apps[app]):
            raise ConfigError(f"{config.path}: [{app}] listen must bind 127.0.0.1: the device's "
                              f"apps are reached only through a session")
        section.finish()

    panel = config.section("panel")
    listen = panel.get_server_endpoint("listen", "tcp:8180:interface=127.0.0.1")
    if not is_loopback_endpoint(listen):
        raise ConfigError(f"{config.path}: [panel] listen must bind 127.0.0.1: the panel "
                          f"belongs to the device's own screen")
    socket = panel.get_path("agent_socket", required=True)
    if len(str(socket)) > MAX_SOCKET_PATH:
        raise ConfigError(f"{config.path}: [panel] agent_socket path is too long")
    secret = panel.get_str("agent_secret", required=True, pattern=r"\S{16,256}")
    panel.finish()

    operators_section = config.section("operators")
    operators = {}
    for operator in operators_section.keys():
        if not is_valid(OPERATOR, operator):
            raise ConfigError(f"{config.path}: [operators] {operator!r} is not a valid name")
        operators[operator] = operators_section.get_str(operator, required=True,
                                                        pattern=r"\$argon2id\$\S+")
    operators_section.finish()
    if not operators:
        raise ConfigError(f"{config.path}: [operators] names nobody who may log in")
    config.finish()
    return SimulatorConfig(config_path=config.path, device_name=name, model=model,
                           panel_listen=listen, agent_socket=socket, agent_secret=secret,
                           operators=operators, data_dir=data_dir,
                           web_server_listen=apps["web_server"],
                           remote_panel_listen=apps["remote_panel"])


def render_simulator_config(name: str, model: str, panel_port: int, agent_socket: Path,
                            agent_secret: str, operators: dict[str, str],
                            web_server_port: int, remote_panel_port: int) -> str:
    """A simulator config for a device whose agent config is known (tests, demo)."""
    operator_lines = "\n".join(f'{op} = "{password_hash}"'
                               for op, password_hash in operators.items())
    return f"""# twistd mfp-simulator --config mfp-simulator.toml
[device]
name = "{name}"
model = "{model}"
data_dir = "mfp-data"

[web_server]
listen = "tcp:{web_server_port}:interface=127.0.0.1"

[remote_panel]
listen = "tcp:{remote_panel_port}:interface=127.0.0.1"

[panel]
listen = "tcp:{panel_port}:interface=127.0.0.1"
agent_socket = "{agent_socket}"
agent_secret = "{agent_secret}"

[operators]
# operator = argon2id hash of the operator's panel password
{operator_lines}
"""
