"""TCP_NODELAY on every socket that carries relayed traffic.

Relayed request/response traffic is small writes answered by the other
side; with Nagle's algorithm and delayed ACKs each exchange can wait ~40 ms
(``../shared/notes/performance.md``).  Twisted's HTTP server sets the
option on plain TCP only, not below TLS, and its HTTP client never does.
"""

from __future__ import annotations

from twisted.internet.interfaces import IStreamClientEndpoint
from zope.interface import implementer


def no_delay(transport) -> bool:
    """Set TCP_NODELAY on the TCP socket under ``transport`` (through TLS wrappers)."""
    seen = 0
    while transport is not None and seen < 5:
        setter = getattr(transport, "setTcpNoDelay", None)
        if setter is not None:
            try:
                setter(True)
                return True
            except OSError:
                return False
        transport = getattr(transport, "transport", None)
        seen += 1
    return False


@implementer(IStreamClientEndpoint)
class NoDelayEndpoint:
    """A client endpoint whose connections get TCP_NODELAY as soon as they are made."""

    def __init__(self, endpoint):
        self._endpoint = endpoint

    def connect(self, factory):
        def connected(protocol):
            no_delay(protocol.transport)
            return protocol
        return self._endpoint.connect(factory).addCallback(connected)
