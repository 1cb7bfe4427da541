"""Placement ("Master", S145–S147): a fresh session ID and the relay that serves it.

The manager asks through :class:`IRelayPlacement`, whose arguments and
results are plain, serialisable values, so that a relay in another process
changes only the transport.  :class:`LocalRelayPlacement` answers in this
process for the relay node it runs.
"""

from __future__ import annotations

import base64
import secrets
from collections import OrderedDict

from twisted.internet.defer import Deferred, succeed
from zope.interface import Interface, implementer

SESSION_ID_BYTES = 24  # 192 bits, 32 base64url characters


def new_session_id() -> str:
    """A fresh session ID from the CSPRNG (base64url, no padding)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(SESSION_ID_BYTES)).decode("ascii")


class IRelayPlacement(Interface):
    """Where a new session runs, and under which ID."""

    def allocate(request: dict) -> Deferred:
        """Allocate a session for ``request`` (``request_id``, ``device_id``,
        ``terminal_id``, ``app_id``: strings); fires with a dict of
        ``session_id``, ``relay_node`` and ``relay_url``."""


@implementer(IRelayPlacement)
class LocalRelayPlacement:
    """Placement on the one relay node of this process; remembers what it allocated."""

    def __init__(self, node: str, public_url: str, max_remembered: int = 100_000):
        self.node = node
        self.public_url = public_url
        self._max_remembered = max_remembered
        self.allocated: OrderedDict[str, dict] = OrderedDict()

    def allocate(self, request: dict) -> Deferred:
        """A new session ID for every request, never reused."""
        session_id = new_session_id()
        while session_id in self.allocated:  # 2^-192: defensive, not expected
            session_id = new_session_id()
        self.allocated[session_id] = {key: str(request[key]) for key in
                                      ("request_id", "device_id", "terminal_id", "app_id")}
        while len(self.allocated) > self._max_remembered:
            self.allocated.popitem(last=False)
        return succeed({"session_id": session_id, "relay_node": self.node,
                        "relay_url": self.public_url})
