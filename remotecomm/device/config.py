"""The device agent's configuration (``etc/device-agent.toml``), validated as a whole."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from remotecomm.config import ConfigFile
from remotecomm.identifiers import DEVICE_ID


@dataclass(frozen=True)
class DeviceAgentConfig:
    """What the device agent needs; grows with the XMPP link and the relay link."""

    config_path: Path
    device_id: str
    data_dir: Path


def load_device_config(path: str | Path) -> DeviceAgentConfig:
    """Read and validate a device agent config; raise ``ConfigError`` on any problem."""
    config = ConfigFile.load(path)
    device = config.section("device")
    device_id = device.get_str("device_id", required=True, pattern=DEVICE_ID)
    data_dir = device.get_path("data_dir", config.path.parent / "device-data")
    device.finish()
    config.finish()
    return DeviceAgentConfig(config_path=config.path, device_id=device_id, data_dir=data_dir)
