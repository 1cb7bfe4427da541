"""A relay node's answers to the manager (S145–S147): fresh session IDs, ends, drain.

:class:`RelayNode` implements :class:`~remotecomm.relay.gateway.IRelayForManager`
in the relay's process.  The manager calls it directly when both run in one
process, and through the HTTPS routes of :mod:`remotecomm.relay.manager_api`
when they run apart.  The session ID is made here, by the relay, for every
allocation (S146): 192 bits from the CSPRNG, base64url.
"""

from __future__ import annotations

import base64
import secrets
from collections import OrderedDict

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from remotecomm.relay.core import RelayCore
from remotecomm.relay.gateway import (DEFAULT_CAPACITY, Allocation, AllocationRequest, DrainReport,
                                      EndOrder, EndResult, IRelayForManager, NodeDraining)

log = Logger()

SESSION_ID_BYTES = 24  # 192 bits, 32 base64url characters
MAX_REMEMBERED = 100_000


def new_session_id() -> str:
    """A fresh session ID from the CSPRNG (base64url, no padding)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(SESSION_ID_BYTES)).decode("ascii")


@implementer(IRelayForManager)
class RelayNode:
    """One relay node: allocates sessions on its core (up to ``capacity`` at once), ends
    them, drains."""

    def __init__(self, core: RelayCore, node: str, public_url: str,
                 max_remembered: int = MAX_REMEMBERED, capacity: int = DEFAULT_CAPACITY):
        self.core = core
        self.node = node
        self.public_url = public_url
        self.capacity = capacity
        self.draining = False
        self._max_remembered = max_remembered
        # What this node allocated, newest last (bounded): which request each ID serves.
        self.allocated: OrderedDict[str, AllocationRequest] = OrderedDict()

    def allocate(self, request: AllocationRequest) -> Deferred:
        """A new session ID for every request, never reused."""
        if self.draining or not self.core.accepting:
            return fail(NodeDraining(f"relay node {self.node} takes no new sessions"))
        if len(self.core.sessions) >= self.capacity:
            return fail(NodeDraining(f"relay node {self.node} is full ({self.capacity} "
                                     f"sessions)"))
        session_id = new_session_id()
        while session_id in self.allocated or session_id in self.core.sessions:
            session_id = new_session_id()  # 2^-192: defensive, not expected
        self.allocated[session_id] = request
        while len(self.allocated) > self._max_remembered:
            self.allocated.popitem(last=False)
        log.info("session {request_id} allocated on {node}", request_id=request.request_id,
                 node=self.node)
        return succeed(Allocation(session_id=session_id, relay_node=self.node,
                                  relay_url=self.public_url))

    def end_session(self, order: EndOrder) -> Deferred:
        """Close both sides of a session this node serves."""
        return succeed(EndResult(session_id=order.session_id,
                                 was_open=self.core.end_session(order.session_id,
                                                                order.reason)))

    @property
    def empty(self) -> bool:
        """Whether no session is connected here."""
        return not self.core.sessions

    def resume(self) -> Deferred:
        """Take new sessions again (a drain undone without a restart, which would end the
        sessions running here)."""
        if self.draining:
            log.info("relay node {node} takes new sessions again", node=self.node)
        self.draining = False
        return succeed(DrainReport(relay_node=self.node, open_sessions=len(self.core.sessions)))

    def drain(self) -> Deferred:
        """No new allocations from now on; sessions already placed here run to their end."""
        if not self.draining:
            log.info("relay node {node} is draining", node=self.node)
        self.draining = True
        return succeed(DrainReport(relay_node=self.node, open_sessions=len(self.core.sessions)))
