"""The manager's side of the HTTPS seam: its routes for relays, its client of a relay node.

Used when relay and manager run apart (``--role manager`` / ``--role relay``):
:func:`manager_routes` serves the relays' calls of
:class:`~remotecomm.relay.gateway.IManagerForRelay`, and
:class:`RelayNodeClient` makes the manager's calls of
:class:`~remotecomm.relay.gateway.IRelayForManager` (``[relay] api_url``).
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from remotecomm.clock import now_us
from remotecomm.json_http import Route
from remotecomm.relay.gateway import AllocationRequest, EndOrder, IManagerForRelay, IRelayForManager
from remotecomm.relay.gateway_http import (MANAGER_CALLS, MANAGER_PREFIX, RELAY_CALLS, RELAY_PREFIX,
                                           GatewayClient, serve)
from remotecomm.store.audit import append_audit
from remotecomm.store.engine import Store, StoreBusy

log = Logger()


AUDIT_REFUSALS_EVERY = 60.0  # seconds: one audit record per source address at most


def manager_routes(manager: IManagerForRelay, secret: str, store: Store | None = None,
                   clock: IReactorTime | None = None) -> list[Route]:
    """``/internal/v1/relay/…``: the relays' calls of this manager.  A caller without the
    secret is audited (``relay-api-refused``; one record per address a minute, so a flood
    cannot fill the table) and logged."""
    last_audited: dict[str, float] = {}

    async def refused(request) -> None:
        source = getattr(request.getClientAddress(), "host", None) or "unknown"
        log.warn("a caller at {source} was refused the relay API: wrong secret",
                 source=source)
        if store is None or clock is None:
            return
        at = clock.seconds()
        if at - last_audited.get(source, -AUDIT_REFUSALS_EVERY) < AUDIT_REFUSALS_EVERY:
            return
        if len(last_audited) > 10_000:
            last_audited.clear()
        last_audited[source] = at
        try:
            await store.run(append_audit, now_us(clock), "relay-api-refused",
                            source_address=source, path=request.path.decode("ascii",
                                                                             "replace")[:100])
        except StoreBusy:
            pass

    return serve(MANAGER_PREFIX, MANAGER_CALLS, manager, secret, refused)


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

    def resume(self):
        return self.call("resume")
