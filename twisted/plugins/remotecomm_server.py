"""twistd plugin: ``twistd remotecomm`` (manager and relay on a server)."""

from twisted.application.service import ServiceMaker

remotecomm = ServiceMaker(
    "remotecomm",
    "remotecomm.server.tap",
    "Remote sessions to office devices: manager (REST, XMPP component) and relay.",
    "remotecomm",
)
