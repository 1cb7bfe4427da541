"""The relay's side of the HTTPS seam: its client of the manager, its routes for the manager.

Used when ``twistd remotecomm --role relay`` runs apart from the manager:
:class:`ManagerClient` makes the relay's calls of
:class:`~remotecomm.relay.gateway.IManagerForRelay` (``[relay] manager_url``),
and :func:`relay_node_routes` serves the manager's calls of
:class:`~remotecomm.relay.gateway.IRelayForManager` on the relay's own site.
"""

from __future__ import annotations

from pathlib import Path

from zope.interface import implementer

from remotecomm.json_http import Route
from remotecomm.relay.gateway import (EndRequest, Heartbeat, IManagerForRelay, IRelayForManager,
                                      JoinRequest, Refusal, SessionLog)
from remotecomm.relay.gateway_http import (MANAGER_CALLS, MANAGER_PREFIX, RELAY_CALLS, RELAY_PREFIX,
                                           GatewayClient, serve)


@implementer(IManagerForRelay)
class ManagerClient(GatewayClient):
    """The relay's calls of the manager, over HTTPS."""

    def __init__(self, reactor, manager_url: str, ca_certificate: Path | None, secret: str):
        super().__init__(reactor, manager_url, ca_certificate, secret, MANAGER_PREFIX,
                         MANAGER_CALLS)

    def authenticate(self, request: JoinRequest):
        return self.call("authenticate", request)

    def record_refusal(self, refusal: Refusal):
        return self.call("record_refusal", refusal)

    def file_log(self, entry: SessionLog):
        return self.call("file_log", entry)

    def end_session(self, request: EndRequest):
        return self.call("end_session", request)

    def heartbeat(self, beat: Heartbeat):
        return self.call("heartbeat", beat)


def relay_node_routes(node: IRelayForManager, secret: str) -> list[Route]:
    """``/internal/v1/node/…``: the manager's calls of this relay node."""
    return serve(RELAY_PREFIX, RELAY_CALLS, node, secret)
