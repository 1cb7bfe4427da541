"""The manager's side of the HTTPS seam: its routes for relays, its client of a relay node.

Used when relay and manager run apart (``--role manager`` / ``--role relay``):
:func:`manager_routes` serves the relays' calls of
:class:`~remotecomm.relay.gateway.IManagerForRelay`, and
:class:`RelayNodeClient` makes the manager's calls of
:class:`~remotecomm.relay.gateway.IRelayForManager` (``[relay] api_url``).
"""

from __future__ import annotations

from pathlib import Path

from zope.interface import implementer

from remotecomm.json_http import Route
from remotecomm.relay.gateway import AllocationRequest, EndOrder, IManagerForRelay, IRelayForManager
from remotecomm.relay.gateway_http import (MANAGER_CALLS, MANAGER_PREFIX, RELAY_CALLS, RELAY_PREFIX,
                                           GatewayClient, serve)


def manager_routes(manager: IManagerForRelay, secret: str) -> list[Route]:
    """``/internal/v1/relay/…``: the relays' calls of this manager."""
    return serve(MANAGER_PREFIX, MANAGER_CALLS, manager, secret)


@implementer(IRelayForManager)
class RelayNodeClient(GatewayClient):
    """The manager's calls of one relay node, over HTTPS."""

    def __init__(self, reactor, api_url: str, ca_certificate: Path | None, secret: str):
        super().__init__(reactor, api_url, ca_certificate, secret, RELAY_PREFIX, RELAY_CALLS)

    def allocate(self, request: AllocationRequest):
        return self.call("allocate", request)

    def end_session(self, order: EndOrder):
        return self.call("end_session", order)

    def drain(self):
        return self.call("drain")
