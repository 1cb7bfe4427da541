"""``twistd device-agent``: options and the one place that builds the agent.

For now the agent validates its config and prepares its data folder; the
XMPP link, approvals and the relay link are added by the following issues.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.python import usage

from remotecomm import __version__
from remotecomm.config import ConfigError
from remotecomm.device.config import DeviceAgentConfig, load_device_config

log = Logger()


class Options(usage.Options):
    """Command-line options of ``twistd device-agent``."""

    optParameters = [
        ["config", "c", None, "The agent's config file (see etc/device-agent.toml)."],
    ]

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config is required (see etc/device-agent.toml)")
        try:
            self["agent_config"] = load_device_config(self["config"])
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def build_service(config: DeviceAgentConfig) -> MultiService:
    """Build the agent's services from its validated config."""
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    root = MultiService()
    log.info("device agent {version} for device {device_id}, data in {data_dir}",
             version=__version__, device_id=config.device_id, data_dir=str(config.data_dir))
    return root


def makeService(options: Options) -> MultiService:
    """twistd's entry point."""
    return build_service(options["agent_config"])
