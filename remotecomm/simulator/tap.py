"""``twistd mfp-simulator``: the simulated device's programs."""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService, TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from remotecomm.config import config_options
from remotecomm.json_http import make_site
from remotecomm.simulator.agent_client import AgentChannelClient
from remotecomm.simulator.config import SimulatorConfig, load_simulator_config
from remotecomm.simulator.device_state import DeviceState
from remotecomm.simulator.maintenance import Describer, JobRunner
from remotecomm.simulator.panel import Panel
from remotecomm.simulator.remote_panel import remote_panel_site
from remotecomm.simulator.web_server import web_server_site

log = Logger()


Options = config_options(load_simulator_config, "simulator_config", "etc/mfp-simulator.toml")

# How often the device tells its agent what it runs (the agent may have restarted, or an
# update installed new firmware), and how often it asks for maintenance jobs.
DESCRIBE_EVERY = 5.0
JOBS_EVERY = 0.5


def build_service(config: SimulatorConfig, reactor) -> MultiService:
    """The simulated device: its panel and its two apps, sharing one device state."""
    root = MultiService()
    state = DeviceState(config.device_name, config.model)
    agent = AgentChannelClient(reactor, config.agent_socket, config.agent_secret)
    panel = Panel(reactor, config.device_name, config.model, config.operators, agent)
    for name, listen, site in (
            ("panel", config.panel_listen, make_site(panel)),
            ("web-server", config.web_server_listen,
             web_server_site(state, config.data_dir / "firmware")),
            ("remote-panel", config.remote_panel_listen, remote_panel_site(state))):
        service = StreamServerEndpointService(serverFromString(reactor, listen), site)
        service.setName(name)
        service._raiseSynchronously = True
        service.setServiceParent(root)
    describer = Describer(state, agent)
    runner = JobRunner(state, agent, reactor, config.data_dir / "firmware", describer)
    for name, every, call in (("describe-device", DESCRIBE_EVERY, describer.tell),
                              ("maintenance-jobs", JOBS_EVERY, runner.poll)):
        timer = TimerService(every, lambda call=call: ensureDeferred(call()))
        timer.clock = reactor
        timer.setName(name)
        timer.setServiceParent(root)
    log.info("simulated MFP {name} ({model}): panel on {panel}, web-server on {web}, "
             "remote-panel on {remote}", name=config.device_name, model=config.model,
             panel=config.panel_listen, web=config.web_server_listen,
             remote=config.remote_panel_listen)
    return root


def makeService(options: Options) -> MultiService:
    """twistd's entry point."""
    from twisted.internet import reactor

    return build_service(options["simulator_config"], reactor)
