"""``twistd mfp-simulator``: the simulated device's programs."""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from remotecomm.config import config_options
from remotecomm.simulator.agent_client import AgentChannelClient
from remotecomm.simulator.config import SimulatorConfig, load_simulator_config
from remotecomm.simulator.panel import Panel
from remotecomm.web.json_api import make_site

log = Logger()


Options = config_options(load_simulator_config, "simulator_config", "etc/mfp-simulator.toml")


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
