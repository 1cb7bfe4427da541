"""twistd plugin: ``twistd mfp-simulator`` (a simulated MFP for demos and tests)."""

from twisted.application.service import ServiceMaker

mfp_simulator = ServiceMaker(
    "mfp-simulator",
    "remotecomm.simulator.tap",
    "A simulated MFP: its panel (and, later, its web server and remote panel apps).",
    "mfp-simulator",
)
