"""twistd plugin: ``twistd device-agent`` (the agent on a device)."""

from twisted.application.service import ServiceMaker

device_agent = ServiceMaker(
    "device-agent",
    "remotecomm.device.tap",
    "The remotecomm device agent: dials out to the manager (XMPP) and the relay.",
    "device-agent",
)
