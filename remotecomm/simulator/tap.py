"""``twistd mfp-simulator``: the simulated device's programs."""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import usage

from remotecomm.config import ConfigError
from remotecomm.simulator.agent_client import AgentChannelClient
from remotecomm.simulator.config import SimulatorConfig, load_simulator_config
from remotecomm.simulator.panel import Panel
from remotecomm.web.json_api import make_site

log = Logger()


class Options(usage.Options):
    """Command-line options of ``twistd mfp-simulator``."""

    optParameters = [
        ["config", "c", None, "The simulator's config file (see etc/mfp-simulator.toml)."],
    ]

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config is required (see etc/mfp-simulator.toml)")
        try:
            self["simulator_config"] = load_simulator_config(self["config"])
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def build_service(config: SimulatorConfig, reactor) -> MultiService:
    """The simulated device: for now, its panel."""
    root = MultiService()
    agent = AgentChannelClient(reactor, config.agent_socket, config.agent_secret)
    panel = Panel(reactor, config.device_name, config.model, config.operators, agent)
    service = StreamServerEndpointService(serverFromString(reactor, config.panel_listen),
                                          make_site(panel))
    service.setName("panel")
    service._raiseSynchronously = True
    service.setServiceParent(root)
    log.info("simulated MFP {name} ({model}): panel on {listen}", name=config.device_name,
             model=config.model, listen=config.panel_listen)
    return root


def makeService(options: Options) -> MultiService:
    """twistd's entry point."""
    from twisted.internet import reactor

    return build_service(options["simulator_config"], reactor)
